"""What the taxi, bike, coach and parking roles share: the validator's tap (select, hotlist,
expiry, torn-debit recovery, double tap) with a mode's own pricing, the mode's 0x1A record,
and the checks that keep a card's own claims honest.

A card's 0x1A and 0x1E records are written by UPDATE CAPP DATA CACHE and covered by no MAC
(reference §2.4), so a hostile card can rewrite them. What it cannot rewrite is the 0x18
transaction log, which the card's COS keeps itself at every DEBIT: an opening the card
claims (a rent, a car park entry) is believed only when its log holds the debit that wrote
it (same terminal, same time, same amount). Where the claim fails, the terminal's journal
(shared by the docks of one station, the gates of one car park) is asked; where both are
silent, the mode's rule for "nothing found" applies (the maximum fee, or a refusal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from terminal.apdu import iso
from terminal.apdu.errors import MalformedResponse, YikatongError
from terminal.apdu.flow import Flow, card
from terminal.epurse import commands as c
from terminal.epurse import flows
from terminal.epurse.flows import CacheUpdate
from terminal.epurse.layouts import ModeRecord
from terminal.epurse.model import CardInfo, LogEntry
from terminal.epurse.recovery import Resolution
from terminal.fares.engine import TRIP_EP_ENTRY, FareDecision
from terminal.fares.notes import FareNote, NoteCode
from terminal.fares.rules import FareRules
from terminal.hotlist.hotlist import Hotlist
from terminal.journal.journal import Journal, JournalRow
from terminal.layout import build, parse
from terminal.roles.session import TerminalSession
from terminal.roles.trips import trip_record
from terminal.roles.validator import TapResult, Validator, ValidatorConfig

OPEN = 0x01
CLOSED = 0x00
LOG_RECORDS = 10  # the card's COS keeps 10 records in 0x18


class ModeUnavailable(YikatongError):
    """The fare file has no section for this mode, or the ride lacks what the mode needs."""


@dataclass(frozen=True)
class Ride:
    """What a ride's terminal knows besides the card: the taxi meter's amount, the driver,
    the vehicle (taxi plate, bike number), the coach's destination."""

    meter: int | None = None
    driver: str = ""
    vehicle: str = ""
    destination: str | None = None


@dataclass(frozen=True)
class Opening:
    """When and where a rent or a car park entry began, and who says so."""

    when: datetime
    held: int
    source: str  # "card" or "journal"


def ascii8(text: str) -> bytes:
    """A vehicle or driver field: ASCII, space padded to 8 bytes (longer is cut)."""
    return text.encode("ascii", "replace")[:8].ljust(8, b" ")


def read_mode_record(record_no: int) -> Flow[Any | None]:
    """The mode's 0x1A record, or None when absent or not in this layout."""
    r = yield card(iso.read_record(c.SFI_CAPP_VARIABLE, record_no), check=False)
    if not r.ok:
        return None
    try:
        return parse(ModeRecord, r.data, f"0x1A record 27{record_no:02X}")
    except MalformedResponse:
        return None


def logged(log: list[LogEntry], device: bytes, when: datetime | None, amount: int) -> bool:
    """The card's 0x18 log holds the debit that wrote a record at ``when`` from ``device``
    for ``amount``; a time older than every entry of a full log cannot be checked and is
    taken (an earlier opening only makes the fee larger)."""
    if when is None:
        return False
    for e in log:
        if e.terminal_id == device[-6:] and e.when == when and e.amount == amount:
            return True
    dated = [e.when for e in log if e.when is not None]
    return len(log) >= LOG_RECORDS and bool(dated) and when < min(dated)


def is_open(rec: Any | None) -> bool:
    """The mode's 0x1A record says something is open on the card (a rent, an entry)."""
    return rec is not None and bool(rec.valid) and rec.status == OPEN


class ModeValidator(Validator):
    """A validator whose fare comes from its mode's rules instead of the bus/metro engine."""

    industry = 0
    section = ""  # the fare file's section the mode needs ([taxi], [bike]...)
    opening_mode = ""  # the mode whose rows open what this role closes (journal lookups)

    def __init__(
        self,
        session: TerminalSession,
        journal: Journal,
        hotlist: Hotlist,
        config: ValidatorConfig,
        ride: Ride | None = None,
    ):
        super().__init__(session, journal, hotlist, config)
        self.place = replace(self.place, industry=self.industry)
        self.ride = ride or Ride()
        if self.section and getattr(self.rules.modes, self.section) is None:
            raise ModeUnavailable(f"the fare file has no [{self.section}] section")

    @property
    def rules(self) -> FareRules:
        return self.config.rules

    def _charge(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        return self.price(info, number, now, recovered)

    def price(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        raise NotImplementedError

    # -- helpers for the modes ---------------------------------------------------------------
    def record(self, record_no: int, **fields: Any) -> bytes:
        """This mode's 128-byte 0x1A record; unnamed fields blank."""
        op = self.rules.operator
        values: dict[str, Any] = dict(
            record_no=record_no,
            valid=1,
            status=CLOSED,
            open_time=None,
            open_city=op.city_code,
            open_institution=op.acquirer_id,
            open_place=bytes.fromhex(self.place.station),
            open_device=self.place.device,
            close_time=None,
            close_place=b"\x00\x00",
            close_device=bytes(8),
            held=0,
            charged=0,
            vehicle=ascii8(self.ride.vehicle),
            driver=ascii8(self.ride.driver),
            reserved=bytes(55),
        )
        values.update(fields)
        return build(ModeRecord, **values)

    def updates(
        self, decision: FareDecision, now: datetime, record: Callable[[int], bytes] | None
    ) -> Callable[[int], list[CacheUpdate]]:
        """The cache updates of this tap: the mode's 0x1A record (built with the balance
        after), then the 0x1E process record."""
        cfg, op = self.config, self.rules.operator

        def make(balance_before: int) -> list[CacheUpdate]:
            after = balance_before - decision.amount
            out = []
            if record is not None:
                out.append(CacheUpdate.capp(record(after), p1_from_record=cfg.capp_p1_from_record))
            out.append(CacheUpdate.trip(trip_record(decision, self.place, op, now, after)))
            return out

        return make

    def pay_record(
        self,
        info: CardInfo,
        number: str,
        now: datetime,
        recovered: tuple[Resolution, ...],
        decision: FareDecision,
        context: dict[str, object],
        record_no: int,
        **fields: Any,
    ) -> TapResult:
        """Pay ``decision`` in one composite purchase that also writes this mode's 0x1A
        record ``record_no`` with ``fields``."""

        def record(balance_after: int) -> bytes:
            return self.record(record_no, **fields)

        return self._pay(
            info, number, now, decision, self.updates(decision, now, record), context, recovered
        )

    def pay_opening(
        self,
        info: CardInfo,
        number: str,
        now: datetime,
        recovered: tuple[Resolution, ...],
        record_no: int,
        held: int = 0,
    ) -> TapResult:
        """Open (a rent, an entry): charge ``held`` and mark the record open from now."""
        decision = FareDecision(held, TRIP_EP_ENTRY)
        return self.pay_record(
            info,
            number,
            now,
            recovered,
            decision,
            self.context(decision),
            record_no,
            status=OPEN,
            open_time=now,
            held=held,
        )

    def pay_closing(
        self,
        info: CardInfo,
        number: str,
        now: datetime,
        recovered: tuple[Resolution, ...],
        decision: FareDecision,
        context: dict[str, object],
        record_no: int,
        kept: dict[str, Any],
    ) -> TapResult:
        """Close (a return, an exit): pay ``decision`` and mark the record closed here and
        now, with what is ``kept`` of its opening."""
        return self.pay_record(
            info,
            number,
            now,
            recovered,
            decision,
            context,
            record_no,
            status=CLOSED,
            close_time=now,
            close_place=bytes.fromhex(self.place.station),
            close_device=self.place.device,
            charged=decision.amount,
            **kept,
        )

    def context(self, decision: FareDecision, **extra: object) -> dict[str, object]:
        ctx = self._context(decision)
        if self.ride.vehicle:
            ctx["vehicle"] = self.ride.vehicle
        ctx.update({k: v for k, v in extra.items() if v is not None})
        return ctx

    def card_log(self) -> list[LogEntry]:
        return self.session.run(flows.read_log())

    def journal_opening(self, info: CardInfo, modes: tuple[str, ...]) -> JournalRow | None:
        """This card's newest row of ``modes`` in the journal when it opened something
        (a rent, an entry) that no later row of the journal closed."""
        row = self.journal.last_for_card(info.serial, modes=modes)
        if row is None or row.context.get("mode") != self.opening_mode:
            return None
        return row

    def find_opening(
        self, info: CardInfo, rec: Any | None, modes: tuple[str, ...], now: datetime
    ) -> tuple[Opening | None, list[str]]:
        """The earliest opening the card (checked against its log) or the journal vouch for;
        the notes say what was not believed."""
        notes: list[str] = []
        found: list[Opening] = []
        if is_open(rec):
            if rec.open_time is not None and rec.open_time <= now:
                if logged(self.card_log(), rec.open_device, rec.open_time, rec.held):
                    found.append(Opening(rec.open_time, rec.held, "card"))
                else:
                    notes.append(FareNote(NoteCode.OPENING_NOT_LOGGED))
            else:
                notes.append(FareNote(NoteCode.OPENING_IN_FUTURE))
        row = self.journal_opening(info, modes)
        if row is not None:
            found.append(Opening(row.txn_time, row.amount, "journal"))
        if not found:
            return None, notes
        first = min(found, key=lambda o: o.when)
        if first.source == "journal" and any(o.source == "card" for o in found):
            notes.append(FareNote(NoteCode.JOURNAL_EARLIER))
        return first, notes
