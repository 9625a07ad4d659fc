"""The one numbering authority: blocks of card numbers leased to desks, and each number's use.

一人一卡一号 across desks. A desk leases a block of an issuer's card sequences (``lease``);
the gateway hands out each sequence once, in one counter per issuer, so two desks never
hold the same number. Before writing a card the desk claims its number for the holder
(``claim``): the number must lie in a block of that desk and be unused, and the holder
must have no other live (pending or active) card of the kind, in the claims or in the
card book. A desk that was offline claims nothing; its pushed records are checked the same
way when they arrive (``use``), and a record that breaks a rule is a conflict with the
reason, stored nowhere. A unique index over live claims holds the rule under any race.

A desk that claimed a number and died before pushing its card would block the holder at
every other desk; the card centre releases such a **stale** claim (``release``: no card
pushed, older than the configured age; who and why in ``card_claim_releases``). The
released number is never claimed again; its card, if the desk wrote it after all, is
accepted only while the holder has no other live card.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Conflict, Forbidden, Invalid, NotFound, Refused
from gateway.storage import RACED, Cursor, Database, now_ms, retried
from gateway.subsidy.store import check_actor
from terminal.identity import mask_id_number
from terminal.roles.registry import SEQUENCE_LIMIT, CardState, card_number_for, sequence_of

FIRST_SEQUENCE = 10_000_001  # an issuer's first card number: 3100 <city> 00010000001
MAX_BLOCK = 10_000
LIVE = (CardState.PENDING.value, CardState.ACTIVE.value)

OUTSIDE_LEASE = "outside_lease"
NUMBER_USED = "number_used"
SAME_PERSON = "same_person"
CARD_LOST = "card_lost"
NOT_THIS_DESK = "not_this_desk"
CLAIM_RELEASED = "claim_released"
STALE_CLAIM_MS = 24 * 3600 * 1000  # a claim with no card pushed a day later: the desk died
MAX_REASON = 500


def check_desk(desk_id: str, named: str | None) -> None:
    """Refuse a request that names another desk than the one whose token made it."""
    if named is not None and named.upper() != desk_id:
        raise Forbidden(
            NOT_THIS_DESK,
            f"the request is for desk {named.upper()}, but the token is desk {desk_id}'s: "
            f"use desk {named.upper()}'s own token (each desk keeps its own book and numbers)",
        )


def _issuer(issuer_id: str) -> bytes:
    try:
        raw = bytes.fromhex(issuer_id)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        raise Invalid("bad_issuer_id", "issuer_id must be 16 hex digits")
    return raw


def _first_free(cur: Cursor, issuer_id: str) -> int:
    """Where an issuer's numbering starts: after any number already in the card book."""
    cur.execute("SELECT card_number FROM cards WHERE issuer_id = ?", (issuer_id,))
    raw = bytes.fromhex(issuer_id)
    used = [sequence_of(r[0], raw) or 0 for r in cur.fetchall()]
    return max([FIRST_SEQUENCE - 1, *used]) + 1


@retried
def lease(db: Database, desk_id: str, issuer_id: str, count: int) -> dict[str, Any]:
    """A new block of ``count`` card numbers of the issuer for this desk, after every block
    leased before (never one number twice)."""
    issuer_id = issuer_id.upper()
    raw = _issuer(issuer_id)
    if not 1 <= count <= MAX_BLOCK:
        raise Invalid("bad_count", f"a block holds 1 to {MAX_BLOCK} numbers")
    with db.tx() as cur:
        start = _first_free(cur, issuer_id)
        cur.execute(
            "INSERT INTO number_sequences (issuer_id, next_seq) VALUES (?, ?)"
            " ON CONFLICT (issuer_id) DO NOTHING",
            (issuer_id, start),
        )
        cur.execute(
            "UPDATE number_sequences SET next_seq = next_seq + ? WHERE issuer_id = ?"
            " RETURNING next_seq",
            (count, issuer_id),
        )
        end = int(cur.fetchone()[0])
        first, last = end - count, end - 1
        if last >= SEQUENCE_LIMIT:
            raise Conflict("numbers_exhausted", f"issuer {issuer_id} has no card numbers left")
        cur.execute(
            "INSERT INTO number_blocks (issuer_id, desk_id, first_seq, last_seq, leased_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (issuer_id, desk_id, first, last, now_ms()),
        )
        block_id = int(cur.fetchone()[0])
    return {
        "block_id": block_id,
        "issuer_id": issuer_id,
        "desk_id": desk_id,
        "first": first,
        "last": last,
        "first_card_number": card_number_for(raw, first),
        "last_card_number": card_number_for(raw, last),
    }


def _block_of(cur: Cursor, desk_id: str, issuer_id: str, card_number: str) -> int | Refused:
    """The id of this desk's block holding the number, or the refusal saying why not."""
    sequence = sequence_of(card_number, bytes.fromhex(issuer_id))
    if sequence is not None:
        cur.execute(
            "SELECT id, desk_id FROM number_blocks WHERE issuer_id = ? AND first_seq <= ?"
            " AND last_seq >= ?",
            (issuer_id, sequence, sequence),
        )
        row = cur.fetchone()
        if row is not None and row[1] == desk_id:
            return int(row[0])
        if row is not None:
            return Forbidden(
                OUTSIDE_LEASE,
                f"card {card_number} is in block {row[0]}, leased to desk {row[1]}, not to "
                f"desk {desk_id}: a desk issues only numbers leased to it",
            )
    return Forbidden(
        OUTSIDE_LEASE,
        f"card {card_number} is not in any block of issuer {issuer_id} numbers leased to desk "
        f"{desk_id}: a desk issues only numbers the card centre leased to it",
    )


def _holder_conflict(
    cur: Cursor, card_number: str, id_number: str, card_kind: int, replaces: str | None
) -> Refused | None:
    """Why the holder may not have this live card: another live card of the kind (claimed
    or in the book), or a lost one that this card does not replace."""
    who = f"ID number {mask_id_number(id_number)}"
    cur.execute(
        "SELECT card_number, desk_id FROM card_claims WHERE id_number = ? AND card_kind = ?"
        " AND live = 1 AND card_number <> ?",
        (id_number, card_kind, card_number),
    )
    row = cur.fetchone()
    if row is not None:
        return Conflict(
            SAME_PERSON,
            f"{who} already holds live card {row[0]} of kind {card_kind} (desk {row[1]}): one "
            "person, one card; void one of them or replace the card if it is lost",
        )
    cur.execute(
        "SELECT card_number, desk_id, desk_state, lost_at FROM cards WHERE id_number = ?"
        " AND card_kind = ? AND card_number <> ? AND desk_state IN ('pending', 'active', 'lost')",
        (id_number, card_kind, card_number),
    )
    for other, desk, state, lost_at in cur.fetchall():
        if state in LIVE and lost_at is None:
            return Conflict(
                SAME_PERSON,
                f"{who} already holds live card {other} of kind {card_kind} (desk {desk}): "
                "one person, one card",
            )
        if other != replaces:
            return Conflict(
                CARD_LOST,
                f"{who} holds lost card {other} of kind {card_kind}: replace it (its balance "
                "carries over) instead of issuing a second card",
            )
    return None


@retried
def claim(
    db: Database,
    desk_id: str,
    card_number: str,
    issuer_id: str,
    id_number: str,
    card_kind: int,
    replaces: str | None = None,
) -> dict[str, Any]:
    """Before a card is written: the number is this desk's and unused, the holder has no
    other live card of the kind. The same claim again is accepted (a resumed issuance). A
    claim that lost a race to another desk is checked once more, so its refusal says which
    rule the winner's claim now breaks (one person, one card) instead of a bare conflict."""
    try:
        return _claim(db, desk_id, card_number, issuer_id, id_number, card_kind, replaces)
    except RACED:
        return _claim(db, desk_id, card_number, issuer_id, id_number, card_kind, replaces)


def _claim(
    db: Database,
    desk_id: str,
    card_number: str,
    issuer_id: str,
    id_number: str,
    card_kind: int,
    replaces: str | None = None,
) -> dict[str, Any]:
    issuer_id, id_number = issuer_id.upper(), id_number.upper()
    _issuer(issuer_id)
    with db.tx() as cur:
        block = _block_of(cur, desk_id, issuer_id, card_number)
        if isinstance(block, Refused):
            raise block
        cur.execute(
            "SELECT desk_id, id_number, card_kind, released_at FROM card_claims"
            " WHERE card_number = ?",
            (card_number,),
        )
        held = cur.fetchone()
        if held is not None and tuple(held[:3]) != (desk_id, id_number, card_kind):
            raise Conflict(NUMBER_USED, f"card number {card_number} is used for another card")
        if held is not None and held[3] is not None:
            raise Conflict(
                CLAIM_RELEASED,
                f"the card centre released the claim on card number {card_number} (no card "
                "was pushed in time): claim the next number of the block instead",
            )
        refused = _holder_conflict(cur, card_number, id_number, card_kind, replaces)
        if refused is not None:
            raise refused
        if held is None:
            cur.execute(
                "INSERT INTO card_claims (card_number, issuer_id, desk_id, block_id, id_number,"
                " card_kind, replaces, live, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (card_number, issuer_id, desk_id, block, id_number, card_kind, replaces, now_ms()),
            )
    return {"card_number": card_number, "desk_id": desk_id, "block_id": block, "status": "ok"}


def use(
    cur: Cursor, desk_id: str, doc: dict[str, Any], *, in_book: bool, apply: bool
) -> Refused | None:
    """Check a pushed issuance record against the numbering rules and, with ``apply``, record
    the number's use; the refusal when the record breaks one (then nothing is recorded).
    ``in_book``: the card is in the book already (it may predate leases)."""
    number, issuer_id = doc["card_number"], doc["issuer_id"]
    id_number, kind = doc["holder"]["id_number"].upper(), doc["card_kind"]
    cur.execute(
        "SELECT desk_id, id_number, card_kind, block_id FROM card_claims WHERE card_number = ?",
        (number,),
    )
    held = cur.fetchone()
    block: int | None = None
    if held is None and not in_book:
        found = _block_of(cur, desk_id, issuer_id, number)
        if isinstance(found, Refused):
            return found
        block = found
    if held is not None:
        if held[0] != desk_id:
            return Conflict(NUMBER_USED, f"card number {number} is used by desk {held[0]}")
        if (held[1], held[2]) != (id_number, kind):
            return Conflict(
                NUMBER_USED,
                f"card number {number} was claimed for another holder or card kind",
            )
    cur.execute("SELECT lost_at FROM cards WHERE card_number = ?", (number,))
    book = cur.fetchone()
    live = doc["state"] in LIVE and (book is None or book[0] is None)
    if live:
        refused = _holder_conflict(cur, number, id_number, kind, doc.get("replaces"))
        if refused is not None:
            return refused
    if not apply:
        return None
    if held is None:
        cur.execute(
            "INSERT INTO card_claims (card_number, issuer_id, desk_id, block_id, id_number,"
            " card_kind, replaces, live, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number,
                issuer_id,
                desk_id,
                block,
                id_number,
                kind,
                doc.get("replaces"),
                int(live),
                now_ms(),
            ),
        )
    else:
        cur.execute("UPDATE card_claims SET live = ? WHERE card_number = ?", (int(live), number))
    return None


def ended(cur: Cursor, card_number: str) -> None:
    """The card is no longer live (a loss reported at the gateway)."""
    cur.execute("UPDATE card_claims SET live = 0 WHERE card_number = ?", (card_number,))


_UNPUSHED = "NOT EXISTS (SELECT 1 FROM cards c WHERE c.card_number = k.card_number)"


def stale_claims(db: Database, age_ms: int, now: int | None = None) -> list[dict[str, Any]]:
    """Live claims at least ``age_ms`` old whose card was never pushed: a desk that claimed
    a number and went away, leaving the holder blocked at every other desk."""
    now = now_ms() if now is None else now
    with db.tx() as cur:
        cur.execute(
            "SELECT k.card_number, k.desk_id, k.id_number, k.card_kind, k.claimed_at"
            f" FROM card_claims k WHERE k.live = 1 AND k.claimed_at <= ? AND {_UNPUSHED}"
            " ORDER BY k.claimed_at, k.card_number",
            (now - age_ms,),
        )
        rows = cur.fetchall()
    return [
        {
            "card_number": number,
            "desk_id": desk,
            "id_number": mask_id_number(id_number),
            "card_kind": int(kind),
            "claimed_at_ms": int(at),
            "age_ms": now - int(at),
        }
        for number, desk, id_number, kind, at in rows
    ]


@retried
def release(db: Database, card_number: str, actor: str, reason: str, age_ms: int) -> dict[str, Any]:
    """Release a stale claim (see ``stale_claims``) so the holder can be issued a card at
    another desk; who and why go to the audit trail. Refused when the card was pushed, the
    claim is younger than ``age_ms`` or is not live."""
    actor = check_actor(actor)
    reason = " ".join((reason or "").split())
    if not reason or len(reason) > MAX_REASON:
        raise Invalid("bad_reason", f"say why the claim is released (1..{MAX_REASON} characters)")
    now = now_ms()
    with db.tx() as cur:
        cur.execute(
            "SELECT desk_id, id_number, card_kind, claimed_at, live, released_at"
            " FROM card_claims WHERE card_number = ?",
            (card_number,),
        )
        row = cur.fetchone()
        if row is None:
            raise NotFound("unknown_claim", f"card number {card_number} was never claimed")
        desk, id_number, kind, claimed_at, live, released_at = row
        if released_at is not None:
            raise Conflict(CLAIM_RELEASED, f"the claim on card {card_number} was released already")
        cur.execute("SELECT desk_state FROM cards WHERE card_number = ?", (card_number,))
        pushed = cur.fetchone()
        if pushed is not None:
            raise Conflict(
                "card_pushed",
                f"card {card_number} was pushed by desk {desk} (it is {pushed[0]} in the card "
                "book): the claim is a card's, not a stale one; void or replace the card instead",
            )
        if not live:
            raise Conflict("claim_not_live", f"the claim on card {card_number} is not live")
        age = now - int(claimed_at)
        if age < age_ms:
            raise Conflict(
                "claim_too_young",
                f"card {card_number} was claimed by desk {desk} {age // 60_000} minute(s) ago; "
                f"a claim is released only after {age_ms // 60_000} minute(s) with no card "
                "pushed (the desk may still be writing it)",
            )
        cur.execute(
            "UPDATE card_claims SET live = 0, released_at = ? WHERE card_number = ? AND live = 1"
            " AND released_at IS NULL",
            (now, card_number),
        )
        if cur.rowcount != 1:
            raise Conflict(CLAIM_RELEASED, f"the claim on card {card_number} changed meanwhile")
        cur.execute(
            "INSERT INTO card_claim_releases (card_number, desk_id, id_number, card_kind,"
            " claimed_at, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (card_number, desk, id_number, kind, claimed_at, actor, reason, now),
        )
    return {
        "card_number": card_number,
        "desk_id": desk,
        "id_number": mask_id_number(id_number),
        "released_by": actor,
        "reason": reason,
        "released_at_ms": now,
    }


def releases(db: Database) -> list[dict[str, Any]]:
    """The audit trail of released claims, oldest first."""
    with db.tx() as cur:
        cur.execute(
            "SELECT card_number, desk_id, id_number, card_kind, claimed_at, actor, reason, at"
            " FROM card_claim_releases ORDER BY id"
        )
        rows = cur.fetchall()
    keys = ("card_number", "desk_id", "id_number", "card_kind", "claimed_at_ms", "actor",
            "reason", "released_at_ms")  # fmt: skip
    return [{**dict(zip(keys, r, strict=True)), "id_number": mask_id_number(r[2])} for r in rows]
