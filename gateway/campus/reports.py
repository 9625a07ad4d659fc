"""The back office's review and reports: people with their cards, status and allowance;
entries and exits per area per day; allowance sales per meal period per day."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from gateway.campus.allowance import CST, day_bounds, day_limit_in
from gateway.storage import Database


def accounts(db: Database) -> list[dict[str, Any]]:
    """Every person: group, validity, cards (serial, state), allowance balance, day limit."""
    with db.tx() as cur:
        cur.execute(
            "SELECT p.person_no, p.name, p.grp, p.valid_from, p.valid_until,"
            " COALESCE(a.balance, 0) FROM campus_people p"
            " LEFT JOIN campus_allowance_accounts a ON a.person_no = p.person_no"
            " ORDER BY p.person_no"
        )
        people = cur.fetchall()
        cur.execute("SELECT person_no, card_serial, state FROM campus_cards ORDER BY card_serial")
        cards: dict[str, list[dict[str, str]]] = {}
        for person, serial, state in cur.fetchall():
            cards.setdefault(person, []).append({"card_serial": serial, "state": state})
        out = []
        for no, name, grp, lo, hi, balance in people:
            out.append(
                {
                    "person_no": no,
                    "name": name,
                    "group": grp,
                    "valid_from": lo,
                    "valid_until": hi,
                    "cards": cards.get(no, []),
                    "allowance_fen": int(balance),
                    "day_limit_fen": day_limit_in(cur, no),
                }
            )
    return out


def entries(db: Database, since: str, until: str) -> list[dict[str, Any]]:
    """Granted entries and exits through doors per day and area, days ``since..until``."""
    with db.tx() as cur:
        cur.execute(
            "SELECT SUBSTR(event_time, 1, 10) AS day, area, direction, COUNT(*)"
            " FROM campus_events WHERE result = 'granted' AND purpose = 'door'"
            " AND event_time >= ? AND event_time < ?"
            " GROUP BY SUBSTR(event_time, 1, 10), area, direction ORDER BY 1, 2",
            (since, until + "T99"),
        )
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for day, area, direction, n in cur.fetchall():
            row = rows.setdefault((day, area), {"day": day, "area": area, "in": 0, "out": 0})
            row[direction] = int(n)
    return list(rows.values())


def sales(db: Database, since: str, until: str) -> list[dict[str, Any]]:
    """Allowance sales kept (not voided) per China day and meal period, ``since..until``."""
    start = int(datetime.combine(date.fromisoformat(since), time(), CST).timestamp() * 1000)
    end = day_bounds(
        int(datetime.combine(date.fromisoformat(until), time(12), CST).timestamp() * 1000)
    )[1]
    with db.tx() as cur:
        cur.execute(
            "SELECT s.at, s.meal, s.amount FROM campus_allowance_spends s"
            " WHERE s.at >= ? AND s.at < ? AND NOT EXISTS"
            " (SELECT 1 FROM campus_allowance_voids v WHERE v.terminal_id = s.terminal_id"
            " AND v.sale_seq = s.sale_seq) ORDER BY s.at",
            (start, end),
        )
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for at, meal, amount in cur.fetchall():
            day = datetime.fromtimestamp(int(at) / 1000, CST).date().isoformat()
            row = rows.setdefault(
                (day, meal), {"day": day, "meal": meal, "sales": 0, "amount_fen": 0}
            )
            row["sales"] += 1
            row["amount_fen"] += int(amount)
    return sorted(rows.values(), key=lambda r: (r["day"], r["meal"]))
