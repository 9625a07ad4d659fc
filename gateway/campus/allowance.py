"""The allowance purse (补助): an online account per person at the gateway, credited monthly
from a roster and spent at canteens (docs/campus.md says why it is not on the card).

A roster credits each person at most once per month: it is checked whole before anything
is stored (every person known, every amount within bounds, nobody twice), an entry the
gateway already holds with the same amount is recognised and not credited again, and one
that would credit a person a second time that month (another amount) refuses the whole
roster. A spend names the canteen's sale (terminal id, sale number), so a resent spend is
answered as before and debits nothing; the card must be bound, not lost, and its holder
the person the canteen read from the card's identity file, and the day's spends stay
within the person's (or group's) day limit. A sale whose answer the till lost is voided
by its key: refunded if taken, refused if it arrives later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta, timezone
from typing import Any

from gateway.auth import Terminal
from gateway.campus.store import PERSON_NO
from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.hotlist import canonical_id
from gateway.storage import POSTGRES, Database, now_ms, retried

MONTH = re.compile(r"^20[0-9]{2}-(0[1-9]|1[0-2])\Z")
MAX_CREDIT = 500_000  # 5,000 yuan a month: beyond any allowance, the mark of a typo
MAX_SPEND = 100_000
MAX_ROSTER = 20_000
CST = timezone(timedelta(hours=8), "CST")  # the day a limit counts is China's day
MEAL = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")


def _amount(value: Any, what: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
        raise Invalid("bad_amount", f"{what} must be a whole number of fen 1..{top}")
    return value


@retried
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


def _one_sale_at_a_time(db: Database, cur: Any, terminal: Terminal) -> None:
    """A till's spend and void wait for each other (PostgreSQL; SQLite has one writer): each
    checks the other's row, so run side by side both could commit - a spend the void did not
    see, refunded 0 while the allowance stays taken."""
    if db.dialect == POSTGRES:
        cur.execute("SELECT pg_advisory_xact_lock(978019, hashtext(?))", (terminal.terminal_id,))


def _one_spend_per_person(db: Database, cur: Any, person: Any) -> None:
    """A person's spends wait for each other (PostgreSQL; SQLite has one writer): each counts
    the day's committed spends against the day limit, so two tills side by side would both
    pass it. The account row is locked before the count."""
    if db.dialect == POSTGRES:
        cur.execute(
            "SELECT 1 FROM campus_allowance_accounts WHERE person_no = ? FOR UPDATE", (person,)
        )


@retried
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
        _one_sale_at_a_time(db, cur, terminal)
        cur.execute(
            "SELECT card_serial, person_no, amount, meal, balance_after"
            " FROM campus_allowance_spends WHERE terminal_id = ? AND sale_seq = ?",
            (terminal.terminal_id, seq),
        )
        old = cur.fetchone()
        if _voided(cur, terminal.terminal_id, seq):
            raise Conflict("sale_voided", f"sale {seq} was voided by the till: it is not paid")
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
        _one_spend_per_person(db, cur, person)
        limit = day_limit_in(cur, person)
        if limit is not None:
            spent = spent_today_in(cur, person)
            if spent + amount > limit:
                raise Conflict(
                    "over_limit",
                    f"{person} spent {spent} fen of the allowance today, the day limit is"
                    f" {limit}; the sale is {amount}",
                )
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


@retried
def void(db: Database, terminal: Terminal, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Void a sale whose answer the till lost (the customer was refused): a spend the
    gateway took is refunded, one it never saw is refused if it arrives later; once."""
    if doc.get("terminal_id") != terminal.terminal_id:
        raise Forbidden("wrong_terminal", f"terminal {terminal.terminal_id} voids only its own")
    seq = doc.get("sale_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 2**62:
        raise Invalid("bad_sale", "sale_seq must be a positive whole number")
    with db.tx() as cur:
        _one_sale_at_a_time(db, cur, terminal)
        cur.execute(
            "SELECT refunded FROM campus_allowance_voids WHERE terminal_id = ? AND sale_seq = ?",
            (terminal.terminal_id, seq),
        )
        old = cur.fetchone()
        if old is not None:
            return {"sale_seq": seq, "refunded_fen": int(old[0]), "duplicate": True}
        cur.execute(
            "SELECT person_no, amount FROM campus_allowance_spends"
            " WHERE terminal_id = ? AND sale_seq = ?",
            (terminal.terminal_id, seq),
        )
        spent = cur.fetchone()
        refunded = 0
        if spent is not None:
            refunded = int(spent[1])
            cur.execute(
                "UPDATE campus_allowance_accounts SET balance = balance + ? WHERE person_no = ?",
                (refunded, spent[0]),
            )
        cur.execute(
            "INSERT INTO campus_allowance_voids VALUES (?, ?, ?, ?)",
            (terminal.terminal_id, seq, refunded, now_ms()),
        )
    return {"sale_seq": seq, "refunded_fen": refunded, "duplicate": False}


@retried
def set_day_limit(db: Database, scope: str, name: str, day_limit: Any) -> None:
    """A person's or a group's allowance day limit in fen (a person's wins over the group's)."""
    if scope not in ("person", "group"):
        raise Invalid("bad_limit", "scope must be person or group")
    if isinstance(day_limit, bool) or not isinstance(day_limit, int) or day_limit < 0:
        raise Invalid("bad_limit", "day_limit_fen must be a whole number of fen >= 0")
    with db.tx() as cur:
        if scope == "person":
            cur.execute("SELECT 1 FROM campus_people WHERE person_no = ?", (name,))
        else:
            cur.execute("SELECT 1 FROM campus_people WHERE grp = ?", (name,))
        if cur.fetchone() is None:
            raise NotFound("unknown_" + scope, f"no {scope} {name}")
        cur.execute("DELETE FROM campus_spend_limits WHERE scope = ? AND name = ?", (scope, name))
        cur.execute(
            "INSERT INTO campus_spend_limits VALUES (?, ?, ?, ?)",
            (scope, name, day_limit, now_ms()),
        )


def day_limit_in(cur: Any, person_no: str) -> int | None:
    cur.execute(
        "SELECT l.scope, l.day_limit FROM campus_spend_limits l JOIN campus_people p"
        " ON (l.scope = 'person' AND l.name = p.person_no)"
        " OR (l.scope = 'group' AND l.name = p.grp)"
        " WHERE p.person_no = ?",
        (person_no,),
    )
    limits = dict(cur.fetchall())
    value = limits.get("person", limits.get("group"))
    return None if value is None else int(value)


def day_bounds(ms: int) -> tuple[int, int]:
    """The China Standard Time day (UTC+8) that ``ms`` falls in, as [start, end) in ms."""
    day = datetime.fromtimestamp(ms / 1000, CST).date()
    start = int(datetime.combine(day, time(), CST).timestamp() * 1000)
    return start, start + 86_400_000


def spent_today_in(cur: Any, person_no: str) -> int:
    start, end = day_bounds(now_ms())
    cur.execute(
        "SELECT COALESCE(SUM(s.amount), 0) FROM campus_allowance_spends s"
        " WHERE s.person_no = ? AND s.at >= ? AND s.at < ? AND NOT EXISTS (SELECT 1 FROM"
        " campus_allowance_voids v"
        " WHERE v.terminal_id = s.terminal_id AND v.sale_seq = s.sale_seq)",
        (person_no, start, end),
    )
    return int(cur.fetchone()[0])


def _voided(cur: Any, terminal_id: str, seq: int) -> bool:
    cur.execute(
        "SELECT 1 FROM campus_allowance_voids WHERE terminal_id = ? AND sale_seq = ?",
        (terminal_id, seq),
    )
    return cur.fetchone() is not None


def balance_in(cur: Any, person_no: str) -> int:
    cur.execute("SELECT balance FROM campus_allowance_accounts WHERE person_no = ?", (person_no,))
    r = cur.fetchone()
    return int(r[0]) if r else 0
