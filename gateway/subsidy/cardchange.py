"""Card changes (挂失补卡): unpaid lines follow their payee to the new card.

A line is moved only while nothing pays it (no live kiosk load, no bank line sent or
paid), and only to a card the card book holds for the line's payee (the same ID number),
active and not lost; each move is a row in the line's trail (``subsidy_line_events``).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Conflict, Forbidden, NotFound
from gateway.storage import Cursor, Database, now_ms
from gateway.subsidy.bank import free_of_bank, free_of_kiosk, line_event
from gateway.subsidy.store import check_actor
from terminal.roles.registry import serial_of

CARD_CHANGED = "card_changed"


def _payee_card(cur: Cursor, card_number: str, id_number: str, line_id: int) -> None:
    cur.execute(
        "SELECT id_number, desk_state, lost_at FROM cards WHERE card_number = ?", (card_number,)
    )
    r = cur.fetchone()
    if r is None:
        raise NotFound("unknown_card", f"card {card_number} is not in the gateway's card book")
    if r[0].upper() != id_number.upper():
        raise Forbidden(
            "not_the_payee",
            f"card {card_number} belongs to another ID number than line {line_id}'s payee: "
            "a line is paid only to its payee's own card",
        )
    if r[1] != "active" or r[2] is not None:
        raise Conflict("card_not_active", f"card {card_number} is not an active card")


def _move(cur: Cursor, line_id: int, old: str, new: str, actor: str, at: int, why: str) -> bool:
    cur.execute(
        "UPDATE subsidy_lines SET card_number = ?, card_serial = ? WHERE id = ? AND live = 1"
        f" AND card_number = ? AND {free_of_kiosk('subsidy_lines')}"
        f" AND {free_of_bank('subsidy_lines')}",
        (new, serial_of(new).hex().upper(), line_id, old),
    )
    if cur.rowcount != 1:
        return False
    line_event(cur, line_id, CARD_CHANGED, actor, at, f"{old} -> {new}: {why}")
    return True


def follow_replacement(cur: Cursor, old: str, new: str, actor: str) -> int:
    """Move the unpaid lines of card ``old`` to its replacement ``new`` (same holder);
    called by the card book when a replacement record arrives. The lines moved."""
    cur.execute("SELECT id_number FROM cards WHERE card_number = ?", (new,))
    holder = cur.fetchone()
    if holder is None:
        return 0
    cur.execute(
        "SELECT id FROM subsidy_lines WHERE card_number = ? AND live = 1 AND id_number = ?"
        " ORDER BY id",
        (old, holder[0]),
    )
    now = now_ms()
    return sum(
        _move(cur, int(r[0]), old, new, actor, now, "补卡 (card replaced)") for r in cur.fetchall()
    )


def redirect_line(db: Database, line_id: int, card_number: str, actor: str, note: str) -> dict:
    """Move one unpaid line to another card of its payee (a correction by the office)."""
    actor = check_actor(actor)
    with db.tx() as cur:
        cur.execute(
            "SELECT card_number, id_number FROM subsidy_lines WHERE id = ? AND live = 1",
            (line_id,),
        )
        r = cur.fetchone()
        if r is None:
            raise NotFound("unknown_line", f"no live subsidy line {line_id}")
        _payee_card(cur, card_number, r[1], line_id)
        if not _move(cur, line_id, r[0], card_number, actor, now_ms(), note or "redirected"):
            raise Conflict(
                "line_in_payment",
                f"line {line_id} is paid or being paid (kiosk or bank); it stays on {r[0]}",
            )
    return {"line_id": line_id, "from": r[0], "to": card_number}


def line_trail(db: Database, line_id: int) -> list[dict[str, Any]]:
    with db.tx() as cur:
        cur.execute(
            "SELECT action, actor, at, note FROM subsidy_line_events WHERE line_id = ? ORDER BY id",
            (line_id,),
        )
        return [
            {"action": a, "actor": b, "at_ms": int(c), "note": d} for a, b, c, d in cur.fetchall()
        ]
