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
from gateway.loads import AUTHORIZED, CONFIRMED
from gateway.storage import Cursor, Database
from terminal.roles.registry import CARRY_PURPOSE

# Each live carry (authorized: the card may hold it; confirmed: it does; a void one moved no
# money) with the claim that named its lost card, that card, and the lost card's purchases
# (its issuer and serial: a twin of another issuer is not the card) received after the carry
# was recorded. Both times are the gateway's epoch milliseconds (``now_ms``).
_JOINS = (
    f" FROM loads l JOIN card_claims k ON {_CLAIM_OF_SERIAL}"
    " JOIN cards c ON c.card_number = k.replaces"
    " JOIN txn t ON t.issuer_id = c.issuer_id AND t.card_serial = c.serial"
    " AND t.received_at > l.created_at"
)
_LIVE = " WHERE l.purpose = ? AND l.state IN (?, ?)"
_LIVE_ARGS = (CARRY_PURPOSE, AUTHORIZED, CONFIRMED)


def late_count(cur: Cursor) -> int:
    """How many purchases of replaced cards arrived after their balance was carried."""
    cur.execute(f"SELECT COUNT(*){_JOINS}{_LIVE}", _LIVE_ARGS)
    return int(cur.fetchone()[0])


def late_after_carry(db: Database, *, card: str | None = None) -> dict[str, Any]:
    """The purchases received after a carry (their count, as ``late_count``) by lost card
    (only ``card``'s, the lost or the replacement card): the carry, the late records in the
    order received with clearing's answer so far, and their sums in fen, settled apart from
    suspect (a suspect row may not have debited). A lost card is carried once, so an entry is
    one lost card and its carry."""
    where, args = _LIVE, _LIVE_ARGS
    if card is not None:
        number = card_number_of(card)
        where, args = (
            f"{_LIVE} AND (c.card_number = ? OR k.card_number = ?)",
            (*args, number, number),
        )
    with db.read() as cur:
        cur.execute(
            "SELECT c.card_number, k.card_number, l.reference, l.state, l.amount, l.created_at,"
            " t.terminal_id, t.terminal_seq, t.amount, t.txn_time, t.state, t.received_at,"
            f" o.outcome{_JOINS} LEFT JOIN outbox o ON o.kind = 'txn' AND o.ref_id = t.id{where}"
            " ORDER BY c.card_number, l.id, t.received_at, t.id",
            args,
        )
        rows = cur.fetchall()
    out: dict[str, dict[str, Any]] = {}
    for lost, replacement, reference, state, carried, at, *record in rows:
        entry = out.setdefault(
            reference,
            {
                "lost_card_number": lost,
                "replacement_card_number": replacement,
                "carry_reference": reference,
                "carry_state": state,
                "carried_fen": int(carried),
                "carried_at_ms": int(at),
                "late_settled_fen": 0,
                "late_suspect_fen": 0,
                "late": [],
            },
        )
        tid, seq, amount, txn_time, txn_state, received_at, outcome = record
        entry[f"late_{txn_state}_fen"] += int(amount)
        entry["late"].append(
            {
                "terminal_id": tid,
                "seq": int(seq),
                "amount": int(amount),
                "txn_time": txn_time,
                "state": txn_state,
                "received_at_ms": int(received_at),
                "clearing": outcome,
            }
        )
    return {"late_after_carry": len(rows), "cards": list(out.values())}
