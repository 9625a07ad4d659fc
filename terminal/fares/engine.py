"""The fare engine: pure functions from (mode, place, card trip state, time) to a decision.

No I/O: the validator reads the card's trip state, asks for a decision, then writes the
records and debits. Every amount is integer fen; percentages round half up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from terminal.fares.notes import FareNote, NoteCode
from terminal.fares.rules import FareRules

INDUSTRY_METRO = 0x01
INDUSTRY_BUS = 0x02

# 0x1E process-record transaction types (reference §5.5)
TRIP_EP_ENTRY = 0x03
TRIP_EP_EXIT = 0x04
TRIP_EP_SINGLE = 0x06
DEBIT_TRIP_TYPES = (TRIP_EP_EXIT, TRIP_EP_SINGLE)

METRO_NONE = 0x00
METRO_ENTERED = 0x01
METRO_EXITED = 0x02


class Mode(StrEnum):
    BUS = "bus"
    METRO_ENTRY = "metro-entry"
    METRO_EXIT = "metro-exit"
    TAXI = "taxi"
    BIKE_RENT = "bike-rent"
    BIKE_RETURN = "bike-return"
    COACH = "coach"
    PARKING_ENTRY = "parking-entry"
    PARKING_EXIT = "parking-exit"


class FareRefusal(StrEnum):
    """Why the fare rules refuse a ride: the code picks the operator's sentence
    (terminal/words.py); ``FareDecision.refuse`` keeps the detail for the logs."""

    UNKNOWN_STATION = "unknown-station"  # this gate's station is not in the fare file
    NO_ENTRY = "no-entry"  # a metro exit with no entry on the card, and no_entry = "refuse"


BUS_METRO = (Mode.BUS, Mode.METRO_ENTRY, Mode.METRO_EXIT)  # what ``decide`` prices


@dataclass(frozen=True)
class Place:
    """Where the validator stands."""

    industry: int
    line: bytes  # 2 bytes
    station: str  # 4 hex digits; the metro fare table key
    device: bytes  # 8 bytes, terminal number as written in trip records


@dataclass(frozen=True)
class RecentTrip:
    """One 0x1E process record, as the engine needs it."""

    trip_type: int
    industry: int
    line: bytes
    when: datetime | None
    amount: int


@dataclass(frozen=True)
class MetroState:
    """The card's 2701 record, as the engine needs it."""

    status: int
    entry_station: str
    entry_time: datetime | None
    entry_amount: int


@dataclass(frozen=True)
class TripState:
    card_kind: int
    metro: MetroState
    recent: list[RecentTrip] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class FareDecision:
    amount: int
    trip_type: int
    notes: tuple[str, ...] = ()  # Note (code and values) or plain English
    refuse: str | None = None  # the refusal's detail, for the logs
    metro_status: int | None = None  # new 2701 status to write, if any
    refusal: FareRefusal | None = None  # why the ride is refused

    @property
    def refused(self) -> bool:
        return self.refusal is not None


def _refuse(trip_type: int, refusal: FareRefusal, detail: str) -> FareDecision:
    return FareDecision(0, trip_type, refuse=detail, refusal=refusal)


def _percent(amount: int, percent: int) -> int:
    return (amount * percent + 50) // 100


def _apply_concession(rules: FareRules, state: TripState, fare: int, notes: list[FareNote]) -> int:
    c = rules.concession(state.card_kind)
    if c is None or fare == 0:
        return fare
    paid = _percent(fare, c.percent)
    notes.append(FareNote(NoteCode.CONCESSION, kind=c.name, percent=c.percent))
    return paid


def _transfer(
    rules: FareRules, place: Place, since: list[RecentTrip], now: datetime, notes: list[FareNote]
) -> int:
    """Discount when the last paid trip was on another line or mode within the window."""
    if not rules.transfer_discount or not rules.transfer_window_minutes:
        return 0
    window = timedelta(minutes=rules.transfer_window_minutes)
    for trip in since:
        if trip.trip_type not in DEBIT_TRIP_TYPES or trip.when is None:
            continue
        if now - trip.when > window or trip.when > now:
            return 0
        if trip.industry != place.industry or trip.line != place.line:
            notes.append(FareNote(NoteCode.TRANSFER, minutes=rules.transfer_window_minutes))
            return rules.transfer_discount
        return 0
    return 0


def decide(
    rules: FareRules, mode: Mode, place: Place, state: TripState, now: datetime
) -> FareDecision:
    if mode is Mode.BUS:
        return _bus(rules, place, state, now)
    if mode is Mode.METRO_ENTRY:
        return _metro_entry(rules, place, state)
    if mode is not Mode.METRO_EXIT:
        raise ValueError(f"{mode} is priced by its own role (terminal/roles/transport)")
    return _metro_exit(rules, place, state, now)


def _bus(rules: FareRules, place: Place, state: TripState, now: datetime) -> FareDecision:
    notes: list[FareNote] = []
    fare = _apply_concession(rules, state, rules.bus_flat_fare, notes)
    fare = max(0, fare - _transfer(rules, place, state.recent, now, notes) if fare else 0)
    return FareDecision(fare, TRIP_EP_SINGLE, tuple(notes))


def _metro_entry(rules: FareRules, place: Place, state: TripState) -> FareDecision:
    m = rules.metro
    if place.station not in m.stations:
        return _refuse(
            TRIP_EP_ENTRY, FareRefusal.UNKNOWN_STATION, f"station {place.station} not in fare file"
        )
    notes: list[FareNote] = []
    amount = m.entry_debit
    if state.metro.status == METRO_ENTERED and m.missing_exit_penalty:
        amount += m.missing_exit_penalty
        notes.append(FareNote(NoteCode.MISSING_EXIT, station=state.metro.entry_station))
    return FareDecision(amount, TRIP_EP_ENTRY, tuple(notes), metro_status=METRO_ENTERED)


def _metro_exit(rules: FareRules, place: Place, state: TripState, now: datetime) -> FareDecision:
    m = rules.metro
    if place.station not in m.stations:
        return _refuse(
            TRIP_EP_EXIT, FareRefusal.UNKNOWN_STATION, f"station {place.station} not in fare file"
        )
    notes: list[FareNote] = []
    if state.metro.status != METRO_ENTERED or state.metro.entry_station not in m.stations:
        if m.no_entry == "refuse":
            return _refuse(TRIP_EP_EXIT, FareRefusal.NO_ENTRY, "no entry recorded on the card")
        notes.append(FareNote(NoteCode.NO_ENTRY_MAX_FARE))
        fare = _apply_concession(rules, state, m.max_fare, notes)
        return FareDecision(fare, TRIP_EP_EXIT, tuple(notes), metro_status=METRO_EXITED)
    fare = m.fare(state.metro.entry_station, place.station)
    entered = state.metro.entry_time
    if entered is not None and now - entered > timedelta(minutes=m.max_trip_minutes):
        fare += m.overtime_penalty
        notes.append(FareNote(NoteCode.OVERTIME, minutes=m.max_trip_minutes))
    fare = _apply_concession(rules, state, fare, notes)
    before_entry = [t for t in state.recent if entered is None or (t.when and t.when < entered)]
    if fare and entered is not None:
        fare = max(0, fare - _transfer(rules, place, before_entry, entered, notes))
    fare = max(0, fare - state.metro.entry_amount)
    if state.metro.entry_amount:
        notes.append(FareNote(NoteCode.ENTRY_DEPOSIT))
    return FareDecision(fare, TRIP_EP_EXIT, tuple(notes), metro_status=METRO_EXITED)
