"""The bus/metro validator: one tap in, one green or red out, nothing lost or charged twice.

Per tap: select, refuse blocked or hotlisted cards (blocking hotlisted ones), settle any
torn debit this terminal left on the card, skip a double tap, read the trip state, ask
the fare engine, then a composite purchase with the journal's intent row written before
DEBIT and the proof after.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from terminal.apdu import iso
from terminal.apdu.errors import (
    ApplicationBlocked,
    ApplicationLocked,
    CardError,
    InsufficientBalance,
    MalformedResponse,
    TlvError,
    TransportError,
)
from terminal.apdu.flow import Flow, card, sam
from terminal.crypto.mac import pad_method2
from terminal.epurse import commands as c
from terminal.epurse import flows
from terminal.epurse.flows import BalanceFlagSet, CacheUpdate
from terminal.epurse.model import CardInfo
from terminal.epurse.recovery import SETTLED, SUSPECT, ProveCounter, Resolution
from terminal.fares.engine import (
    INDUSTRY_BUS,
    INDUSTRY_METRO,
    FareDecision,
    Mode,
    Place,
    decide,
)
from terminal.fares.rules import FareRules
from terminal.hotlist.hotlist import Hotlist
from terminal.journal.journal import Journal, JournalRow
from terminal.money import format_fen
from terminal.qr.code import QrError
from terminal.qr.ride import QrGate
from terminal.roles.debit import DebitPath, PaymentInterrupted, PurchaseStep
from terminal.roles.session import TerminalSession
from terminal.roles.trips import bus_record, metro_record, read_trip_state, trip_record
from terminal.sam import commands as samc

log = logging.getLogger(__name__)

KEY_USAGE_MAINTENANCE = 0x45  # PSAM DES INIT usage for application block (PSAM-COS specific)


@dataclass(frozen=True)
class ValidatorConfig:
    mode: Mode
    rules: FareRules
    line: bytes = b"\x00\x01"
    station: str = "0101"
    prove_counter: ProveCounter = ProveCounter.NEXT
    issuer_factor: bool = True  # JT/T 978 two-level MAC1 (Lc 0x24)
    bus_capp_record: bool = False  # also write the 2702 bus record on a flat fare
    capp_p1_from_record: bool = True  # 80 DC P1 = xx of 27xx (some cards want 00)
    updates_before_mac1: bool = False
    metro_crc32: bool = True
    require_interoperable: bool = True  # refuse 0x17 interop type 0000 (SHJ practice)
    permanent_block: bool = False  # hotlisted cards: temporary (00) or permanent (01) block
    retry_window_seconds: int = 120  # a recovered debit this recent counts as this tap's fare
    maintenance_key_version: int = 1


class TapOutcome(enum.StrEnum):
    """What a tap came to, decided where the validator (or its mode, or the ride-code gate)
    decides it; operator words are chosen by it (terminal/words.py), ``message`` keeps the
    technical detail for the logs."""

    PAID = "paid"
    PAID_SUSPECT = "paid-suspect"  # charged, the card's proof (MAC2) not verified
    COMPLETED = "completed"  # an interrupted tap's debit found and settled
    ALREADY_PAID = "already-paid"  # a double tap within the window
    CODE_PAID = "code-paid"  # paid by a ride code
    INSUFFICIENT = "insufficient"
    BLOCKED = "blocked"
    LOST = "lost"  # hotlisted, now blocked
    LOST_UNBLOCKED = "lost-unblocked"  # hotlisted, the block failed
    EXPIRED = "expired"
    NOT_READ = "not-read"
    REMOVED = "removed"  # the card left before any payment began
    INTERRUPTED = "interrupted"  # the card left during the payment
    UNUSABLE = "unusable"
    NOT_INTEROPERABLE = "not-interoperable"
    BALANCE_FLAG = "balance-flag"
    CARD_REFUSED = "card-refused"
    FARE_REFUSED = "fare-refused"  # the fare rules refuse this ride
    CODE_NOT_ACCEPTED = "code-not-accepted"
    CODE_REFUSED = "code-refused"
    CODE_NOT_READ = "code-not-read"  # the scanner's frame carried no code
    # the transport modes (terminal/roles/transport)
    NO_METER_FARE = "no-meter-fare"
    OVER_METER_LIMIT = "over-meter-limit"
    ALREADY_RENTING = "already-renting"
    DEPOSIT_SHORT = "deposit-short"
    NO_DESTINATION = "no-destination"
    NO_ROUTE_FARE = "no-route-fare"
    ALREADY_PARKED = "already-parked"
    SEE_ATTENDANT = "see-attendant"
    STAY_TOO_LONG = "stay-too-long"

    @property
    def green(self) -> bool:
        return self in GREEN


GREEN = frozenset(
    {
        TapOutcome.PAID,
        TapOutcome.PAID_SUSPECT,
        TapOutcome.COMPLETED,
        TapOutcome.ALREADY_PAID,
        TapOutcome.CODE_PAID,
    }
)


@dataclass(frozen=True)
class TapResult:
    outcome: TapOutcome
    message: str
    card_number: str | None = None
    fare: int = 0
    balance: int | None = None
    elapsed_ms: float = 0.0
    notes: tuple[str, ...] = ()
    row: JournalRow | None = None
    recovered: tuple[Resolution, ...] = field(default_factory=tuple)
    reason: str | None = None  # why it was refused: a ride code's QrReason, a FareRefusal
    sw: int | None = None  # the card's status word when the card refused (terminal.apdu.status)

    @property
    def green(self) -> bool:
        return self.outcome.green

    def line(self) -> str:
        colour = "GREEN" if self.green else "RED  "
        card_no = self.card_number or "-"
        balance = format_fen(self.balance) if self.balance is not None else "-"
        notes = f"  ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"{colour} {card_no:<19s} fare {format_fen(self.fare):>8s} balance "
            f"{balance:>9s} {self.elapsed_ms:6.1f} ms  {self.message}{notes}"
        )


def status_word(exc: Exception) -> int | None:
    """The status word a card refused with; None for an answer that could not be parsed."""
    return exc.sw if isinstance(exc, CardError) else None


class Validator:
    """One gate or bus validator. Several gates may share one journal and hotlist."""

    def __init__(
        self, session: TerminalSession, journal: Journal, hotlist: Hotlist, config: ValidatorConfig
    ):
        self.session = session
        self.journal = journal
        self.debits = DebitPath(session, journal)
        self.hotlist = hotlist
        self.config = config
        self.qr: QrGate | None = None  # set by the assembly when ride codes are accepted
        sam_info = session.sam
        industry = INDUSTRY_BUS if config.mode is Mode.BUS else INDUSTRY_METRO
        self.place = Place(
            industry, config.line, config.station.upper(), b"\x00\x00" + sam_info.terminal_id
        )

    # -- the tap ---------------------------------------------------------------------------
    def tap(self) -> TapResult:
        t0 = time.perf_counter()
        result = self._tap()
        return replace(result, elapsed_ms=(time.perf_counter() - t0) * 1e3)

    def scan(self, raw: bytes) -> TapResult:
        """A ride code presented instead of a card (terminal/qr/ride.py)."""
        t0 = time.perf_counter()
        result = self._scan(raw)
        return replace(result, elapsed_ms=(time.perf_counter() - t0) * 1e3)

    def _scan(self, raw: bytes) -> TapResult:
        if self.qr is None:
            return TapResult(
                TapOutcome.CODE_NOT_ACCEPTED,
                "ride codes are not accepted here",
                reason="not-accepted",
            )
        try:
            ride = self.qr.ride(
                raw, self.session.now(), self.config.rules, self.config.mode, self.place
            )
        except QrError as exc:
            return TapResult(
                TapOutcome.CODE_REFUSED, f"ride code refused: {exc.detail}", reason=str(exc.reason)
            )
        code = ride.verified.code
        return TapResult(
            TapOutcome.CODE_PAID,
            f"paid by ride code (platform {code.platform_code})",
            code.user_account,
            ride.decision.amount,
            notes=ride.decision.notes,
        )

    def _tap(self) -> TapResult:
        s = self.session
        try:
            s.card_reader.connect()
            info = s.run(flows.select())
        except (ApplicationBlocked, ApplicationLocked) as exc:
            return TapResult(
                TapOutcome.BLOCKED, "card blocked: refer to the service desk", sw=exc.sw
            )
        except TransportError as exc:
            return TapResult(TapOutcome.NOT_READ, f"card not read, tap again ({exc})")
        except (CardError, MalformedResponse, TlvError) as exc:
            return TapResult(
                TapOutcome.UNUSABLE, f"not a usable T-Union card ({exc})", sw=status_word(exc)
            )
        number = info.card_number
        now = s.now()
        try:
            if info.serial in self.hotlist:
                return self._block(info, number)
            if not info.valid_on(now.date()):
                return TapResult(TapOutcome.EXPIRED, "card expired or not yet valid", number)
            recovered = self.debits.recover(info, counter=self.config.prove_counter)
            retry = timedelta(seconds=self.config.retry_window_seconds)
            paid = [
                row
                for r, row in recovered
                # a debit dated after now (the clock went back) is not this tap's retry
                if r.outcome in (SETTLED, SUSPECT) and timedelta(0) <= now - row.txn_time <= retry
            ]
            if paid:
                row = self.journal.get(paid[-1].id)
                return TapResult(
                    TapOutcome.COMPLETED,
                    "paid (interrupted tap completed)",
                    number,
                    row.amount,
                    row.balance_after,
                    row=row,
                    recovered=tuple(r for r, _ in recovered),
                )
            last = self.journal.last_for_card(info.serial)
            if (
                last is not None
                and last.terminal_id == s.sam.terminal_id_hex
                and timedelta(0)
                <= now - last.txn_time
                <= timedelta(seconds=self.config.rules.double_tap_seconds)
            ):
                return TapResult(
                    TapOutcome.ALREADY_PAID, "already paid", number, 0, last.balance_after
                )
            return self._charge(info, number, now, tuple(r for r, _ in recovered))
        except TransportError as exc:
            return TapResult(TapOutcome.REMOVED, f"card removed, tap again ({exc})", number)
        except (CardError, MalformedResponse, TlvError) as exc:
            return TapResult(
                TapOutcome.CARD_REFUSED, f"card refused: {exc}", number, sw=status_word(exc)
            )

    def _charge(
        self, info: CardInfo, number: str, now: datetime, recovered: tuple[Resolution, ...]
    ) -> TapResult:
        s, cfg = self.session, self.config
        trips = s.run(read_trip_state(cfg.rules))
        if cfg.require_interoperable and not trips.interoperable:
            return TapResult(
                TapOutcome.NOT_INTEROPERABLE, "card is not interoperable (0x17 type 0000)", number
            )
        decision = decide(cfg.rules, cfg.mode, self.place, trips.state, now)
        if decision.refused:
            return TapResult(
                TapOutcome.FARE_REFUSED,
                decision.refuse or "refused",
                number,
                reason=decision.refusal,
            )

        def updates(balance_before: int) -> list[CacheUpdate]:
            return self._records(decision, trips.metro_raw, now, balance_before)

        return self._pay(info, number, now, decision, updates, self._context(decision), recovered)

    def _pay(
        self,
        info: CardInfo,
        number: str,
        now: datetime,
        decision: FareDecision,
        updates: Callable[[int], list[CacheUpdate]],
        context: dict[str, object],
        recovered: tuple[Resolution, ...],
    ) -> TapResult:
        """The composite purchase of ``decision.amount`` writing ``updates``, through the
        debit path; every way it ends as a tap result (shared with terminal/roles/transport)."""
        s, cfg = self.session, self.config
        step = PurchaseStep.composite(
            info,
            s,
            decision.amount,
            now,
            cache_updates=updates,
            issuer_factor=cfg.issuer_factor,
            updates_before_mac1=cfg.updates_before_mac1,
            allow_balance_flag=cfg.rules.allow_balance_flag,
        )
        try:
            debit = self.debits.debit(info, step, context, counter=cfg.prove_counter)
        except BalanceFlagSet as exc:
            return TapResult(
                TapOutcome.BALANCE_FLAG, f"not charged: {exc}", number, notes=decision.notes
            )
        except InsufficientBalance as exc:
            return TapResult(
                TapOutcome.INSUFFICIENT,
                "insufficient balance",
                number,
                decision.amount,
                notes=decision.notes,
                sw=exc.sw,
            )
        except PaymentInterrupted:
            return TapResult(
                TapOutcome.INTERRUPTED,
                "card removed during payment: tap again",
                number,
                decision.amount,
                notes=decision.notes,
            )
        result, row = debit.result, debit.row
        outcome = TapOutcome.PAID if result.mac2_verified else TapOutcome.PAID_SUSPECT
        message = "paid" if result.mac2_verified else "paid (MAC2 not verified: suspect)"
        return TapResult(
            outcome,
            message,
            number,
            decision.amount,
            result.balance_after,
            notes=decision.notes,
            row=row,
            recovered=recovered,
        )

    def _records(
        self, decision: FareDecision, metro_raw: object, now: datetime, balance_before: int
    ) -> list[CacheUpdate]:
        cfg, op = self.config, self.config.rules.operator
        after = balance_before - decision.amount
        out = []
        if decision.metro_status is not None:
            rec = metro_record(
                metro_raw, decision, self.place, op, now, after, crc32=cfg.metro_crc32
            )
            out.append(CacheUpdate.capp(rec, p1_from_record=cfg.capp_p1_from_record))
        elif cfg.bus_capp_record:
            rec = bus_record(decision, self.place, op, now)
            out.append(CacheUpdate.capp(rec, p1_from_record=cfg.capp_p1_from_record))
        out.append(CacheUpdate.trip(trip_record(decision, self.place, op, now, after)))
        return out

    def _context(self, decision: FareDecision) -> dict[str, object]:
        return {
            "mode": str(self.config.mode),
            "station": self.place.station,
            "line": self.place.line.hex().upper(),
            "notes": list(decision.notes),
        }

    # -- hotlist ---------------------------------------------------------------------------
    def _block(self, info: CardInfo, number: str) -> TapResult:
        try:
            self.session.run(
                block_application(
                    info, self.config.maintenance_key_version, permanent=self.config.permanent_block
                )
            )
        except (CardError, TransportError) as exc:
            log.warning("could not block hotlisted card %s: %s", number, exc)
            return TapResult(TapOutcome.LOST_UNBLOCKED, "card reported lost (block failed)", number)
        return TapResult(TapOutcome.LOST, "card reported lost: blocked", number)


def block_application(info: CardInfo, key_version: int, *, permanent: bool = False) -> Flow[None]:
    """APPLICATION BLOCK with a MAC from the PSAM: challenge from the card, DES INIT on the
    maintenance key with serial ‖ issuer id, CIPHER DATA over IV ‖ padded header."""
    challenge = (yield card(iso.get_challenge(4))).data
    yield sam(
        samc.init_for_descrypt(KEY_USAGE_MAINTENANCE, key_version, info.serial + info.issuer_id)
    )
    header = c.application_block_header(permanent=permanent)
    mac = (yield sam(samc.cipher_mac(challenge[:4] + bytes(4) + pad_method2(header)))).data
    yield card(c.application_block(mac[:4], permanent=permanent))
