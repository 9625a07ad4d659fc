"""Fare files and the pure fare engine."""

from datetime import datetime, timedelta

import pytest

from terminal.fares import FareFileError, Mode, Place, TripState, decide, load_rules
from terminal.fares.engine import (
    METRO_ENTERED,
    METRO_NONE,
    TRIP_EP_EXIT,
    TRIP_EP_SINGLE,
    MetroState,
    RecentTrip,
)
from terminal.fares.rules import parse_rules

RULES = load_rules()
NOW = datetime(2026, 11, 28, 9, 0)
BUS = Place(0x02, b"\x00\x07", "0001", bytes(8))
EXIT = Place(0x01, b"\x00\x01", "0105", bytes(8))
NO_METRO = MetroState(METRO_NONE, "", None, 0)


def state(kind: int = 1, metro: MetroState = NO_METRO, recent=()) -> TripState:  # type: ignore[no-untyped-def]
    return TripState(kind, metro, list(recent))


def test_bus_flat_fare_and_student_rounding() -> None:
    assert decide(RULES, Mode.BUS, BUS, state(), NOW).amount == 200
    rules = parse_rules(
        {**BASE, "bus": {"flat_fare": 201}, "concessions": [{"card_kind": 2, "percent": 50}]}
    )
    assert decide(rules, Mode.BUS, BUS, state(2), NOW).amount == 101  # 100.5 rounds half up


def test_metro_exit_uses_table_and_deposit() -> None:
    entered = MetroState(METRO_ENTERED, "0101", NOW - timedelta(minutes=30), 150)
    d = decide(RULES, Mode.METRO_EXIT, EXIT, state(metro=entered), NOW)
    assert d.amount == 600 - 150 and d.trip_type == TRIP_EP_EXIT and "deposit" in d.notes[-1]


def test_no_entry_max_fare_rule() -> None:
    rules = parse_rules({**BASE, "metro": {**BASE["metro"], "no_entry": "max-fare"}})
    d = decide(rules, Mode.METRO_EXIT, EXIT, state(), NOW)
    assert d.amount == 300 and not d.refused


def test_transfer_needs_another_line_and_the_window() -> None:
    other_line = RecentTrip(TRIP_EP_SINGLE, 0x02, b"\x00\x09", NOW - timedelta(minutes=10), 200)
    same_line = RecentTrip(TRIP_EP_SINGLE, 0x02, b"\x00\x07", NOW - timedelta(minutes=10), 200)
    assert decide(RULES, Mode.BUS, BUS, state(recent=[other_line]), NOW).amount == 100
    assert decide(RULES, Mode.BUS, BUS, state(recent=[same_line]), NOW).amount == 200
    late = RecentTrip(TRIP_EP_SINGLE, 0x01, b"\x00\x01", NOW - timedelta(minutes=91), 400)
    assert decide(RULES, Mode.BUS, BUS, state(recent=[late]), NOW).amount == 200
    future = RecentTrip(TRIP_EP_SINGLE, 0x01, b"\x00\x01", NOW + timedelta(minutes=5), 400)
    assert decide(RULES, Mode.BUS, BUS, state(recent=[future]), NOW).amount == 200


def test_unknown_station_refused() -> None:
    d = decide(RULES, Mode.METRO_ENTRY, Place(1, b"\x00\x01", "0999", bytes(8)), state(), NOW)
    assert d.refused and "0999" in (d.refuse or "")


BASE = {
    "operator": {"name": "t", "city_code": "2900", "acquirer_id": "02902900FFFFFFFF"},
    "bus": {"flat_fare": 200},
    "metro": {"stations": {"0101": "A", "0105": "B"}, "fares": {"0101-0105": 300}},
}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"bus": {"flat_fare": 1.5}}, "whole number of fen"),
        ({"bus": {"flat_fare": -1}}, "whole number of fen"),
        ({"metro": {"stations": {"0101": "A"}, "fares": {"0101-0105": 300}}}, "not in metro"),
        ({"operator": {"name": "t", "city_code": "29", "acquirer_id": "00"}}, "2 bytes"),
        ({"concessions": [{"card_kind": 2, "percent": 150}]}, "above 100"),
        ({"metro": {**BASE["metro"], "no_entry": "free"}}, "no_entry"),
    ],
)
def test_bad_fare_files_rejected(patch: dict, message: str) -> None:
    with pytest.raises(FareFileError, match=message):
        parse_rules({**BASE, **patch})


def test_missing_section_and_bad_toml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FareFileError, match="missing 'operator'"):
        parse_rules({"bus": {}})
    bad = tmp_path / "f.toml"
    bad.write_text("[bus\nflat_fare=1")
    with pytest.raises(FareFileError):
        load_rules(bad)
