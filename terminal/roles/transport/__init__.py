"""Taxi, public bike, coach and parking validators: each a ``Validator`` whose fare comes
from its mode's section of the fare file (terminal/fares/modes.py, docs/fares.md)."""

from __future__ import annotations

from terminal.fares.engine import BUS_METRO, Mode
from terminal.hotlist.hotlist import Hotlist
from terminal.journal.journal import Journal
from terminal.roles.session import TerminalSession
from terminal.roles.transport.base import ModeUnavailable, ModeValidator, Ride
from terminal.roles.transport.bike import BikeRent, BikeReturn
from terminal.roles.transport.coach import CoachBoarding
from terminal.roles.transport.parking import ParkingEntry, ParkingExit
from terminal.roles.transport.taxi import TaxiMeter
from terminal.roles.validator import Validator, ValidatorConfig

ROLES: dict[Mode, type[ModeValidator]] = {
    Mode.TAXI: TaxiMeter,
    Mode.BIKE_RENT: BikeRent,
    Mode.BIKE_RETURN: BikeReturn,
    Mode.COACH: CoachBoarding,
    Mode.PARKING_ENTRY: ParkingEntry,
    Mode.PARKING_EXIT: ParkingExit,
}

__all__ = ["ROLES", "ModeUnavailable", "Ride", "make_validator"]


def make_validator(
    session: TerminalSession,
    journal: Journal,
    hotlist: Hotlist,
    config: ValidatorConfig,
    ride: Ride | None = None,
    *,
    one_trip: bool = False,
) -> Validator:
    """The validator of ``config.mode``; ``one_trip``: a taxi meter's amount or a coach
    destination pays once (set per trip) instead of for every tap."""
    if config.mode in BUS_METRO:
        return Validator(session, journal, hotlist, config)
    role = ROLES[config.mode]
    kw = {"one_trip": one_trip} if role in (TaxiMeter, CoachBoarding) else {}
    return role(session, journal, hotlist, config, ride, **kw)
