"""Taxi: the meter's amount at trip end, paid by a composite purchase that writes the taxi's
0x1A record (vehicle, driver, amount) and a 0x1E process record, or by a ride code (the
amount charged to the code's issuing platform within its per-ride limit, ``QrGate.taxi``).

The amount comes with the ride: fixed for every tap in a quick run (``ykt validator --mode
taxi --meter FEN``), or one trip at a time (``set_meter``) when the meter sends it; a trip's
amount is used once, so the next card waits for the next trip.
"""

from __future__ import annotations

from datetime import datetime

from terminal.epurse.model import CardInfo
from terminal.epurse.recovery import Resolution
from terminal.fares.engine import TRIP_EP_SINGLE, FareDecision
from terminal.fares.modes import INDUSTRY_TAXI
from terminal.fares.notes import FareNote, NoteCode
from terminal.money import format_fen
from terminal.qr.code import QrError
from terminal.roles.transport.base import CLOSED, ModeValidator, Ride
from terminal.roles.validator import TapOutcome, TapResult


class TaxiMeter(ModeValidator):
    industry = INDUSTRY_TAXI
    section = "taxi"

    def __init__(self, *args: object, one_trip: bool = False, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.one_trip = one_trip  # the amount is for one payment (set_meter), not every tap

    def set_meter(self, amount: int) -> None:
        """The meter's amount for the trip that just ended (the next card pays it)."""
        self.ride = Ride(amount, self.ride.driver, self.ride.vehicle)

    def tap(self) -> TapResult:
        result = super().tap()
        if result.green and result.fare and self.one_trip:
            self.ride = Ride(None, self.ride.driver, self.ride.vehicle)
        return result

    def _scan(self, raw: bytes) -> TapResult:
        """A ride code pays the meter: the same amount checks as a card, then the code's
        checks, limit and journal row (``QrGate.taxi``); a trip's amount is used once."""
        if self.qr is None:
            return super()._scan(raw)
        refused = self._meter_refusal()
        if refused is not None:
            return TapResult(*refused)
        amount = self.ride.meter or 0
        context = self.context(
            FareDecision(amount, TRIP_EP_SINGLE), driver=self.ride.driver or None
        )
        try:
            ride = self.qr.taxi(raw, self.session.now(), amount, context)
        except QrError as exc:
            return TapResult(
                TapOutcome.CODE_REFUSED, f"ride code refused: {exc.detail}", reason=str(exc.reason)
            )
        if self.one_trip:
            self.ride = Ride(None, self.ride.driver, self.ride.vehicle)
        code = ride.verified.code
        return TapResult(
            TapOutcome.CODE_PAID,
            f"paid by ride code (platform {code.platform_code})",
            code.user_account,
            amount,
        )

    def _meter_refusal(self) -> tuple[TapOutcome, str] | None:
        """Why the meter's amount cannot be charged (none yet, above the fare file's
        maximum) as an outcome and its detail, or None."""
        taxi = self.rules.modes.taxi
        assert taxi is not None
        amount = self.ride.meter
        if not amount:
            return TapOutcome.NO_METER_FARE, "no fare on the meter"
        if amount > taxi.max_fare:
            return TapOutcome.OVER_METER_LIMIT, FareNote(
                NoteCode.OVER_METER_LIMIT,
                amount=format_fen(amount),
                maximum=format_fen(taxi.max_fare),
            )
        return None

    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        taxi = self.rules.modes.taxi
        assert taxi is not None
        refused = self._meter_refusal()
        if refused is not None:
            return TapResult(*refused, number)
        amount = self.ride.meter or 0
        decision = FareDecision(amount, TRIP_EP_SINGLE)
        context = self.context(decision, driver=self.ride.driver or None)
        return self.pay_record(
            info,
            number,
            now,
            recovered,
            decision,
            context,
            taxi.record,
            status=CLOSED,
            open_time=now,
            close_time=now,
            charged=amount,
        )
