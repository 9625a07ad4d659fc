"""The gateway's card book: issuance records from the desks, loss reports, last known balances.

Desks keep their own book (``CardRegistry``, gateway/registry.py) and push its export
(``yikatong.issuance/1`` records, docs/issuance.md §3) here. A record is identified by
(card number, revision): the same record again is ``duplicate``, other content under a
revision already held is ``conflict`` (the first stands), an older revision than the one
the book holds is kept in the history as ``stale`` and changes nothing. A card belongs to
the desk that first sent it; another desk's record for it is a ``conflict``.

A card is lost when its desk says so or when a loss is reported here (挂失 at a kiosk).
Either way the gateway publishes the hotlist addition as a numbered delta that every
terminal pulls, and records that version on the card. A loss reported here stands even
if the desk, not knowing yet, sends the card as ``active`` again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from gateway import hotlist, numbers
from gateway.auth import Terminal
from gateway.errors import Conflict, Forbidden, Invalid, NotFound, Refused, TooLarge
from gateway.hsm import HostSecurityModule
from gateway.loads import AUTHORIZED, CONFIRMED, LoadRecord
from gateway.storage import RACED, Cursor, Database, now_ms, retried
from gateway.subsidy.cardchange import follow_replacement
from terminal.epurse.host import LoadDeclined
from terminal.roles.registry import (
    CARRY_PURPOSE,
    RECORD_SCHEMA,
    Applicant,
    CardRecord,
    CardState,
    serial_of,
)
from terminal.text import TextError, code, digits

MAX_RECORDS = 1000
STORED = "stored"
DUPLICATE = "duplicate"
STALE = "stale"
CONFLICT = "conflict"

_CARD_NUMBER = re.compile(r"^[0-9]{19}\Z")
_HEX16 = re.compile(r"^[0-9A-F]{16}\Z")
_STATES = frozenset(s.value for s in CardState)
_COLUMNS = (
    "card_number, serial, issuer_id, desk_state, desk_id, desk_revision, record, lost_at,"
    " lost_via, hotlist_version"
)


@dataclass(frozen=True, slots=True)
class BookCard:
    """One card as the gateway's book holds it: the desk's newest record and the gateway's
    own loss and hotlist facts."""

    card_number: str
    serial: str
    issuer_id: str
    desk_state: str
    desk_id: str
    desk_revision: int
    record: dict[str, Any]
    lost_at: int | None
    lost_via: str | None
    hotlist_version: int | None

    @property
    def state(self) -> str:
        """The desk's state, except that a loss reported at the gateway makes it lost."""
        if self.desk_state == CardState.ACTIVE and self.lost_at is not None:
            return CardState.LOST.value
        return self.desk_state

    @property
    def id_number(self) -> str:
        return str(self.record["holder"]["id_number"]).upper()

    def card_record(self) -> CardRecord:
        """The book entry as the terminal-side ``CardRecord`` (for roster checks)."""
        r = self.record
        holder = r["holder"]
        return CardRecord(
            card_number=self.card_number,
            issuer_id=bytes.fromhex(self.issuer_id),
            chip_id=bytes.fromhex(r["chip_id"]) if r.get("chip_id") else None,
            holder=Applicant(
                holder["name"],
                holder["id_number"],
                r["card_kind"],
                holder["id_type"],
                r["card_type"],
            ),
            state=CardState(self.state),
            created_at=datetime.fromisoformat(r["created_at"]),
            revision=self.desk_revision,
            hotlist_version=self.hotlist_version,
            replaces=r.get("replaces"),
            replaced_by=r.get("replaced_by"),
            carry_fen=r.get("carry_fen") or 0,
            balance_fen=r.get("balance_fen"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "card_number": self.card_number,
            "serial": self.serial,
            "issuer_id": self.issuer_id,
            "state": self.state,
            "desk_state": self.desk_state,
            "desk_id": self.desk_id,
            "desk_revision": self.desk_revision,
            "holder_name": self.record["holder"]["name"],
            "card_kind": self.record["card_kind"],
            "lost_at_ms": self.lost_at,
            "lost_via": self.lost_via,
            "hotlist_version": self.hotlist_version,
            "replaces": self.record.get("replaces"),
            "replaced_by": self.record.get("replaced_by"),
        }


def _row(r: Any) -> BookCard:
    return BookCard(r[0], r[1], r[2], r[3], r[4], int(r[5]), json.loads(r[6]), *r[7:10])


def card_number_of(text: str) -> str:
    """A card number a person typed (full-width digits allowed) as its 19 ASCII digits;
    an ``Invalid`` refusal for anything else, so two spellings never name two cards."""
    try:
        return digits(text, "card number", length=19)
    except TextError as exc:
        raise Invalid("bad_card_number", str(exc)) from None


def _get(cur: Cursor, card_number: str) -> BookCard | None:
    cur.execute(f"SELECT {_COLUMNS} FROM cards WHERE card_number = ?", (card_number,))
    r = cur.fetchone()
    return None if r is None else _row(r)


def get_card(db: Database, card_number: str) -> BookCard | None:
    with db.tx() as cur:
        return _get(cur, card_number)


def by_serial(db: Database, issuer_id: str, serial: str) -> BookCard | None:
    with db.tx() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM cards WHERE issuer_id = ? AND serial = ?",
            (issuer_id.upper(), serial.upper()),
        )
        r = cur.fetchone()
    return None if r is None else _row(r)


def registry_lookup(db: Database) -> Any:
    """A roster card lookup (gateway/subsidy/roster.py ``CardLookup``) over this book."""

    def lookup(card_number: str) -> CardRecord | None:
        card = get_card(db, card_number)
        return None if card is None else card.card_record()

    return lookup


# -- validation -----------------------------------------------------------------------------
def _bad(index: int, reason: str) -> Refused:
    return Invalid("bad_record", f"record {index}: {reason}")


def _time(doc: dict[str, Any], key: str, index: int, *, optional: bool = True) -> None:
    value = doc.get(key)
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise _bad(index, f"{key} must be an ISO 8601 time")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise _bad(index, f"{key} {value!r} is not an ISO 8601 time") from None


def _int(doc: dict[str, Any], key: str, index: int, lo: int, hi: int, *, optional: bool) -> None:
    value = doc.get(key)
    if value is None and optional:
        return
    if type(value) is not int or not lo <= value <= hi:
        raise _bad(index, f"{key} must be a whole number {lo}..{hi}")


def check_record(doc: Any, index: int = 0) -> dict[str, Any]:
    """The record if it is a well-formed issuance record, else ``Invalid`` naming what is wrong."""
    if not isinstance(doc, dict):
        raise _bad(index, "must be a JSON object")
    if doc.get("schema") != RECORD_SCHEMA:
        raise _bad(index, f"schema must be {RECORD_SCHEMA}")
    number = doc.get("card_number")
    if not isinstance(number, str) or not _CARD_NUMBER.match(number):
        raise _bad(index, "card_number must be 19 digits")
    if doc.get("serial") != serial_of(number).hex().upper():
        raise _bad(index, f"serial must be {serial_of(number).hex().upper()} for card {number}")
    issuer = doc.get("issuer_id")
    if not isinstance(issuer, str) or not _HEX16.match(issuer):
        raise _bad(index, "issuer_id must be 16 upper-case hex digits")
    chip = doc.get("chip_id")
    if chip is not None and (not isinstance(chip, str) or not _HEX16.match(chip)):
        raise _bad(index, "chip_id must be 16 upper-case hex digits or null")
    holder = doc.get("holder")
    if not isinstance(holder, dict):
        raise _bad(index, "holder must be an object")
    for key in ("name", "id_number"):
        if not isinstance(holder.get(key), str) or not holder[key].strip():
            raise _bad(index, f"holder.{key} must be a non-empty string")
    _int(holder, "id_type", index, 0, 0xFF, optional=False)
    _int(doc, "revision", index, 1, 2**62, optional=False)
    _int(doc, "card_kind", index, 0, 0xFF, optional=False)
    _int(doc, "card_type", index, 0, 0xFF, optional=False)
    _int(doc, "carry_fen", index, 0, 2**31 - 1, optional=False)
    _int(doc, "balance_fen", index, 0, 2**31 - 1, optional=True)
    _int(doc, "hotlist_version", index, 0, 2**62, optional=True)
    if doc.get("state") not in _STATES:
        raise _bad(index, f"state must be one of {', '.join(sorted(_STATES))}")
    for key in ("replaces", "replaced_by"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, str) or not _CARD_NUMBER.match(value)):
            raise _bad(index, f"{key} must be a 19-digit card number or null")
    _time(doc, "created_at", index, optional=False)
    for key in ("activated_at", "lost_at", "carry_loaded_at", "balance_as_of"):
        _time(doc, key, index)
    return doc


def content_hash(doc: dict[str, Any]) -> str:
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- ingest ---------------------------------------------------------------------------------
def _store_one(cur: Cursor, desk_id: str, doc: dict[str, Any], now: int) -> tuple[str, str, str]:
    number, revision = doc["card_number"], doc["revision"]
    digest = content_hash(doc)
    cur.execute(
        "SELECT content_hash FROM card_revisions WHERE card_number = ? AND revision = ?",
        (number, revision),
    )
    held = cur.fetchone()
    if held is not None:
        if held[0] == digest:
            return DUPLICATE, "", ""
        return (
            CONFLICT,
            f"revision {revision} of card {number} is held with other content",
            "revision_held",
        )
    current = _get(cur, number)
    if current is not None and current.desk_id != desk_id:
        return (
            CONFLICT,
            f"card {number} belongs to the book of desk {current.desk_id}",
            "other_desk",
        )
    if current is None:
        cur.execute(
            "SELECT card_number FROM cards WHERE issuer_id = ? AND serial = ?",
            (doc["issuer_id"], doc["serial"]),
        )
        clash = cur.fetchone()
        if clash is not None:
            return (
                CONFLICT,
                f"serial {doc['serial']} already belongs to card {clash[0]}",
                "serial_used",
            )
    stale = current is not None and revision < current.desk_revision
    broken = numbers.use(cur, desk_id, doc, in_book=current is not None, apply=not stale)
    if broken is not None:
        return CONFLICT, broken.reason, broken.code
    text = json.dumps(doc, ensure_ascii=False, sort_keys=True)
    cur.execute(
        "INSERT INTO card_revisions (card_number, revision, desk_id, content_hash, record,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?)",
        (number, revision, desk_id, digest, text, now),
    )
    holder = doc["holder"]
    values = (
        doc["serial"],
        doc["issuer_id"],
        doc.get("chip_id"),
        holder["name"],
        holder["id_type"],
        holder["id_number"].upper(),
        doc["card_kind"],
        doc["card_type"],
        doc["state"],
        doc.get("replaces"),
        doc.get("replaced_by"),
        doc["carry_fen"],
        desk_id,
        revision,
        text,
        now,
    )
    if current is None:
        cur.execute(
            "INSERT INTO cards (serial, issuer_id, chip_id, name, id_type, id_number, card_kind,"
            " card_type, desk_state, replaces, replaced_by, carry_fen, desk_id, desk_revision,"
            " record, updated_at, card_number) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, number),
        )
        return STORED, "", ""
    if revision < current.desk_revision:
        return STALE, f"the book holds the newer revision {current.desk_revision}", ""
    cur.execute(
        "UPDATE cards SET serial = ?, issuer_id = ?, chip_id = ?, name = ?, id_type = ?,"
        " id_number = ?, card_kind = ?, card_type = ?, desk_state = ?, replaces = ?,"
        " replaced_by = ?, carry_fen = ?, desk_id = ?, desk_revision = ?, record = ?,"
        " updated_at = ? WHERE card_number = ?",
        (*values, number),
    )
    return STORED, "", ""


def ingest(
    db: Database, desk_id: str, records: list[Any], *, book_of: str | None = None
) -> list[dict[str, Any]]:
    """Store a desk's issuance records; one answer per record, in order.

    ``book_of``: the desk whose book the records come from, refused (``not_this_desk``)
    unless it is the caller. Every record is checked first: one malformed record refuses
    the whole request and nothing is stored. Then the records are stored in one
    transaction; one that breaks the numbering rules (gateway/numbers.py) is a conflict
    with its code and reason. Every lost or replaced card is put on the gateway's hotlist
    in that transaction.
    """
    numbers.check_desk(desk_id, book_of)
    if not isinstance(records, list):
        raise Invalid("bad_layout", "records must be a list")
    if len(records) > MAX_RECORDS:
        raise TooLarge("too_many_records", f"at most {MAX_RECORDS} records per request")
    docs = [check_record(doc, i) for i, doc in enumerate(records)]
    try:
        answers = _store_all(db, desk_id, docs)
    except RACED:  # a concurrent push for the same person or number committed first:
        answers = _store_all(db, desk_id, docs)  # now the rules see it and answer
    return answers


@retried
def _store_all(db: Database, desk_id: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record in one transaction, an answer each; each lost or replaced card goes on
    the hotlist in the same transaction."""
    answers = []
    now = now_ms()
    with db.tx() as cur:
        for doc in docs:
            status, reason, code = _store_one(cur, desk_id, doc, now)
            if status == STORED and doc.get("replaces") and doc["state"] == CardState.ACTIVE:
                # 补卡: unpaid subsidy lines follow the holder to the new card
                follow_replacement(cur, doc["replaces"], doc["card_number"], f"desk {desk_id}")
            answer = {"card_number": doc["card_number"], "revision": doc["revision"]}
            answer["status"] = status
            if code:
                answer["code"] = code
            if reason:
                answer["reason"] = reason
            answers.append(answer)
        for number in dict.fromkeys(doc["card_number"] for doc in docs):
            _hotlist_in(cur, db.dialect, number, f"desk {desk_id}")
    return answers


def desk_cursor(db: Database, desk_id: str) -> int:
    """The highest revision this desk has delivered (its next push starts after it)."""
    with db.tx() as cur:
        cur.execute(
            "SELECT COALESCE(MAX(revision), 0) FROM card_revisions WHERE desk_id = ?", (desk_id,)
        )
        return int(cur.fetchone()[0])


# -- loss and hotlist -----------------------------------------------------------------------
def _hotlist_in(cur: Cursor, dialect: str, card_number: str, actor: str) -> int | None:
    """Put a lost or replaced card on the gateway's hotlist (once) and record the version on
    the card, inside the caller's transaction so the loss and the hotlist entry commit
    together (a lost card off the hotlist keeps paying at validators); the version, or None
    for a card that is not lost."""
    card = _get(cur, card_number)
    if card is None or card.state not in (CardState.LOST, CardState.REPLACED):
        return None
    if card.hotlist_version is not None:
        return card.hotlist_version
    reason = f"挂失 {card_number}"
    version = hotlist.change_in(
        cur, dialect, hotlist.ADD, card.issuer_id, card.serial, reason, actor
    )
    if version is None:  # listed already (by an operator, or for another book)
        cur.execute(
            "SELECT version FROM hotlist WHERE issuer_id = ? AND card_serial = ?",
            (card.issuer_id, card.serial),
        )
        version = int(cur.fetchone()[0])
    cur.execute(
        "UPDATE cards SET hotlist_version = ? WHERE card_number = ? AND hotlist_version IS NULL",
        (version, card_number),
    )
    return version


def _holders_card(cur: Cursor, card_number: str, id_number: str) -> BookCard:
    """The card ``card_number`` names, when ``id_number`` is its holder's: what 挂失 and 解挂
    ask of a caller who has only the card number and an ID number."""
    card_number = card_number_of(card_number)
    try:
        id_number = code(id_number, "ID number").upper()
    except TextError as exc:
        raise Invalid("bad_id_number", str(exc)) from None
    card = _get(cur, card_number)
    if card is None:
        raise NotFound("unknown_card", f"card {card_number} is not in the gateway's card book")
    if card.id_number != id_number:
        raise Forbidden("not_the_holder", "the ID number given is not the card holder's")
    return card


@retried
def report_loss(db: Database, card_number: str, id_number: str, *, via: str) -> BookCard:
    """挂失: the holder (proved by the ID number on the card's record) reports the card lost.

    Idempotent: reporting a lost card again changes nothing. The card goes on the hotlist
    in the same transaction; terminals refuse it after their next hotlist sync.
    """
    with db.tx() as cur:
        card = _holders_card(cur, card_number, id_number)
        card_number = card.card_number
        if card.state in (CardState.PENDING, CardState.VOID):
            raise Conflict("not_active", f"card {card_number} is {card.state}, not in use")
        if card.state == CardState.ACTIVE:
            cur.execute(
                "UPDATE cards SET lost_at = ?, lost_via = ?, updated_at = ? WHERE card_number = ?",
                (now_ms(), via, now_ms(), card_number),
            )
            numbers.ended(cur, card_number)
        _hotlist_in(cur, db.dialect, card_number, via)
        out = _get(cur, card_number)
    assert out is not None
    return out


@retried
def unblock(db: Database, card_number: str, id_number: str, *, actor: str, note: str) -> BookCard:
    """解挂: the holder (the ID number on the card's record) found a card reported lost at the
    gateway; the book has it active again and it leaves the hotlist, in one transaction. The
    hotlist change is the trail entry (who, when, ``解挂 <card>: <note>``). A loss the desk
    recorded is lifted at the desk (its book is the authority); a replaced card, or one
    whose holder has a new card claimed meanwhile, never comes back."""
    with db.tx() as cur:
        card = _holders_card(cur, card_number, id_number)
        card_number = card.card_number
        if card.desk_state != CardState.ACTIVE:
            raise Conflict(
                "desk_state",
                f"card {card_number} is {card.desk_state} in its desk's book: a desk's loss "
                "is lifted at the desk; a replaced card never comes back",
            )
        if card.lost_at is None:
            raise Conflict("not_lost", f"card {card_number} is not reported lost")
        cur.execute(
            "SELECT card_number FROM card_claims WHERE live = 1 AND card_number <> ?"
            " AND id_number = ?",
            (card_number, card.id_number),
        )
        other = cur.fetchone()
        if other is not None:
            raise Conflict(
                "replacement_claimed",
                f"card {other[0]} is claimed for this holder meanwhile: the lost card stays lost",
            )
        cur.execute(
            "UPDATE cards SET lost_at = NULL, lost_via = NULL, hotlist_version = NULL,"
            " updated_at = ? WHERE card_number = ? AND lost_at IS NOT NULL",
            (now_ms(), card_number),
        )
        cur.execute("UPDATE card_claims SET live = 1 WHERE card_number = ?", (card_number,))
        reason = f"解挂 {card_number}: {note}"[:200]
        hotlist.change_in(
            cur, db.dialect, hotlist.REMOVE, card.issuer_id, card.serial, reason, actor
        )
        out = _get(cur, card_number)
    assert out is not None
    return out


# -- balances -----------------------------------------------------------------------------
# The replacement balance (补卡 carry-over, docs/security.md): only what the host verified.
# A purchase TAC covers amount, type, terminal, sequence and card time but not the balance
# before, so a purse balance is anchored on a load (its TAC covers the new balance) or on
# the card's own issuance record, and verified purchases after the anchor are taken off.
ACCEPTED_BY_CLEARING = ("accepted", "duplicate")  # forwarder outcomes of a verified TAC
REJECTED_BY_CLEARING = "rejected"


@dataclass(frozen=True)
class CarryRules:
    """When the gateway vouches for a lost card's balance (gateway settings).

    ``settling``: time after the card's hotlist publication during which offline
    terminals may still upload its debits, so no balance is given; ``clock_skew``: how far
    a card time may run ahead of ``clock`` (the gateway's local time) before it is refused
    as a future date."""

    settling: timedelta = timedelta(days=7)
    clock_skew: timedelta = timedelta(minutes=10)
    clock: Callable[[], datetime] = datetime.now


@dataclass(frozen=True, slots=True)
class _Purchase:
    terminal_id: str
    terminal_seq: int
    txn_type: int
    amount: int
    balance_before: int
    card_atc: int
    when: datetime
    state: str
    tac: str | None
    outcome: str | None
    reason: str | None

    @property
    def name(self) -> str:
        return f"terminal {self.terminal_id} seq {self.terminal_seq}"


def _unproven(card_number: str, problems: list[str]) -> Refused:
    return Conflict(
        "balance_unproven",
        f"the balance of card {card_number} cannot be proven from verified records, so "
        f"nothing may be carried; read the old card or settle it at the back office: "
        + "; ".join(problems),
    )


def _check_settled(cur: Cursor, card: BookCard, rules: CarryRules) -> None:
    """Refuse unless the card is lost and its hotlist entry has been out ``settling`` long."""
    if card.state not in (CardState.LOST, CardState.REPLACED):
        raise Conflict(
            "card_in_use",
            f"card {card.card_number} is {card.state}, not reported lost: report it lost "
            "(挂失) first; its balance is given once late offline debits have had time "
            "to arrive",
        )
    published = None
    if card.hotlist_version is not None:
        cur.execute("SELECT at FROM hotlist_changes WHERE version = ?", (card.hotlist_version,))
        row = cur.fetchone()
        published = None if row is None else int(row[0])
    if published is None:
        raise Conflict(
            "balance_settling",
            f"card {card.card_number} is not on the gateway's hotlist yet; try again later",
        )
    until = published + int(rules.settling.total_seconds() * 1000)
    if now_ms() < until:
        after = datetime.fromtimestamp(until / 1000).replace(microsecond=0)
        raise Conflict(
            "balance_settling",
            f"card {card.card_number} was hotlisted at "
            f"{datetime.fromtimestamp(published / 1000):%Y-%m-%d %H:%M}; offline transactions "
            f"may still arrive; try after {after.isoformat(sep=' ')}",
        )


def _purchases(cur: Cursor, card: BookCard) -> list[_Purchase]:
    cur.execute(
        "SELECT t.terminal_id, t.terminal_seq, t.txn_type, t.amount, t.balance_before,"
        " t.card_atc, t.txn_time, t.state, t.tac, o.outcome, o.reason FROM txn t"
        " LEFT JOIN outbox o ON o.kind = 'txn' AND o.ref_id = t.id"
        " WHERE t.issuer_id = ? AND t.card_serial = ?",
        (card.issuer_id, card.serial),
    )
    out = [
        _Purchase(r[0], *map(int, r[1:6]), datetime.fromisoformat(r[6]), *r[7:11])
        for r in cur.fetchall()
    ]
    return sorted(out, key=lambda p: (p.when, p.card_atc, p.terminal_id, p.terminal_seq))


class _Load(NamedTuple):
    before: int  # MAC1 covers it
    after: int  # the TAC covers it
    at: datetime  # host time, written into the card's log
    reference: str
    online_atc: int
    state: str


def _loads(cur: Cursor, card: BookCard) -> list[_Load]:
    """The card's confirmed and still unresolved loads, by online counter."""
    cur.execute(
        "SELECT balance_before, amount, host_time, reference, online_atc, state FROM loads"
        " WHERE issuer_id = ? AND card_serial = ? AND state <> 'void'"  # loads_live's predicate
        " AND state IN ('confirmed', 'authorized') ORDER BY online_atc",
        (card.issuer_id, card.serial),
    )
    return [
        _Load(int(b), int(b) + int(a), datetime.fromisoformat(t), ref, int(atc), state)
        for b, a, t, ref, atc, state in cur.fetchall()
    ]


def _verified(p: _Purchase, card: BookCard, hsm: HostSecurityModule | None) -> str | None:
    """None when the purchase's TAC is proven (clearing accepted it, or the HSM checks it),
    else why not."""
    if p.state != "settled" or p.tac is None:
        return f"{p.name} is a {p.state} record without a proven debit"
    if p.outcome in ACCEPTED_BY_CLEARING:
        return None
    if p.outcome == REJECTED_BY_CLEARING:
        return f"{p.name} was rejected by clearing ({p.reason or 'no reason given'})"
    if hsm is None:
        return f"{p.name} is not cleared yet and this gateway has no HSM to check its TAC"
    try:
        valid = hsm.purchase_tac_valid(
            issuer_id=bytes.fromhex(card.issuer_id),
            card_serial=bytes.fromhex(card.serial),
            amount=p.amount,
            txn_type=p.txn_type,
            terminal_id=bytes.fromhex(p.terminal_id),
            terminal_seq=p.terminal_seq,
            when=p.when,
            tac=bytes.fromhex(p.tac),
        )
    except LoadDeclined as exc:
        return f"{p.name}: the HSM cannot check its TAC ({exc.reason})"
    return None if valid else f"{p.name} carries a TAC the HSM does not verify"


def _initial(card: BookCard) -> tuple[int, datetime | None]:
    """The balance the card's own desk issued it with: its carried balance once loaded."""
    r = card.record
    if r.get("replaces") and r.get("carry_loaded_at"):
        return int(r.get("carry_fen") or 0), datetime.fromisoformat(r["carry_loaded_at"])
    return 0, None


def _backdated(purchases: list[_Purchase], loads: list[_Load], start: int) -> list[str]:
    """Between two covered balances (issuance or a load's new balance, and the next load's
    balance before) the verified purchases dated there cannot spend more than the
    difference; more means a purchase is dated before a load it followed."""
    problems = []
    balance, since = start, datetime.min
    for load in loads:
        spent = sum(p.amount for p in purchases if since <= p.when < load.at)
        if spent > balance - load.before:
            problems.append(
                f"verified purchases dated {since:%Y-%m-%d %H:%M:%S} to "
                f"{load.at:%Y-%m-%d %H:%M:%S} spend {spent} fen but load {load.reference} "
                f"found {load.before} of {balance} fen left: a purchase is dated before a "
                "load it followed"
            )
        balance, since = load.after, load.at
    return problems


def _anchor(
    card: BookCard, loads: list[_Load], initial: tuple[int, datetime | None]
) -> tuple[int, datetime, dict[str, Any]]:
    """The newest covered balance: (balance, from when purchases count, its description)."""
    if loads:
        newest = loads[-1]
        anchor = {"kind": "load", "reference": newest.reference, "balance_fen": newest.after}
        return newest.after, newest.at, {**anchor, "at": newest.at.isoformat()}
    balance, at = initial
    at = at or datetime.fromisoformat(card.record["created_at"])
    anchor = {"kind": "issuance", "desk_id": card.desk_id, "balance_fen": balance}
    return balance, datetime.min, {**anchor, "at": at.isoformat()}


def _take_off(
    later: list[tuple[_Purchase, str | None]], balance: int, latest: datetime, problems: list[str]
) -> tuple[int, list[_Purchase]]:
    """The anchor's balance less the purchases after it, each checked; every problem found is
    appended to ``problems``."""
    counted: list[_Purchase] = []
    for p, why in later:
        if p.when > latest:
            problems.append(f"{p.name} is dated {p.when.isoformat()}, in the future")
        if why is not None:
            problems.append(why)
            continue
        if counted and p.card_atc != (counted[-1].card_atc + 1) & 0xFFFF:
            problems.append(
                f"{p.name} has offline counter {p.card_atc} after {counted[-1].card_atc}: "
                "a gap, some debit is missing"
            )
        if p.balance_before != balance:
            problems.append(
                f"{p.name} claims {p.balance_before} fen before its debit, but the proven "
                f"balance there is {balance} fen"
            )
        balance -= p.amount
        counted.append(p)
    return balance, counted


def proven_balance(
    db: Database,
    card_number: str,
    *,
    hsm: HostSecurityModule | None = None,
    rules: CarryRules | None = None,
) -> dict[str, Any]:
    """The balance a lost card's replacement may carry, from verified evidence only.

    Anchor: the newest confirmed load (its TAC covers the new balance) or, with none, the
    issuance record of the card's own desk; a later load still unresolved is a refusal.
    Taken off: every purchase dated from the anchor on, each of which must be settled with
    a verified TAC, within ``clock_skew`` of now, claim the running balance as its balance
    before, and follow the previous one's offline counter. Anything else is a ``Conflict``
    listing what is wrong, never a number."""
    card_number = card_number_of(card_number)
    with db.tx() as cur:
        card = _get(cur, card_number)
        if card is None:
            raise NotFound("unknown_card", f"card {card_number} is not in the gateway's card book")
        return _proven(cur, card, hsm, rules or CarryRules())


def _proven(
    cur: Cursor, card: BookCard, hsm: HostSecurityModule | None, rules: CarryRules
) -> dict[str, Any]:
    """``proven_balance`` of a card in the caller's transaction."""
    card_number = card.card_number
    _check_settled(cur, card, rules)
    purchases = _purchases(cur, card)
    every_load = _loads(cur, card)
    loads = [x for x in every_load if x.state == "confirmed"]
    initial = _initial(card)
    balance, since, anchor = _anchor(card, loads, initial)
    verdicts = [(p, _verified(p, card, hsm)) for p in purchases]
    problems = _backdated([p for p, why in verdicts if why is None], loads, initial[0])
    newest_atc = loads[-1].online_atc if loads else -1
    problems += [
        f"load {x.reference} (online counter {x.online_atc}) is not resolved: the card may "
        "hold it or not"
        for x in every_load
        if x.state != "confirmed" and x.online_atc > newest_atc
    ]
    later = [(p, why) for p, why in verdicts if p.when >= since]
    balance, counted = _take_off(later, balance, rules.clock() + rules.clock_skew, problems)
    if problems:
        raise _unproven(card_number, problems)
    return {
        "card_number": card_number,
        "balance_fen": balance,
        "as_of": counted[-1].when.isoformat() if counted else anchor["at"],
        "source": "purchase" if counted else anchor["kind"],
        "anchor": anchor,
        "purchases": [
            {"terminal_id": p.terminal_id, "terminal_seq": p.terminal_seq, "amount": p.amount}
            for p in counted
        ],
    }


# -- the carried balance's load (补卡 carry-over) ----------------------------------------------
# A replacement's serial is its card number's last 16 digits (``serial_of``): how a load,
# which names a card by serial, finds the claim the desk made for that number.
_CLAIM_OF_SERIAL = "k.issuer_id = l.issuer_id AND substr(k.card_number, 4) = l.card_serial"


def carry_reserve(
    desk: Terminal, hsm: HostSecurityModule | None, rules: CarryRules
) -> Callable[[Cursor, LoadRecord], None]:
    """The ``reserve`` of a desk's carried-balance load (gateway/loads.py ``authorize``)."""

    def reserve(cur: Cursor, load: LoadRecord) -> None:
        _reserve_carry(cur, desk, load, hsm, rules)

    return reserve


def _reserve_carry(
    cur: Cursor, desk: Terminal, load: LoadRecord, hsm: HostSecurityModule | None, rules: CarryRules
) -> None:
    """Allow a carry only onto the replacement this desk claimed for a lost card of the same
    holder and kind, of exactly the balance the gateway proves for that lost card, while no
    other carry of that lost card (onto any replacement) is live. The lost card's row is
    locked first, so two carries at once are decided one after the other."""
    cur.execute(
        "SELECT k.card_number, k.desk_id, k.id_number, k.card_kind, k.replaces, k.live,"
        f" k.released_at FROM card_claims k, loads l WHERE l.id = ? AND {_CLAIM_OF_SERIAL}",
        (load.id,),
    )
    claim = cur.fetchone()
    if claim is None or claim[4] is None:
        raise Forbidden(
            "not_a_replacement",
            f"card {load.card_serial} is not claimed at the card centre as the replacement of "
            "a lost card: a carried balance is loaded only onto a replacement",
        )
    number, claimed_by, id_number, kind, replaces, live, released = claim
    if claimed_by != desk.terminal_id:
        raise Forbidden(
            "other_desk",
            f"replacement {number} was claimed by desk {claimed_by}: only that desk loads its "
            "carried balance",
        )
    if not live or released is not None:
        raise Conflict("claim_not_live", f"the claim on replacement {number} is not live")
    lost = _get(cur, replaces)
    if lost is None or (lost.id_number, lost.record["card_kind"]) != (id_number, kind):
        raise Forbidden(
            "not_a_replacement",
            f"card {replaces} is not in the card book as a card of the holder and kind of "
            f"replacement {number}",
        )
    cur.execute(
        "UPDATE cards SET updated_at = updated_at WHERE card_number = ?", (lost.card_number,)
    )
    cur.execute(
        "SELECT l.reference, k.card_number, l.state FROM loads l, card_claims k"
        f" WHERE k.replaces = ? AND {_CLAIM_OF_SERIAL} AND l.purpose = ?"
        " AND l.state IN (?, ?) AND l.id <> ? ORDER BY l.id",
        (lost.card_number, CARRY_PURPOSE, AUTHORIZED, CONFIRMED, load.id),
    )
    done = cur.fetchone()
    if done is not None:
        raise Conflict(
            "carried_already",
            f"the balance of lost card {lost.card_number} is carried by load {done[0]} onto "
            f"card {done[1]} ({done[2]}): it is carried once; only a void carry is loaded again",
        )
    proven = _proven(cur, lost, hsm, rules)["balance_fen"]
    if load.amount != proven:
        raise Invalid(
            "carry_amount",
            f"a carry from lost card {lost.card_number} loads the balance the gateway proves "
            f"for it, {proven} fen, not {load.amount} fen",
        )
