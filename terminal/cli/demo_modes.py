"""The demo's taxi, public bike, coach and parking part: one trip in each mode, on the day's
cards, journaled (and later uploaded and cleared) like the bus and metro taps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminal.fares.engine import Mode
from terminal.journal.journal import Journal
from terminal.roles.validator import Validator

Out = Callable[[str], None]

# one trip per mode: its taps as (terminal id, mode, its configuration, label, minutes before)
TRIPS: list[list[tuple[str, Mode, dict[str, Any], str, float]]] = [
    [
        (
            "310000000601",
            Mode.TAXI,
            {"station": "0000", "meter": 2_350, "driver": "D0042", "vehicle": "HU-A1234"},
            "taxi",
            2,
        )
    ],
    [
        ("310000000602", Mode.BIKE_RENT, {"station": "0301", "vehicle": "B000777"}, "bike rent", 2),
        ("310000000603", Mode.BIKE_RETURN, {"station": "0305"}, "bike return", 75),
    ],
    [("310000000604", Mode.COACH, {"station": "0201", "destination": "0202"}, "coach", 2)],
    [
        ("310000000605", Mode.PARKING_ENTRY, {"station": "0401"}, "park entry", 2),
        ("310000000606", Mode.PARKING_EXIT, {"station": "0402"}, "park exit", 130),
    ],
]


def run_modes_demo(
    result: Any,
    device: Callable[..., Validator],
    journal: Journal,
    tap: Callable[[Any, Validator, str], None],
    advance: Callable[[float], None],
    out: Out,
) -> None:
    """A taxi trip, a bike rented and returned at another dock, a coach ticket and a parking
    stay, each by the card holding the most (``device(tid, journal, role, **settings)``: the
    assembled validator; ``tap`` prints the line, counts refusals)."""
    out("== Taxi, public bike, coach and parking (the demo fare file's [taxi] [bike] ...)")
    for trip in TRIPS:
        card = max(result.cards, key=lambda c: c.balance)
        for tid, mode, settings, label, minutes in trip:
            validator = device(tid, journal, mode.value, **settings)
            result.roles[tid] = label
            advance(minutes)
            tap(card, validator, label)
