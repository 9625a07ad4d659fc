"""Attendance from a scripted month: real cards clock in and out at a time clock (a door
point with purpose attendance), the events go up to a real gateway, and ``ykt campus
attendance`` judges them against shift rules with known answers."""

from __future__ import annotations

import csv
from datetime import date, datetime, time, timedelta
from pathlib import Path

import openpyxl
import pytest

from simulators.campus import campus_card
from terminal.campus.attendance import load_attendance_rules
from terminal.text import FileError
from tests.campus_kit import DOOR_ID, Site, enrol
from tests.cli_kit import ykt
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer

SHIFTS = """\
holidays = [2026-11-11]
[shifts.office]
start = "09:00"
end = "18:00"
grace_minutes = 5
workdays = [1, 2, 3, 4, 5]
people = ["T1", "T2"]
"""
LATE = {date(2026, 11, 3): time(9, 12), date(2026, 11, 17): time(9, 30)}
WITHIN_GRACE = {date(2026, 11, 5): time(9, 4)}
ABSENT = date(2026, 11, 20)
EARLY = {date(2026, 11, 24): time(17, 0)}
HOLIDAY = date(2026, 11, 11)


def _workdays() -> list[date]:
    first = date(2026, 11, 1)
    days = [first + timedelta(days=i) for i in range(30)]
    return [d for d in days if d.isoweekday() <= 5 and d != HOLIDAY]


def test_a_scripted_month_gives_the_known_answers(
    gateway: GatewayServer, db_url: str, tmp_path: Path
) -> None:
    token = gateway.register(DOOR_ID, "campus", role="door")
    clock = FrozenClock(datetime(2026, 11, 2, 8, 0))
    site = Site(tmp_path, clock, gateway.url, token)
    t1, t2 = campus_card(1, "T1", category=2), campus_card(2, "T2", category=2)
    enrol(gateway.url, "T1", "staff", t1)
    enrol(gateway.url, "T2", "staff", t2)
    site.sync()
    for day in _workdays():
        for card, person in ((t1, "T1"), (t2, "T2")):
            if person == "T1" and day == ABSENT:
                continue
            start = time(8, 55)
            end = time(18, 5)
            if person == "T1":
                start = LATE.get(day, WITHIN_GRACE.get(day, start))
                end = EARLY.get(day, end)
            clock.now = datetime.combine(day, start)
            assert site.tap(card, "clock-in").granted
            clock.now = datetime.combine(day, end)
            assert site.tap(card, "clock-out").granted
    assert site.upload() == 2 * 20 * 2 - 2

    (tmp_path / "shifts.toml").write_text(SHIFTS, encoding="utf-8")
    out = ykt(
        "campus", "attendance", "--month", "2026-11", "--shifts", str(tmp_path / "shifts.toml"),
        "--db", db_url, "--out", str(tmp_path / "nov.xlsx"),
    ).stdout  # fmt: skip
    assert "attendance 2026-11: 78 clocking(s), 2 person(s)" in out
    book = openpyxl.load_workbook(tmp_path / "nov.xlsx")
    monthly = [list(r) for r in book["monthly 2026-11"].iter_rows(values_only=True)]
    assert monthly[0][:8] == ["person_no", "shift", "workdays", "present", "late", "early",
                              "absent", "no_clock_out"]  # fmt: skip
    # 20 workdays (21 weekdays less the holiday). T1: 15 ordinary days of 550 minutes,
    # 533 + 515 (late), 541 (within the grace), 485 (early): 172:04
    assert monthly[1] == ["T1", "office", 20, 19, 2, 1, 1, 0, "172:04"]
    assert monthly[2] == ["T2", "office", 20, 20, 0, 0, 0, 0, "183:20"]  # 20 x 550 minutes
    daily = {(r[0], r[1]): r for r in book["daily 2026-11"].iter_rows(values_only=True)}
    assert daily[("T1", "2026-11-03")][3:8] == ("present", "09:12", "18:05", 12, 0)
    assert daily[("T1", "2026-11-05")][6] == 0  # 4 minutes late: within the grace
    assert daily[("T1", "2026-11-20")][3] == "absent"
    assert daily[("T1", "2026-11-24")][3:8] == ("present", "08:55", "17:00", 0, 60)
    assert daily[("T1", "2026-11-11")][3] == "holiday"
    assert ("T1", "2026-11-07") not in daily  # a Saturday: a rest day, not listed

    ykt(
        "campus", "attendance", "--month", "2026-11", "--shifts", str(tmp_path / "shifts.toml"),
        "--db", db_url, "--out", str(tmp_path / "nov.csv"),
    )  # fmt: skip
    with open(tmp_path / "nov.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1][:8] == ["T1", "office", "20", "19", "2", "1", "1", "0"]
    with open(tmp_path / "nov-daily.csv", encoding="utf-8-sig", newline="") as f:
        assert sum(1 for r in csv.reader(f) if r[3] == "absent") == 1


def test_shift_rules_refuse_unknown_keys_and_a_person_on_two_shifts(tmp_path: Path) -> None:
    path = tmp_path / "shifts.toml"
    path.write_text(SHIFTS.replace("grace_minutes", "grace"), encoding="utf-8")
    with pytest.raises(
        FileError, match=r"shifts.toml:5: unknown key 'grace' in section \[shifts.office\]"
    ):
        load_attendance_rules(path)
    path.write_text(SHIFTS + '[shifts.night]\nstart = "20:00"\nend = "23:00"\npeople = ["T2"]\n')
    with pytest.raises(FileError, match="person T2 is on shifts office and night"):
        load_attendance_rules(path)
