"""Coach: a ticket at boarding. The conductor's terminal stands at the origin (its station)
and knows where the rider is going (the ride's destination); the fare is the fare file's
origin/destination table, charged in full at boarding, and the coach's 0x1A record notes
origin, destination and amount.

Chosen over entry/exit taps because nothing the card says then shapes the fare: a hostile
card cannot shorten a trip it has already paid for, and no exit tap can be missed.
"""

from __future__ import annotations

from datetime import datetime

from terminal.epurse.model import CardInfo
from terminal.epurse.recovery import Resolution
from terminal.fares.engine import TRIP_EP_SINGLE, FareDecision
from terminal.fares.modes import INDUSTRY_COACH
from terminal.fares.notes import FareNote, NoteCode
from terminal.roles.transport.base import CLOSED, ModeUnavailable, ModeValidator, Ride
from terminal.roles.validator import TapOutcome, TapResult


class CoachBoarding(ModeValidator):
    industry = INDUSTRY_COACH
    section = "coach"

    def __init__(self, *args: object, one_trip: bool = False, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        coach = self.rules.modes.coach
        assert coach is not None
        if self.place.station not in coach.stations:
            raise ModeUnavailable(f"station {self.place.station} is not in coach.stations")
        self.one_trip = one_trip

    def set_destination(self, station: str) -> None:
        """Where the next card's rider is going."""
        self.ride = Ride(None, self.ride.driver, self.ride.vehicle, station.upper())

    def tap(self) -> TapResult:
        result = super().tap()
        if result.green and result.fare and self.one_trip:
            self.ride = Ride(None, self.ride.driver, self.ride.vehicle, None)
        return result

    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        coach = self.rules.modes.coach
        assert coach is not None
        to = self.ride.destination.upper() if self.ride.destination else None
        if to is None:
            return TapResult(TapOutcome.NO_DESTINATION, "no destination chosen", number)
        fare = coach.fare(self.place.station, to)
        if fare is None:
            detail = FareNote(NoteCode.NO_ROUTE_FARE, origin=self.place.station, destination=to)
            return TapResult(TapOutcome.NO_ROUTE_FARE, detail, number)
        decision = FareDecision(fare, TRIP_EP_SINGLE)
        return self.pay_record(
            info,
            number,
            now,
            recovered,
            decision,
            self.context(decision, destination=to),
            coach.record,
            status=CLOSED,
            open_time=now,
            close_place=bytes.fromhex(to),
            charged=fare,
        )
