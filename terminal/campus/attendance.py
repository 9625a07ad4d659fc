"""Attendance (考勤): shifts and rules as data, daily and monthly reports from clock events.

A time clock is a door point with ``purpose = "attendance"``; its granted events (in and
out) are the clockings. The rules are a strict TOML file (unknown keys refused with their
line):

```
holidays = [2026-11-11]    # workdays on which nobody is expected (not absent)
[shifts.office]
start = "09:00"
end = "18:00"
grace_minutes = 5          # clocking in up to 09:05 is not late
workdays = [1, 2, 3, 4, 5] # ISO weekdays
people = ["T1", "T2"]      # person numbers on this shift (each on one shift)
```

A person's day on a workday: the first clock-in and the last clock-out count; late when
the clock-in is after start + grace, early when the clock-out is before end - grace,
absent when there is no clock-in, ``no clock-out`` when there is none; hours are from
the clock-in to the clock-out. Holidays and rest days are never absent.
"""

from __future__ import annotations

import calendar
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from terminal.csv_cells import csv_writer, safe_cell
from terminal.text import FileError
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml

SCHEMA: dict[str, Any] = {"holidays": None, "shifts": ANY_KEYS}
SHIFT_KEYS = {"start": None, "end": None, "grace_minutes": None, "workdays": None, "people": None}
PRESENT, ABSENT, HOLIDAY, REST = "present", "absent", "holiday", "rest"
DAILY_COLUMNS = (
    "person_no",
    "day",
    "shift",
    "status",
    "clock_in",
    "clock_out",
    "late_min",
    "early_min",
    "hours",
    "note",
)
MONTHLY_COLUMNS = (
    "person_no",
    "shift",
    "workdays",
    "present",
    "late",
    "early",
    "absent",
    "no_clock_out",
    "hours",
)


@dataclass(frozen=True)
class Shift:
    name: str
    start: time
    end: time
    grace: int  # minutes
    workdays: frozenset[int]
    people: frozenset[str]


@dataclass(frozen=True)
class AttendanceRules:
    shifts: dict[str, Shift]
    holidays: frozenset[date]

    def shift_of(self, person_no: str) -> Shift | None:
        return next((s for s in self.shifts.values() if person_no in s.people), None)


class _RulesFile(TomlFile):
    what = "attendance rules file"


def _clock(f: _RulesFile, value: Any, keys: tuple[str, ...]) -> time:
    try:
        return time.fromisoformat(f.text_value(value, keys))
    except ValueError:
        raise f.error(keys, f"{'.'.join(keys)} must be a time like 09:00") from None


def parse_attendance_rules(
    data: dict[str, Any], *, path: str | Path, text: str | None
) -> AttendanceRules:
    f = _RulesFile(data, str(path), text)
    f.check_keys(data, SCHEMA, ())
    shifts: dict[str, Shift] = {}
    owner: dict[str, str] = {}
    for name, s in data.get("shifts", {}).items():
        at = ("shifts", name)
        f.check_keys(s, SHIFT_KEYS, at)
        for key in ("start", "end", "people"):
            if key not in s:
                raise f.error(at, f"shifts.{name} is missing {key!r}")
        start, end = _clock(f, s["start"], (*at, "start")), _clock(f, s["end"], (*at, "end"))
        if end <= start:
            raise f.error((*at, "end"), f"shifts.{name}.end must be after start")
        days = s.get("workdays", [1, 2, 3, 4, 5])
        if not isinstance(days, list) or not days or not all(d in range(1, 8) for d in days):
            raise f.error((*at, "workdays"), f"shifts.{name}.workdays must list ISO weekdays 1..7")
        people = s["people"]
        if not isinstance(people, list) or not all(isinstance(p, str) and p for p in people):
            raise f.error((*at, "people"), f"shifts.{name}.people must list person numbers")
        for p in people:
            if p in owner:
                raise f.error((*at, "people"), f"person {p} is on shifts {owner[p]} and {name}")
            owner[p] = name
        grace = f.count(s.get("grace_minutes", 0), (*at, "grace_minutes"), 120)
        shifts[name] = Shift(name, start, end, grace, frozenset(days), frozenset(people))
    holidays = data.get("holidays", [])
    if not isinstance(holidays, list) or not all(
        isinstance(h, date) and not isinstance(h, datetime) for h in holidays
    ):
        raise f.error(("holidays",), "holidays must be a list of dates (2026-10-01, unquoted)")
    return AttendanceRules(shifts, frozenset(holidays))


def load_attendance_rules(path: str | Path) -> AttendanceRules:
    text, data = read_toml(path, "attendance rules file", lambda w, n: FileError(path, n, w))
    return parse_attendance_rules(data, path=path, text=text)


@dataclass(frozen=True)
class Clocking:
    """One granted event at a time clock."""

    person_no: str
    direction: str  # "in" or "out"
    at: datetime


@dataclass(frozen=True)
class DayRow:
    person_no: str
    day: date
    shift: str
    status: str  # present, absent, holiday, rest
    clock_in: time | None = None
    clock_out: time | None = None
    late_min: int = 0
    early_min: int = 0
    minutes: int = 0
    note: str = ""

    def cells(self) -> list[Any]:
        return [
            self.person_no,
            self.day.isoformat(),
            self.shift,
            self.status,
            f"{self.clock_in:%H:%M}" if self.clock_in else "",
            f"{self.clock_out:%H:%M}" if self.clock_out else "",
            self.late_min,
            self.early_min,
            hours(self.minutes),
            self.note,
        ]


@dataclass(frozen=True)
class MonthRow:
    person_no: str
    shift: str
    workdays: int
    present: int
    late: int
    early: int
    absent: int
    no_clock_out: int
    minutes: int

    def cells(self) -> list[Any]:
        return [
            self.person_no,
            self.shift,
            self.workdays,
            self.present,
            self.late,
            self.early,
            self.absent,
            self.no_clock_out,
            hours(self.minutes),
        ]


def hours(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def month_days(month: str) -> list[date]:
    """The days of ``month`` (YYYY-MM); ValueError for anything else."""
    year, mon = (int(x) for x in month.split("-"))
    if len(month) != 7 or not 2000 <= year <= 2099:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return [date(year, mon, d) for d in range(1, calendar.monthrange(year, mon)[1] + 1)]


def _minutes(a: time, b: time) -> int:
    return (
        int((datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()) // 60
    )


def daily(rules: AttendanceRules, clockings: Iterable[Clocking], month: str) -> list[DayRow]:
    """Every person on a shift, every day of ``month`` that is a workday or has clockings."""
    days = month_days(month)
    by_day: dict[tuple[str, date], list[Clocking]] = {}
    for c in sorted(clockings, key=lambda c: c.at):
        by_day.setdefault((c.person_no, c.at.date()), []).append(c)
    rows: list[DayRow] = []
    for shift in sorted(rules.shifts.values(), key=lambda s: s.name):
        for person in sorted(shift.people):
            for day in days:
                rows.extend(_day(rules, shift, person, day, by_day.get((person, day), [])))
    return rows


def _day(
    rules: AttendanceRules, shift: Shift, person: str, day: date, seen: list[Clocking]
) -> list[DayRow]:
    ins = [c.at.time() for c in seen if c.direction == "in"]
    outs = [c.at.time() for c in seen if c.direction == "out"]
    first_in = ins[0] if ins else None
    last_out = outs[-1] if outs else None
    worked = _minutes(first_in, last_out) if first_in and last_out and last_out > first_in else 0
    if day in rules.holidays or day.isoweekday() not in shift.workdays:
        status = HOLIDAY if day in rules.holidays else REST
        if not seen and status == REST:
            return []
        return [DayRow(person, day, shift.name, status, first_in, last_out, minutes=worked)]
    if first_in is None:
        note = "clocked out only" if last_out else ""
        return [DayRow(person, day, shift.name, ABSENT, None, last_out, note=note)]
    late = _minutes(shift.start, first_in)
    late = late if late > shift.grace else 0
    early = _minutes(last_out, shift.end) if last_out else 0
    early = early if early > shift.grace else 0
    note = "" if last_out else "no clock-out"
    return [DayRow(person, day, shift.name, PRESENT, first_in, last_out, late, early, worked, note)]


def monthly(rules: AttendanceRules, rows: Iterable[DayRow]) -> list[MonthRow]:
    """One line per person: workdays, days present, late, early, absent, hours."""
    out: dict[str, dict[str, int]] = {}
    shift: dict[str, str] = {}
    for r in rows:
        t = out.setdefault(r.person_no, dict.fromkeys(MONTHLY_COLUMNS[2:8], 0) | {"minutes": 0})
        shift[r.person_no] = r.shift
        t["minutes"] += r.minutes
        if r.status in (PRESENT, ABSENT):
            t["workdays"] += 1
        t["present"] += r.status == PRESENT
        t["absent"] += r.status == ABSENT
        t["late"] += r.late_min > 0
        t["early"] += r.early_min > 0
        t["no_clock_out"] += r.status == PRESENT and r.clock_out is None
    return [
        MonthRow(
            p,
            shift[p],
            t["workdays"],
            t["present"],
            t["late"],
            t["early"],
            t["absent"],
            t["no_clock_out"],
            t["minutes"],
        )
        for p, t in sorted(out.items())
    ]


def report_csv(columns: tuple[str, ...], rows: Iterable[DayRow | MonthRow]) -> str:
    """A report as CSV text (UTF-8; cells that look like formulas neutralised)."""
    out = io.StringIO()
    writer = csv_writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(r.cells())
    return out.getvalue()


def report_xlsx(month: str, days: list[DayRow], months: list[MonthRow]) -> bytes:
    """The monthly summary and the daily detail as two sheets of one workbook."""
    import openpyxl

    book = openpyxl.Workbook()
    summary = book.active
    summary.title = f"monthly {month}"
    detail = book.create_sheet(f"daily {month}")
    for sheet, columns, rows in (
        (summary, MONTHLY_COLUMNS, months),
        (detail, DAILY_COLUMNS, days),
    ):
        sheet.append(list(columns))
        for r in rows:
            sheet.append([safe_cell(c) for c in r.cells()])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def clockings_from(events: Iterable[dict[str, Any]]) -> list[Clocking]:
    """Clockings from stored events (``person_no``, ``direction``, ``event_time``)."""
    return [
        Clocking(
            e["person_no"],
            e["direction"],
            e["event_time"]
            if isinstance(e["event_time"], datetime)
            else datetime.fromisoformat(e["event_time"]),
        )
        for e in events
        if e.get("person_no")
    ]
