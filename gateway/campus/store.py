"""Campus back office: people and groups, card bindings, loss and unblock, the doors' allow
list (numbered changes, as the hotlist), access events (each stored once) and counts.

A loss report lists the card on the gateway's hotlist (every terminal refuses it) and
denies it on the allow list; an unblock does the reverse. A door uploads only its own
events; an event it sent before is recognised and not stored again, and one that reuses
an event's number with other content is refused with the whole batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway import hotlist
from gateway.auth import Terminal
from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.hotlist import canonical_id
from gateway.storage import POSTGRES, Database, now_ms, retried
from terminal.record import ACCESS_EVENT, RecordError

PERSON_NO = re.compile(r"^[0-9A-Za-z]{1,16}\Z")
MAX_EVENTS = 1000
ALLOW, DENY = "allow", "deny"


@dataclass(frozen=True)
class Person:
    person_no: str
    name: str
    group: str
    valid_from: date
    valid_until: date


@retried
def add_person(db: Database, p: Person) -> None:
    if not PERSON_NO.match(p.person_no):
        raise Invalid("bad_person", "person number must be 1-16 letters and digits")
    if not p.name.strip() or not p.group.strip():
        raise Invalid("bad_person", "a person needs a name and a group")
    if p.valid_until < p.valid_from:
        raise Invalid("bad_person", "valid_until is before valid_from")
    with db.tx() as cur:
        cur.execute("SELECT 1 FROM campus_people WHERE person_no = ?", (p.person_no,))
        if cur.fetchone() is not None:
            raise Conflict("person_exists", f"person {p.person_no} exists already")
        cur.execute(
            "INSERT INTO campus_people VALUES (?, ?, ?, ?, ?, ?)",
            (
                p.person_no,
                p.name.strip(),
                p.group.strip(),
                p.valid_from.isoformat(),
                p.valid_until.isoformat(),
                now_ms(),
            ),
        )


def _person(cur: Any, person_no: str) -> tuple[str, str, str]:
    cur.execute(
        "SELECT grp, valid_from, valid_until FROM campus_people WHERE person_no = ?", (person_no,)
    )
    r = cur.fetchone()
    if r is None:
        raise NotFound("unknown_person", f"no person {person_no}")
    return r[0], r[1], r[2]


def _change(cur: Any, dialect: str, serial: str, action: str, person_no: str, actor: str) -> int:
    if dialect == POSTGRES:
        cur.execute("SELECT pg_advisory_xact_lock(978016)")  # versions commit in order
    grp, lo, hi = _person(cur, person_no)
    cur.execute(
        "INSERT INTO campus_access_changes (card_serial, action, person_no, grp, valid_from,"
        " valid_until, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING version",
        (serial, action, person_no, grp, lo, hi, actor, now_ms()),
    )
    return int(cur.fetchone()[0])


@retried
def bind_card(db: Database, card_serial: str, issuer_id: str, person_no: str) -> int:
    """Bind a card to a person (one card per serial); the allow list's new version."""
    serial, issuer = canonical_id("card_serial", card_serial), canonical_id("issuer_id", issuer_id)
    with db.tx() as cur:
        _person(cur, person_no)
        cur.execute("SELECT person_no FROM campus_cards WHERE card_serial = ?", (serial,))
        if cur.fetchone() is not None:
            raise Conflict("card_bound", f"card {serial} is bound already")
        cur.execute(
            "INSERT INTO campus_cards VALUES (?, ?, ?, 'active', ?)",
            (serial, person_no, issuer, now_ms()),
        )
        return _change(cur, db.dialect, serial, ALLOW, person_no, "admin")


@retried
def set_lost(db: Database, card_serial: str, lost: bool, *, reason: str = "") -> int:
    """Report a card lost (hotlist + deny) or unblock it (unlist + allow), in one transaction
    so a run again never finds the card changed and its hotlist change missing."""
    serial = canonical_id("card_serial", card_serial)
    with db.tx() as cur:
        cur.execute(
            "SELECT person_no, issuer_id, state FROM campus_cards WHERE card_serial = ?", (serial,)
        )
        r = cur.fetchone()
        if r is None:
            raise NotFound("unknown_card", f"no campus card {serial}")
        person_no, issuer, state = r
        if (state == "lost") == lost:
            raise Conflict("no_change", f"card {serial} is {state} already")
        cur.execute(
            "UPDATE campus_cards SET state = ? WHERE card_serial = ?",
            ("lost" if lost else "active", serial),
        )
        version = _change(cur, db.dialect, serial, DENY if lost else ALLOW, person_no, "admin")
        action = hotlist.ADD if lost else hotlist.REMOVE
        why = reason or "campus loss report"
        hotlist.change_in(cur, db.dialect, action, issuer, serial, why, "campus")
    return version


def access_delta(db: Database, since: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    with db.tx() as cur:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM campus_access_changes")
        latest = int(cur.fetchone()[0])
        cur.execute(
            "SELECT version, card_serial, action, person_no, grp, valid_from, valid_until"
            " FROM campus_access_changes WHERE version > ? ORDER BY version LIMIT ?",
            (since, limit),
        )
        keys = ("version", "card_serial", "action", "person_no", "group", "valid_from")
        rows = [dict(zip((*keys, "valid_until"), r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["version"] = int(r["version"])
    return latest, rows


@retried
def store_events(db: Database, terminal: Terminal, doc: Mapping[str, Any]) -> dict[str, int]:
    """Store a door's batch of events: each checked, all or nothing, each stored once."""
    events = doc.get("events")
    if doc.get("terminal_id") != terminal.terminal_id:
        raise Forbidden(
            "wrong_terminal", f"terminal {terminal.terminal_id} uploads only its own events"
        )
    if not isinstance(events, list) or not 0 < len(events) <= MAX_EVENTS:
        raise Invalid("bad_batch", f"events must be a list of 1..{MAX_EVENTS} events")
    rows = []
    for i, event in enumerate(events):
        try:
            columns = ACCESS_EVENT.from_wire(event)
        except RecordError as exc:
            raise Invalid("bad_event", f"event {i}: {exc}") from None
        if columns[0] != terminal.terminal_id:
            raise Forbidden("wrong_terminal", f"event {i} names terminal {columns[0]}")
        rows.append(columns)
    names = ", ".join(ACCESS_EVENT.names)
    marks = ", ".join("?" for _ in ACCESS_EVENT.names)
    stored = duplicates = 0
    with db.tx() as cur:
        for columns in rows:
            cur.execute(
                f"SELECT {names} FROM campus_events WHERE terminal_id = ? AND event_seq = ?",
                (columns[0], columns[1]),
            )
            old = cur.fetchone()
            if old is not None:
                if tuple(old) != tuple(columns):
                    raise Conflict(
                        "event_conflict",
                        f"event {columns[1]} of terminal {columns[0]} was stored with other content"
                        " before",
                    )
                duplicates += 1
                continue
            cur.execute(
                f"INSERT INTO campus_events ({names}, received_at) VALUES ({marks}, ?)",
                (*columns, now_ms()),
            )
            stored += 1
    return {"stored": stored, "duplicates": duplicates}


def area_counts(db: Database, day: str | None = None) -> dict[str, dict[str, int]]:
    """Granted entries and exits per area (on ``day``, YYYY-MM-DD, when given)."""
    sql = (
        "SELECT area, direction, COUNT(*) FROM campus_events"
        " WHERE result = 'granted' AND purpose = 'door'"
    )
    args: tuple[Any, ...] = ()
    if day:
        sql += " AND event_time LIKE ?"
        args = (day + "%",)
    out: dict[str, dict[str, int]] = {}
    with db.tx() as cur:
        cur.execute(sql + " GROUP BY area, direction", args)
        for area, direction, n in cur.fetchall():
            out.setdefault(area, {"in": 0, "out": 0})[direction] = int(n)
    return out


def attendance_events(db: Database, month: str) -> list[dict[str, Any]]:
    """The granted time-clock events of ``month`` (YYYY-MM), oldest first."""
    with db.tx() as cur:
        cur.execute(
            "SELECT person_no, direction, event_time FROM campus_events"
            " WHERE result = 'granted' AND purpose = 'attendance' AND event_time LIKE ?"
            " ORDER BY event_time, terminal_id, event_seq",
            (month + "-%",),
        )
        keys = ("person_no", "direction", "event_time")
        return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]
