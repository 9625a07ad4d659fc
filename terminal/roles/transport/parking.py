"""Parking: entry writes the entry time in the card's parking record (0x1A, a composite
purchase of 0 fen); exit charges the fare file's tariff (free minutes, per-hour steps, a
daily cap for each 24 hours) and closes the record. An entry time the card's log does not
confirm is not believed (base module): the car park's journal is asked, else the exit is
refused or charged one daily cap (``parking.no_entry``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from terminal.epurse.model import CardInfo
from terminal.epurse.recovery import Resolution
from terminal.fares.engine import TRIP_EP_EXIT, FareDecision, Mode
from terminal.fares.modes import INDUSTRY_PARKING, MAX_STAY_DAYS, NO_ENTRY_REFUSE, ParkingRules
from terminal.fares.notes import FareNote, NoteCode
from terminal.roles.transport.base import ModeValidator, is_open, read_mode_record
from terminal.roles.validator import TapOutcome, TapResult

PARKING_MODES = (str(Mode.PARKING_ENTRY), str(Mode.PARKING_EXIT))


class _Gate(ModeValidator):
    industry = INDUSTRY_PARKING
    section = "parking"
    opening_mode = str(Mode.PARKING_ENTRY)

    @property
    def tariff(self) -> ParkingRules:
        assert self.rules.modes.parking is not None
        return self.rules.modes.parking


class ParkingEntry(_Gate):
    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        tariff = self.tariff
        rec = self.session.run(read_mode_record(tariff.record))
        if is_open(rec):
            return TapResult(
                TapOutcome.ALREADY_PARKED,
                FareNote(NoteCode.PARKED, since=rec.open_time),
                number,
            )
        return self.pay_opening(info, number, now, recovered, tariff.record)


class ParkingExit(_Gate):
    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        tariff = self.tariff
        rec = self.session.run(read_mode_record(tariff.record))
        opening, notes = self.find_opening(info, rec, PARKING_MODES, now)
        kept: dict[str, Any] = {}
        if opening is None:
            if tariff.no_entry == NO_ENTRY_REFUSE:
                why = (*notes, FareNote(NoteCode.NO_ENTRY))
                return TapResult(
                    TapOutcome.SEE_ATTENDANT, FareNote(NoteCode.SEE_ATTENDANT, why=why), number
                )
            fee = tariff.daily_cap
            notes.append(FareNote(NoteCode.NO_ENTRY_DAILY_CAP))
        else:
            if now - opening.when > timedelta(days=MAX_STAY_DAYS):
                return TapResult(
                    TapOutcome.STAY_TOO_LONG,
                    FareNote(NoteCode.STAY_TOO_LONG, since=opening.when, days=MAX_STAY_DAYS),
                    number,
                )
            fee = tariff.fee(opening.when, now)
            kept = dict(open_time=opening.when)
            if rec is not None and opening.source == "card":
                kept.update(open_place=rec.open_place, open_device=rec.open_device)
        decision = FareDecision(fee, TRIP_EP_EXIT, tuple(notes))
        context = self.context(decision, entered=opening.when.isoformat() if opening else None)
        return self.pay_closing(
            info, number, now, recovered, decision, context, tariff.record, kept
        )
