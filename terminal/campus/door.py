"""The door role (门禁): a controller with its readers, deciding offline from local lists.

Each card is authenticated (``card.authenticate``: the SAM checks the card's key), then
checked against the hotlist (lost cards, synced from the gateway), the allow list (the
back office's card bindings, synced the same way: numbered changes after a version), the
card's validity, the rules (group, door, time zone, holidays) and anti-passback between
paired readers. Every decision, granted or refused with its reason, is an
``ACCESS_EVENT`` in the event journal, which uploads each event once; granted passages
count entries and exits per area.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from terminal.apdu.errors import CardError, MalformedResponse, TransportError
from terminal.campus.card import CampusCard, NotGenuine, authenticate
from terminal.campus.reasons import DoorReason, DoorRefusal
from terminal.campus.rules import DoorPoint, DoorRules
from terminal.hotlist import Hotlist
from terminal.record import ACCESS_EVENT
from terminal.roles.session import TerminalSession
from terminal.sqlite import connect, transaction
from terminal.uplink.client import GatewayClient
from terminal.uplink.hotlist import sync_hotlist, sync_local_hotlist

ACCESS_PATH = "/v1/campus/access"
EVENTS_PATH = "/v1/campus/events"

_ACCESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS access (
    card_serial TEXT PRIMARY KEY, person_no TEXT NOT NULL, grp TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, allowed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_PRESENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS presence (
    area TEXT NOT NULL, person_no TEXT NOT NULL, direction TEXT NOT NULL,
    PRIMARY KEY (area, person_no)
);
"""


@dataclass(frozen=True, slots=True)
class Binding:
    """What the back office says of a card: whose it is, its group, its dates, allowed."""

    person_no: str
    group: str
    valid_from: date
    valid_until: date
    allowed: bool


class AccessList:
    """The local allow/deny list: card serial -> binding, with the gateway's version."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.RLock()
        self._db = connect(path)
        self._db.executescript(_ACCESS_SCHEMA)
        row = self._db.execute("SELECT value FROM access_meta WHERE key='version'").fetchone()
        self.version = int(row[0]) if row else 0

    def get(self, serial_hex: str) -> Binding | None:
        with self._lock:
            r = self._db.execute(
                "SELECT person_no, grp, valid_from, valid_until, allowed FROM access"
                " WHERE card_serial = ?",
                (serial_hex,),
            ).fetchone()
        if r is None:
            return None
        return Binding(r[0], r[1], date.fromisoformat(r[2]), date.fromisoformat(r[3]), bool(r[4]))

    def apply(self, change: dict[str, Any]) -> None:
        """One numbered change (``allow`` or ``deny``) from the gateway, in order."""
        version = int(change["version"])
        with self._lock:
            if version <= self.version:
                return
            with transaction(self._db) as db:
                db.execute(
                    "INSERT OR REPLACE INTO access VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        change["card_serial"],
                        change["person_no"],
                        change["group"],
                        change["valid_from"],
                        change["valid_until"],
                        1 if change["action"] == "allow" else 0,
                    ),
                )
                db.execute("INSERT OR REPLACE INTO access_meta VALUES ('version', ?)", (version,))
            self.version = version

    def close(self) -> None:
        self._db.close()


class Presence:
    """Anti-passback state: which way each person last passed into or out of each area.

    Kept in the door's local store (the file its events and allow list live in), so a door
    restarted, or a second reader of the same controller sharing the store, still knows
    who is inside."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.RLock()
        self._db = connect(path)
        self._db.executescript(_PRESENCE_SCHEMA)

    def last(self, area: str, person_no: str) -> str | None:
        with self._lock:
            r = self._db.execute(
                "SELECT direction FROM presence WHERE area = ? AND person_no = ?",
                (area, person_no),
            ).fetchone()
        return None if r is None else str(r[0])

    def passed(self, area: str, person_no: str, direction: str) -> None:
        with self._lock, transaction(self._db) as db:
            db.execute(
                "INSERT OR REPLACE INTO presence VALUES (?, ?, ?)", (area, person_no, direction)
            )

    def close(self) -> None:
        self._db.close()


_EVENT_COLUMNS = ", ".join(ACCESS_EVENT.names)
_EVENT_DEFS = ", ".join(
    f"{n} {'INTEGER' if ACCESS_EVENT[n].type is int else 'TEXT'}" for n in ACCESS_EVENT.names
)
_EVENTS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    {_EVENT_DEFS},
    uploaded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (terminal_id, event_seq)
);
"""


class EventJournal:
    """Every decision a door takes, kept until the gateway acknowledged it (then marked)."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.RLock()
        self._db = connect(path)
        self._db.executescript(_EVENTS_SCHEMA)

    def record(self, values: dict[str, Any]) -> dict[str, Any]:
        """Append one event; its number follows the terminal's last one."""
        with self._lock, transaction(self._db) as db:
            row = db.execute(
                "SELECT COALESCE(MAX(event_seq), 0) FROM events WHERE terminal_id = ?",
                (values["terminal_id"],),
            ).fetchone()
            values = {**values, "event_seq": int(row[0]) + 1}
            marks = ", ".join("?" for _ in ACCESS_EVENT.names)
            db.execute(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({marks})",
                ACCESS_EVENT.to_columns(values),
            )
        return values

    def pending(self, limit: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE uploaded = 0"
                " ORDER BY terminal_id, event_seq LIMIT ?",
                (limit,),
            ).fetchall()
        names = ACCESS_EVENT.names
        return [
            ACCESS_EVENT.to_wire(ACCESS_EVENT.from_columns(dict(zip(names, r, strict=True))))
            for r in rows
        ]

    def mark_uploaded(self, events: list[dict[str, Any]]) -> None:
        with self._lock, transaction(self._db) as db:
            db.executemany(
                "UPDATE events SET uploaded = 1 WHERE terminal_id = ? AND event_seq = ?",
                ((e["terminal_id"], e["event_seq"]) for e in events),
            )

    def count(self, *, uploaded: bool | None = None) -> int:
        sql = "SELECT COUNT(*) FROM events"
        if uploaded is not None:
            sql += f" WHERE uploaded = {int(uploaded)}"
        with self._lock:
            return int(self._db.execute(sql).fetchone()[0])

    def close(self) -> None:
        self._db.close()


def sync_access(client: GatewayClient, access: AccessList, hotlist: Hotlist) -> int:
    """Bring the hotlist and the allow list up to the gateway's versions, one mechanism."""
    sync_local_hotlist(client, hotlist)

    def fetch(since: int, limit: int) -> Any:
        return client.request("GET", ACCESS_PATH, params={"since": since, "limit": limit})

    return sync_hotlist(client, access.version, access.apply, fetch=fetch)


def upload_events(client: GatewayClient, journal: EventJournal, terminal_id: str) -> int:
    """Send the events not yet acknowledged; how many the gateway acknowledged."""
    sent = 0
    while events := journal.pending():
        client.request("POST", EVENTS_PATH, json={"terminal_id": terminal_id, "events": events})
        journal.mark_uploaded(events)
        sent += len(events)
    return sent


def card_refusal(
    card: CampusCard, binding: Binding | None, hotlist: Hotlist, day: date
) -> DoorReason | None:
    """Why an authenticated card may not be served today from the local lists, or None:
    lost (hotlist), not enrolled, blocked, not its holder's identity, outside its dates."""
    if card.serial in hotlist:
        return DoorReason(DoorRefusal.HOTLISTED)
    if binding is None:
        return DoorReason(DoorRefusal.NOT_ENROLLED)
    if not binding.allowed:
        return DoorReason(DoorRefusal.BLOCKED)
    if binding.person_no != card.identity.person_no:
        return DoorReason(DoorRefusal.IDENTITY)
    for lo, hi in (
        (binding.valid_from, binding.valid_until),
        (card.identity.valid_from, card.identity.valid_until),
    ):
        if not lo <= day <= hi:
            return DoorReason(
                DoorRefusal.NOT_VALID, day=day.isoformat(), valid_from=lo, valid_until=hi
            )
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: str  # "granted", or why refused (a DoorReason: the English, code and values)
    point: str
    person_no: str | None = None
    card_serial: str | None = None
    event_seq: int = 0


class Door:
    """A door controller: readers named by the rules' doors, one SAM, the local lists."""

    def __init__(
        self,
        session: TerminalSession,
        rules: DoorRules,
        access: AccessList,
        hotlist: Hotlist,
        journal: EventJournal,
        presence: Presence | None = None,
    ):
        """``presence``: the anti-passback state (None: in memory, lost at a restart)."""
        self.session = session
        self.rules = rules
        self.access = access
        self.hotlist = hotlist
        self.journal = journal
        self.presence = presence if presence is not None else Presence()
        self.counts: dict[str, dict[str, int]] = {}  # area -> {"in": n, "out": n}

    def present(self, point: str) -> Decision:
        """The card in the field at reader ``point``: decide, journal, count."""
        door = self.rules.doors[point]
        now = self.session.now()
        card: CampusCard | None = None
        claimed: str | None = None
        try:
            card = self.session.run(authenticate())
        except NotGenuine as exc:
            claimed = exc.serial
            reason: str = DoorReason(DoorRefusal.NOT_GENUINE, detail=exc)
        except (CardError, TransportError, MalformedResponse) as exc:
            reason = DoorReason(DoorRefusal.NOT_READ, detail=exc)
        else:
            reason = self._refusal(card, door, now) or ""
        serial = card.serial_hex if card else claimed
        person = card.identity.person_no if card else None
        granted = card is not None and not reason
        if granted:
            assert card is not None
            self._pass(door, card.identity.person_no)
            reason = "granted"
        event = self.journal.record(
            {
                "terminal_id": self.session.sam.terminal_id.hex().upper(),
                "card_serial": serial,
                "person_no": person,
                "point": door.name,
                "area": door.area,
                "purpose": door.purpose,
                "direction": door.direction,
                "result": "granted" if granted else "refused",
                "reason": reason[:200],
                "event_time": now,
            }
        )
        return Decision(granted, reason, point, person, serial, event["event_seq"])

    def close(self) -> None:
        """Close the door's local store (events, allow list, presence) and its hotlist."""
        for part in (self.journal, self.access, self.presence, self.hotlist):
            part.close()

    def _refusal(self, card: CampusCard, door: DoorPoint, now: datetime) -> DoorReason | None:
        binding = self.access.get(card.serial_hex)
        refused = card_refusal(card, binding, self.hotlist, now.date())
        if refused or binding is None:
            return refused
        rule = self.rules.check(binding.group, door.name, now)
        if rule:
            return rule
        if door.paired is not None:
            last = self.presence.last(door.area, binding.person_no)
            if last == door.direction:
                side = DoorRefusal.INSIDE if last == "in" else DoorRefusal.OUTSIDE
                return DoorReason(side, area=door.area)
        return None

    def _pass(self, door: DoorPoint, person: str) -> None:
        self.presence.passed(door.area, person, door.direction)
        area = self.counts.setdefault(door.area, {"in": 0, "out": 0})
        area[door.direction] += 1
