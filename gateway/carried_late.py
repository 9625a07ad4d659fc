"""Purchases of a replaced card that reached the gateway after its balance was carried.

A replacement is loaded with the balance the gateway proved for the lost card when the desk
asked for the carry (gateway/cards.py ``proven_balance``, in the carry load's transaction).
A genuine debit of the old card uploaded after that (an offline validator uploading late, a
validator whose hotlist was stale) was not in that count: the issuer paid it twice, on the
replacement and to the merchant. The money is gone by then; this module says where, by card,
so the back office can recover it: a count for /health and the metrics, a list for the admin
route and the CLI (as gateway/conflicts.py does for records held aside)."""

from __future__ import annotations

from typing import Any

from gateway.cards import _CLAIM_OF_SERIAL, card_number_of
from gateway.loads import VOID
from gateway.storage import Cursor, Database
from terminal.roles.registry import CARRY_PURPOSE

# Each live carry (authorized: the card may hold it; confirmed: it does; a void one moved no
# money), the claim that named its lost card, and that card. ``<> 'void'`` as written is the
# predicate of the loads_live index, which finds a claim's load.
_CARRIES = (
    f" FROM loads l JOIN card_claims k ON {_CLAIM_OF_SERIAL}"
    " JOIN cards c ON c.card_number = k.replaces"
    f" WHERE l.purpose = ? AND l.state <> '{VOID}'"
)
# A purchase of the lost card (its issuer and serial: a twin of another issuer is not the
# card) received after the carry was recorded, both times the gateway's epoch milliseconds
# (``now_ms``). Asked per carry, so the (card_serial, received_at) index reads only the late
# rows: a join leaves PostgreSQL filtering every purchase of every lost card.
_LATE = "t.issuer_id = {issuer} AND t.card_serial = {serial} AND t.received_at > {after}"
_LATE_OF_CARRY = _LATE.format(issuer="c.issuer_id", serial="c.serial", after="l.created_at")
_COUNT_OF_CARRY = f"(SELECT COUNT(*) FROM txn t WHERE {_LATE_OF_CARRY})"


def late_count(cur: Cursor) -> int:
    """How many purchases of replaced cards arrived after their balance was carried."""
    cur.execute(f"SELECT COALESCE(SUM({_COUNT_OF_CARRY}), 0){_CARRIES}", (CARRY_PURPOSE,))
    return int(cur.fetchone()[0])


def late_after_carry(db: Database, *, card: str | None = None) -> dict[str, Any]:
    """The purchases received after a carry (their count, as ``late_count``) by lost card
    (only ``card``'s, the lost or the replacement card): the carry, the late records in the
    order received with clearing's answer so far, and their sums in fen, settled apart from
    suspect (a suspect row may not have debited). A lost card is carried once, so an entry is
    one lost card and its carry."""
    where, args = "", (CARRY_PURPOSE,)
    if card is not None:
        number = card_number_of(card)
        where, args = " AND (c.card_number = ? OR k.card_number = ?)", (*args, number, number)
    with db.read() as cur:
        cur.execute(
            "SELECT c.card_number, k.card_number, l.reference, l.state, l.amount, l.created_at,"
            f" c.issuer_id, c.serial{_CARRIES}{where} AND {_COUNT_OF_CARRY} > 0"
            " ORDER BY c.card_number, l.id",
            args,
        )
        cards = [
            {
                "lost_card_number": lost,
                "replacement_card_number": replacement,
                "carry_reference": reference,
                "carry_state": state,
                "carried_fen": int(carried),
                "carried_at_ms": int(at),
                "late": _late_records(cur, issuer, serial, int(at)),
            }
            for lost, replacement, reference, state, carried, at, issuer, serial in cur.fetchall()
        ]
    for entry in cards:
        late = entry["late"]
        entry["late_settled_fen"] = sum(r["amount"] for r in late if r["state"] == "settled")
        entry["late_suspect_fen"] = sum(r["amount"] for r in late if r["state"] == "suspect")
    return {"late_after_carry": sum(len(c["late"]) for c in cards), "cards": cards}


def _late_records(cur: Cursor, issuer: str, serial: str, after: int) -> list[dict[str, Any]]:
    """One lost card's purchases received after ``after`` (its carry), in the order received,
    each with clearing's answer so far (None: not posted yet)."""
    cur.execute(
        "SELECT t.terminal_id, t.terminal_seq, t.amount, t.txn_time, t.state, t.received_at,"
        " o.outcome FROM txn t LEFT JOIN outbox o ON o.kind = 'txn' AND o.ref_id = t.id"
        f" WHERE {_LATE.format(issuer='?', serial='?', after='?')}"
        " ORDER BY t.received_at, t.id",
        (issuer, serial, after),
    )
    return [
        {
            "terminal_id": tid,
            "seq": int(seq),
            "amount": int(amount),
            "txn_time": txn_time,
            "state": state,
            "received_at_ms": int(received_at),
            "clearing": outcome,
        }
        for tid, seq, amount, txn_time, state, received_at, outcome in cur.fetchall()
    ]
