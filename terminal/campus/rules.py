"""Door rules as data (a strict TOML file): time zones, holidays, groups, doors.

```
holidays = [2026-10-01]
[zones.daytime]            # ISO weekdays, a window, open on holidays or not
days = [1, 2, 3, 4, 5]
from = "07:00"
until = "22:00"
[groups.students]          # which doors, in which zone, between which dates
doors = ["east-in", "east-out"]
zone = "daytime"
valid_from = 2024-09-01
valid_until = 2028-07-31
[doors.east-in]            # what area a door leads into, which way, its paired reader
area = "campus"
direction = "in"
paired = "east-out"
```
Unknown keys are refused with their line; ``check`` answers a decision with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from terminal.campus.reasons import DoorReason, DoorRefusal
from terminal.text import FileError
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml

SCHEMA: dict[str, Any] = {
    "holidays": None,
    "zones": ANY_KEYS,
    "groups": ANY_KEYS,
    "doors": ANY_KEYS,
}
ZONE_KEYS = {"days": None, "from": None, "until": None, "holidays": None}
GROUP_KEYS = {"doors": None, "zone": None, "valid_from": None, "valid_until": None}
DOOR_KEYS = {"area": None, "direction": None, "paired": None, "purpose": None}


@dataclass(frozen=True)
class Zone:
    days: frozenset[int]
    start: time
    end: time
    holidays: bool = False

    def open_at(self, when: datetime, holiday: bool) -> bool:
        if holiday and not self.holidays:
            return False
        return when.isoweekday() in self.days and self.start <= when.time() < self.end


@dataclass(frozen=True)
class Group:
    doors: frozenset[str]
    zone: str
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True)
class DoorPoint:
    name: str
    area: str
    direction: str  # "in" or "out"
    paired: str | None = None  # the reader on the other side: anti-passback between them
    purpose: str = "door"  # "door" or "attendance" (a time clock)


@dataclass(frozen=True)
class DoorRules:
    zones: dict[str, Zone]
    groups: dict[str, Group]
    doors: dict[str, DoorPoint]
    holidays: frozenset[date] = frozenset()

    def check(self, group: str, door: str, when: datetime) -> DoorReason | None:
        """None if ``group`` may pass ``door`` at ``when``, else the reason it may not."""
        g = self.groups.get(group)
        if g is None:
            return DoorReason(DoorRefusal.NO_GROUP_RULES, group=group)
        if door not in g.doors:
            return DoorReason(DoorRefusal.DOOR_NOT_ALLOWED, group=group, door=door)
        day = when.date()
        if (g.valid_from and day < g.valid_from) or (g.valid_until and day > g.valid_until):
            return DoorReason(DoorRefusal.GROUP_NOT_VALID, group=group, day=day.isoformat())
        if not self.zones[g.zone].open_at(when, day in self.holidays):
            return DoorReason(
                DoorRefusal.OUTSIDE_ZONE, zone=g.zone, weekday=f"{when:%a}", time=f"{when:%H:%M}"
            )
        return None


class _RulesFile(TomlFile):
    what = "door rules file"


def _clock(f: _RulesFile, value: Any, keys: tuple[str, ...]) -> time:
    try:
        return time.fromisoformat(f.text_value(value, keys))
    except ValueError:
        raise f.error(keys, f"{'.'.join(keys)} must be a time like 07:30") from None


def _date(f: _RulesFile, value: Any, keys: tuple[str, ...]) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise f.error(keys, f"{'.'.join(keys)} must be a date (2026-09-01, unquoted)")


def parse_rules(data: dict[str, Any], *, path: str | Path, text: str | None) -> DoorRules:
    f = _RulesFile(data, str(path), text)
    f.check_keys(data, SCHEMA, ())
    zones: dict[str, Zone] = {}
    for name, z in data.get("zones", {}).items():
        at = ("zones", name)
        f.check_keys(z, ZONE_KEYS, at)
        days = z.get("days", [1, 2, 3, 4, 5, 6, 7])
        if not isinstance(days, list) or not all(d in range(1, 8) for d in days):
            raise f.error((*at, "days"), f"zones.{name}.days must list ISO weekdays 1..7")
        start = _clock(f, z.get("from", "00:00"), (*at, "from"))
        end = _clock(f, z.get("until", "23:59:59"), (*at, "until"))
        if end <= start:
            raise f.error((*at, "until"), f"zones.{name}.until must be after from")
        holidays = z.get("holidays", False)
        if not isinstance(holidays, bool):
            raise f.error((*at, "holidays"), f"zones.{name}.holidays must be true or false")
        zones[name] = Zone(frozenset(days), start, end, holidays)
    doors: dict[str, DoorPoint] = {}
    for name, d in data.get("doors", {}).items():
        at = ("doors", name)
        f.check_keys(d, DOOR_KEYS, at)
        if "area" not in d:
            raise f.error(at, f"doors.{name} is missing 'area'")
        paired = d.get("paired")
        doors[name] = DoorPoint(
            name,
            f.text_value(d["area"], (*at, "area")),
            f.choice(d.get("direction", "in"), (*at, "direction"), ("in", "out")),
            f.text_value(paired, (*at, "paired")) if paired is not None else None,
            f.choice(d.get("purpose", "door"), (*at, "purpose"), ("door", "attendance")),
        )
    for door in doors.values():
        if door.paired is not None and door.paired not in doors:
            raise f.error(("doors", door.name, "paired"), f"paired door {door.paired!r} unknown")
    groups: dict[str, Group] = {}
    for name, g in data.get("groups", {}).items():
        at = ("groups", name)
        f.check_keys(g, GROUP_KEYS, at)
        names = g.get("doors", [])
        if not isinstance(names, list) or not all(n in doors for n in names):
            raise f.error((*at, "doors"), f"groups.{name}.doors must list declared doors")
        zone = f.text_value(g.get("zone", ""), (*at, "zone"))
        if zone not in zones:
            raise f.error((*at, "zone"), f"groups.{name}.zone {zone!r} is not a declared zone")
        groups[name] = Group(
            frozenset(names),
            zone,
            _date(f, g["valid_from"], (*at, "valid_from")) if "valid_from" in g else None,
            _date(f, g["valid_until"], (*at, "valid_until")) if "valid_until" in g else None,
        )
    holidays = data.get("holidays", [])
    if not isinstance(holidays, list):
        raise f.error(("holidays",), "holidays must be a list of dates")
    days = frozenset(_date(f, h, ("holidays",)) for h in holidays)
    return DoorRules(zones, groups, doors, days)


def load_rules(path: str | Path) -> DoorRules:
    text, data = read_toml(path, "door rules file", lambda w, n: FileError(path, n, w))
    return parse_rules(data, path=path, text=text)
