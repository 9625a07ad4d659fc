"""The allowance purse (补助): an online account per person at the gateway, credited monthly
from a roster and spent at canteens (docs/campus.md says why it is not on the card).

A roster credits each person at most once per month: it is checked whole before anything
is stored (every person known, every amount within bounds, nobody twice), an entry the
gateway already holds with the same amount is recognised and not credited again, and one
that would credit a person a second time that month (another amount) refuses the whole
roster. A spend names the canteen's sale (terminal id, sale number), so a resent spend is
answered as before and debits nothing; the card must be bound, not lost, and its holder
the person the canteen read from the card's identity file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.auth import Terminal
from gateway.campus.store import PERSON_NO
from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.hotlist import canonical_id
from gateway.storage import POSTGRES, Database, now_ms

MONTH = re.compile(r"^20[0-9]{2}-(0[1-9]|1[0-2])\Z")
MAX_CREDIT = 500_000  # 5,000 yuan a month: beyond any allowance, the mark of a typo
MAX_SPEND = 100_000
MAX_ROSTER = 20_000
MEAL = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")


def _amount(value: Any, what: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
        raise Invalid("bad_amount", f"{what} must be a whole number of fen 1..{top}")
    return value


def credit_month(db: Database, month: str, roster: str, lines: list[Any]) -> dict[str, int]:
    """Credit each roster line ``{"person_no", "amount_fen"}`` for ``month`` (YYYY-MM), all or
    nothing; how many were credited now and how many the gateway already held."""
    if not MONTH.match(month):
        raise Invalid("bad_month", f"month must be YYYY-MM, got {month[:20]!r}")
    if not roster.strip():
        raise Invalid("bad_roster", "a roster needs a name (what the back office approved)")
    if not isinstance(lines, list) or not 0 < len(lines) <= MAX_ROSTER:
        raise Invalid("bad_roster", f"a roster lists 1..{MAX_ROSTER} people")
    wanted: dict[str, int] = {}
    for i, line in enumerate(lines):
        if not isinstance(line, Mapping) or set(line) != {"person_no", "amount_fen"}:
            raise Invalid("bad_roster", f"line {i}: needs exactly person_no and amount_fen")
        person = line["person_no"]
        if not isinstance(person, str) or not PERSON_NO.match(person):
            raise Invalid("bad_roster", f"line {i}: person_no must be 1-16 letters and digits")
        if person in wanted:
            raise Invalid("bad_roster", f"line {i}: person {person} is listed twice")
        wanted[person] = _amount(line["amount_fen"], f"line {i}: amount_fen", MAX_CREDIT)
    credited = held = 0
    with db.tx() as cur:
        if db.dialect == POSTGRES:
            cur.execute("SELECT pg_advisory_xact_lock(978017)")  # one roster at a time
        for i, (person, amount) in enumerate(wanted.items()):
            cur.execute("SELECT 1 FROM campus_people WHERE person_no = ?", (person,))
            if cur.fetchone() is None:
                raise NotFound("unknown_person", f"line {i}: no person {person}")
            cur.execute(
                "SELECT amount, roster FROM campus_allowance_credits"
                " WHERE person_no = ? AND month = ?",
                (person, month),
            )
            old = cur.fetchone()
            if old is not None:
                if int(old[0]) != amount:
                    raise Conflict(
                        "already_credited",
                        f"person {person} was credited {int(old[0])} fen for {month} by roster"
                        f" {old[1]!r}; a person is credited once a month",
                    )
                held += 1
                continue
            cur.execute(
                "INSERT INTO campus_allowance_credits VALUES (?, ?, ?, ?, ?)",
                (person, month, amount, roster.strip(), now_ms()),
            )
            cur.execute(
                "UPDATE campus_allowance_accounts SET balance = balance + ? WHERE person_no = ?"
                " RETURNING balance",
                (amount, person),
            )
            if cur.fetchone() is None:
                cur.execute("INSERT INTO campus_allowance_accounts VALUES (?, ?)", (person, amount))
            credited += 1
    return {"credited": credited, "already_held": held}


def balance(db: Database, person_no: str) -> int:
    """The person's allowance balance in fen (0 when never credited)."""
    with db.tx() as cur:
        return balance_in(cur, person_no)


def spend(db: Database, terminal: Terminal, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A canteen's sale paid from the allowance: the balance after, or a refusal."""
    if doc.get("terminal_id") != terminal.terminal_id:
        raise Forbidden("wrong_terminal", f"terminal {terminal.terminal_id} spends only as itself")
    seq = doc.get("sale_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 2**62:
        raise Invalid("bad_sale", "sale_seq must be a positive whole number")
    amount = _amount(doc.get("amount_fen"), "amount_fen", MAX_SPEND)
    meal = doc.get("meal")
    if not isinstance(meal, str) or not MEAL.match(meal):
        raise Invalid("bad_sale", "meal must name a meal period (lower-case letters)")
    serial = canonical_id("card_serial", str(doc.get("card_serial", "")))
    person = doc.get("person_no")
    sale = (serial, person, amount, meal)
    with db.tx() as cur:
        cur.execute(
            "SELECT card_serial, person_no, amount, meal, balance_after"
            " FROM campus_allowance_spends WHERE terminal_id = ? AND sale_seq = ?",
            (terminal.terminal_id, seq),
        )
        old = cur.fetchone()
        if old is not None:
            if (old[0], old[1], int(old[2]), old[3]) != sale:
                raise Conflict("sale_conflict", f"sale {seq} was paid with other content before")
            return {"balance_fen": int(old[4]), "duplicate": True}
        cur.execute("SELECT person_no, state FROM campus_cards WHERE card_serial = ?", (serial,))
        card = cur.fetchone()
        if card is None:
            raise NotFound("unknown_card", f"card {serial} is not a campus card here")
        if card[1] != "active":
            raise Forbidden("card_lost", f"card {serial} is reported lost: its allowance is held")
        if card[0] != person:
            raise Forbidden("wrong_person", f"card {serial} is not bound to person {person}")
        cur.execute(
            "UPDATE campus_allowance_accounts SET balance = balance - ?"
            " WHERE person_no = ? AND balance >= ? RETURNING balance",
            (amount, person, amount),
        )
        r = cur.fetchone()
        if r is None:
            raise Conflict(
                "insufficient_allowance",
                f"the allowance of {person} holds {balance_in(cur, person)} fen, the sale is"
                f" {amount}",
            )
        after = int(r[0])
        cur.execute(
            "INSERT INTO campus_allowance_spends VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (terminal.terminal_id, seq, serial, person, amount, meal, after, now_ms()),
        )
    return {"balance_fen": after, "duplicate": False}


def balance_in(cur: Any, person_no: str) -> int:
    cur.execute("SELECT balance FROM campus_allowance_accounts WHERE person_no = ?", (person_no,))
    r = cur.fetchone()
    return int(r[0]) if r else 0
