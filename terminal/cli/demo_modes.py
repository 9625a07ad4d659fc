"""The demo's taxi, public bike, coach and parking part: one trip in each mode, on the day's
cards, journaled (and later uploaded and cleared) like the bus and metro taps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminal.fares.engine import Mode
from terminal.fares.rules import FareRules
from terminal.hotlist.hotlist import Hotlist
from terminal.journal.journal import Journal
from terminal.roles.session import TerminalSession
from terminal.roles.transport import Ride, make_validator
from terminal.roles.validator import Validator, ValidatorConfig

Out = Callable[[str], None]

# one trip per mode: its taps as (terminal id, mode, station, ride, label, minutes before)
TRIPS = [
    [("310000000601", Mode.TAXI, "0000", Ride(2_350, "D0042", "HU-A1234"), "taxi", 2)],
    [
        ("310000000602", Mode.BIKE_RENT, "0301", Ride(vehicle="B000777"), "bike rent", 2),
        ("310000000603", Mode.BIKE_RETURN, "0305", Ride(), "bike return", 75),
    ],
    [("310000000604", Mode.COACH, "0201", Ride(destination="0202"), "coach", 2)],
    [
        ("310000000605", Mode.PARKING_ENTRY, "0401", Ride(), "park entry", 2),
        ("310000000606", Mode.PARKING_EXIT, "0402", Ride(), "park exit", 130),
    ],
]


def run_modes_demo(
    result: Any,
    session: Callable[[str], TerminalSession],
    journal: Journal,
    hotlist: Hotlist,
    rules: FareRules,
    tap: Callable[[Any, Validator, str], None],
    advance: Callable[[float], None],
    out: Out,
) -> None:
    """A taxi trip, a bike rented and returned at another dock, a coach ticket and a parking
    stay, each by the card holding the most (``tap`` prints the line, counts refusals)."""
    out("== Taxi, public bike, coach and parking (the demo fare file's [taxi] [bike] ...)")
    for trip in TRIPS:
        card = max(result.cards, key=lambda c: c.balance)
        for tid, mode, station, ride, label, minutes in trip:
            config = ValidatorConfig(mode=mode, rules=rules, station=station)
            validator = make_validator(session(tid), journal, hotlist, config, ride)
            result.roles[tid] = label
            advance(minutes)
            tap(card, validator, label)
