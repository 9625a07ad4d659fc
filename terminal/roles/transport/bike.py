"""Public bike: rent marks the card as renting in its bike record (0x1A) after a deposit
check (the balance must hold the deposit; nothing charged) or hold (the deposit charged
and credited against the return fee); return charges the fee by rental time from the fare
file's table and clears the mark. A card cannot rent twice; a return at any dock works
(the mark is on the card). What a hostile card's record claims is checked (base module):
a return with no believable rent pays the maximum fee.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from terminal.epurse import flows
from terminal.epurse.model import CardInfo
from terminal.epurse.recovery import Resolution
from terminal.fares.engine import TRIP_EP_EXIT, FareDecision, Mode
from terminal.fares.modes import DEPOSIT_CHECK, INDUSTRY_BIKE, BikeRules
from terminal.fares.notes import FareNote, NoteCode
from terminal.money import format_fen
from terminal.roles.transport.base import (
    CLOSED,
    ModeValidator,
    is_open,
    logged,
    read_mode_record,
)
from terminal.roles.validator import TapOutcome, TapResult

BIKE_MODES = (str(Mode.BIKE_RENT), str(Mode.BIKE_RETURN))


class _BikeDock(ModeValidator):
    industry = INDUSTRY_BIKE
    section = "bike"
    opening_mode = str(Mode.BIKE_RENT)

    @property
    def bike(self) -> BikeRules:
        assert self.rules.modes.bike is not None
        return self.rules.modes.bike


class BikeRent(_BikeDock):
    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        bike = self.bike
        rec = self.session.run(read_mode_record(bike.record))
        if is_open(rec):
            what = rec.vehicle.decode("ascii", "replace").strip()
            detail = (
                FareNote(NoteCode.RENTING, vehicle=what, since=rec.open_time)
                if what
                else FareNote(NoteCode.RENTED_SINCE, since=rec.open_time)
            )
            return TapResult(TapOutcome.ALREADY_RENTING, detail, number)
        row = self.journal_opening(info, BIKE_MODES)
        if row is not None and not _returned_after(self, rec, row.txn_time):
            return TapResult(
                TapOutcome.ALREADY_RENTING,
                FareNote(NoteCode.RENTED_HERE, since=row.txn_time),
                number,
            )
        if bike.deposit_mode == DEPOSIT_CHECK:
            balance = self.session.run(flows.read_balance())
            if balance < bike.deposit:
                return TapResult(
                    TapOutcome.DEPOSIT_SHORT,
                    FareNote(NoteCode.DEPOSIT_SHORT, deposit=format_fen(bike.deposit)),
                    number,
                    balance=balance,
                )
        return self.pay_opening(info, number, now, recovered, bike.record, bike.held)


def _returned_after(dock: ModeValidator, rec: Any | None, since: datetime) -> bool:
    """The card's bike record shows a return after ``since`` that its log confirms (a rent
    the journal holds was closed at a dock with another journal)."""
    if rec is None or not rec.valid or rec.status != CLOSED or rec.close_time is None:
        return False
    if rec.close_time <= since:
        return False
    return logged(dock.card_log(), rec.close_device, rec.close_time, rec.charged)


class BikeReturn(_BikeDock):
    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        bike = self.bike
        rec = self.session.run(read_mode_record(bike.record))
        opening, notes = self.find_opening(info, rec, BIKE_MODES, now)
        if opening is None:
            fee, credit = bike.max_fee, 0
            notes.append(FareNote(NoteCode.NO_RENT_MAX_FEE))
            kept: dict[str, Any] = {}
        else:
            fee, credit = bike.fee(opening.when, now), opening.held
            kept = dict(open_time=opening.when, held=opening.held)
            if rec is not None and opening.source == "card":
                kept.update(
                    open_city=rec.open_city,
                    open_institution=rec.open_institution,
                    open_place=rec.open_place,
                    open_device=rec.open_device,
                )
        amount = max(0, fee - credit)
        if credit:
            notes.append(FareNote(NoteCode.DEPOSIT_CREDITED, amount=format_fen(credit)))
        decision = FareDecision(amount, TRIP_EP_EXIT, tuple(notes))
        context = self.context(
            decision, rented=opening.when.isoformat() if opening else None, fee=fee
        )
        return self.pay_closing(info, number, now, recovered, decision, context, bike.record, kept)
