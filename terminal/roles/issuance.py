"""The card centre's issuance desk (发卡): new cards and replacements of lost ones.

Per card: check the applicant, probe the card in the reader, take a number from the
``CardRegistry`` (which enforces one person, one card, one number), personalise the
blank card with keys the host security module protects, read it back, and mark it
active. An interrupted card is recognised on the next attempt: a half-personalised chip
is erased and redone under the same number, an activated one whose registration did not
finish is read back and registered. A replacement first makes sure the lost card is
reported and hotlisted, then issues the new card and loads the carried balance with a
normal online load on the journaled credit path (``CreditPath``: the gateway's load host
and the desk's journal) - never by writing a balance. A carried load torn at any APDU is
finished at the card's next visit, so the balance is carried exactly once; a desk without
a credit path (offline) replaces only cards with nothing to carry. With a
``CardBook`` (the gateway's), the carried balance is the one the gateway proves, and a
replacement it cannot vouch for is refused before any card work. A batch issues one card
per row and reports each row, refused or issued, without stopping at the first refusal.

Numbers come from blocks the card centre (``CardCentre``, the gateway) leased to this desk
and the registry keeps; online, the desk tops its blocks up and claims each number for
the holder before the card is written (the person check against the central book), and a
refusal voids the number before any card work. Offline it issues from the blocks it holds,
refuses when it holds none, and the push reconciles what it issued (docs/issuance.md §3).

The desk holds no key: the ``PersoHost`` hands out cryptograms, the gateway MAC2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from terminal.apdu.errors import YikatongError
from terminal.campus.card import Identity
from terminal.cos.layouts import LifeCycle
from terminal.epurse import flows, perso
from terminal.epurse.model import CardSnapshot, LoadResult
from terminal.epurse.perso import CardProbe, PersoHost, PersoPlan
from terminal.hotlist import Hotlist
from terminal.identity import check_id_number
from terminal.roles.debit import CreditPath
from terminal.roles.load_host import HttpLoadHost, LoadPending, settle_own_loads, settled_any
from terminal.roles.registry import (
    CARRY_PURPOSE,
    Applicant,
    CardCentre,
    CardRecord,
    CardRegistry,
    CardState,
    CentreRefused,
    CentreUnreachable,
    NoNumbers,
)
from terminal.roles.session import TerminalSession
from terminal.uplink.client import GatewayRefused
from terminal.words import sentence

ID_TYPE_RESIDENT = 0x00
PLACEHOLDER_NUMBER = "0" * 19


class IssuanceRefusal(StrEnum):
    """Why the desk issues no card; the code picks the sentence (``issuance.<code>`` in
    terminal/words.py), the fields named beside it fill it in."""

    NO_CAMPUS_PERSON = "no-campus-person"  # id_prefix
    CAMPUS_IDENTITY = "campus-identity"  # detail
    NO_CENTRE = "no-centre"
    LEASE_REFUSED = "lease-refused"  # refusal: the centre's
    CENTRE_UNREACHABLE = "centre-unreachable"  # detail
    NO_NUMBERS = "no-numbers"  # reason
    NO_NUMBERS_LEASE = "no-numbers-lease"  # reason, lease: why topping up failed
    CLAIM_REFUSED = "claim-refused"  # number, refusal: the centre's
    KIND_TYPE_RANGE = "kind-type-range"
    CARRY_OFFLINE = "carry-offline"  # number, balance
    CARRY_REFUSED = "carry-refused"  # number, refusal: the gateway's
    CARRY_UNKNOWN = "carry-unknown"  # number
    CARRY_MISMATCH = "carry-mismatch"  # number, book, as_of, proven
    NO_HOTLIST = "no-hotlist"  # number
    CARRY_NO_GATEWAY = "carry-no-gateway"  # number, amount
    CARRY_OPEN = "carry-open"  # number
    CARRY_BALANCE = "carry-balance"  # number, balance, amount
    PERSONALISED = "personalised"  # number
    OTHER_HOLDER = "other-holder"  # number
    ISSUED = "issued"  # number, state


class IssuanceError(YikatongError):
    """The desk cannot issue this card: ``code`` says why and ``fields`` what it names; the
    message is that sentence in English (the log's), the clerk's line uses the terminal's
    language (``terminal.words.issuance_words``)."""

    def __init__(self, code: IssuanceRefusal, **fields: object):
        self.code = code
        self.fields = fields
        shown = {name: _english(value) for name, value in fields.items()}
        super().__init__(sentence(f"issuance.{code}", "en", **shown))


def _english(value: object) -> str:
    """A field as the English sentence shows it: a refusal by its own reason."""
    reason = getattr(value, "reason", None)
    return reason if isinstance(reason, str) else str(value)


class CardAlreadyIssued(IssuanceError):
    """The card in the reader is operational already (and not an unfinished issuance)."""


@dataclass(frozen=True)
class DeskConfig:
    """What this desk writes besides the holder's data."""

    issuer_id: bytes
    terminal_id: bytes  # 6-byte terminal number used for carried-balance loads
    validity_years: int = 10
    province_code: bytes = bytes.fromhex("3100")
    city_code: bytes = bytes.fromhex("2900")
    interop_type: bytes = bytes.fromhex("0001")
    default_pin: str = "123456"
    key_index: int = 1
    load_key_index: int = 1
    max_balance: int = 100_000
    block_size: int = 100  # card numbers leased at a time
    low_water: int = 10  # lease the next block when fewer are left (online)

    def __post_init__(self) -> None:
        if len(self.issuer_id) != 8 or len(self.terminal_id) != 6:
            raise ValueError("issuer id must be 8 bytes and the terminal id 6")


@dataclass(frozen=True)
class CampusProfile:
    """A desk that issues campus cards (docs/campus.md): each card also gets the campus
    application, its identity file naming the person's campus number (学工号) that the
    back office assigned to the applicant's ID number."""

    persons: Mapping[str, str]  # ID number -> campus person number
    category: int = 1  # terminal.campus.card.CATEGORIES
    validity_years: int = 4

    def identity(self, holder: Applicant, start: date) -> bytes:
        person_no = self.persons.get(holder.id_number)
        if person_no is None:
            raise IssuanceError(IssuanceRefusal.NO_CAMPUS_PERSON, id_prefix=holder.id_number[:6])
        until = _years_later(start, self.validity_years)
        try:
            return Identity(person_no, self.category, start, until).to_bytes()
        except ValueError as exc:
            raise IssuanceError(IssuanceRefusal.CAMPUS_IDENTITY, detail=exc) from None


@dataclass(frozen=True)
class Issued:
    """A card that left the desk working: its record, what it reads, what was carried."""

    record: CardRecord
    snapshot: CardSnapshot
    resumed: bool = False  # finished an earlier, interrupted attempt on this card
    carried: LoadResult | None = None


class CardBook(Protocol):
    """The gateway's book of cards as a desk sees it: where the desk's changes go, and the
    one source of a lost card's carried balance (proven from verified records only)."""

    def push(self) -> Any:
        """Send the desk's changes since the gateway's cursor."""
        ...

    def last_known_balance(self, card_number: str) -> Mapping[str, Any] | None:
        """``{"balance_fen", "as_of"}`` after the card's newest verified transaction, or
        None; raises ``GatewayRefused`` with the reason when the gateway cannot vouch."""
        ...


class CardFeeder(Protocol):
    """Puts each batch row's blank card in the desk's reader and takes it away again."""

    def present(self, line: int) -> None: ...

    def refused(self, line: int) -> None: ...

    def issued(self, line: int, card_number: str) -> str | None:
        """Take the finished card; the file it lives in, for software cards."""
        ...


@dataclass(frozen=True)
class BatchRow:
    """One row of a batch: issued (with its card number) or refused (with the reason)."""

    row: int
    name: str
    status: str  # "ok" or "refused"
    card_number: str | None = None
    reason: str | None = None
    file: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"row": self.row, "name": self.name, "status": self.status}
        if not self.ok:
            doc["reason"] = self.reason
            return doc
        doc["card_number"] = self.card_number
        if self.file is not None:
            doc["file"] = self.file
        return doc


def row_applicant(row: Mapping[str, str | None]) -> Applicant:
    """The applicant of a batch row (name, id_number, card_kind; optional id_type,
    card_type); a ValueError names a cell that is not a number."""

    def number(key: str, default: int) -> int:
        text = (row.get(key) or "").strip()
        try:
            return int(text, 0) if text else default
        except ValueError:
            raise ValueError(f"{key} {text!r} is not a number") from None

    return Applicant(
        (row.get("name") or "").strip(),
        (row.get("id_number") or "").strip(),
        number("card_kind", 1),
        number("id_type", 0),
        number("card_type", 1),
    )


def _labelled(host: Any) -> Any:
    """The desk's gateway load host asking with the carry's label, which the gateway needs
    to take a desk's load (docs/security.md); any other host as it is."""
    if not isinstance(host, HttpLoadHost) or host.purpose == CARRY_PURPOSE:
        return host
    return HttpLoadHost(
        host.client,
        retries=host.retries,
        retry_delay=host.retry_delay,
        sleep=host.sleep,
        purpose=CARRY_PURPOSE,
    )


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class IssuanceDesk:
    def __init__(
        self,
        session: TerminalSession,
        host: PersoHost,
        registry: CardRegistry,
        config: DeskConfig,
        *,
        credits: CreditPath | None = None,
        hotlist: Hotlist | None = None,
        campus: CampusProfile | None = None,
        centre: CardCentre | None = None,
    ):
        self.session = session
        self.host = host
        self.registry = registry
        self.config = config
        self.credits = credits
        self.hotlist = hotlist
        self.campus = campus
        self.centre = centre

    @property
    def desk_id(self) -> str:
        """This desk's identity at the card centre: its terminal number."""
        return self.config.terminal_id.hex().upper()

    # -- numbers and the person check -----------------------------------------------------
    def lease(self, issuer_id: bytes, count: int | None = None) -> int:
        """Lease a block of card numbers from the card centre and keep it; how many unused
        numbers of the issuer the desk holds now."""
        if self.centre is None:
            raise IssuanceError(IssuanceRefusal.NO_CENTRE)
        try:
            block = self.centre.lease(issuer_id, self.desk_id, count or self.config.block_size)
        except CentreRefused as exc:
            raise IssuanceError(IssuanceRefusal.LEASE_REFUSED, refusal=exc) from None
        except CentreUnreachable as exc:
            raise IssuanceError(IssuanceRefusal.CENTRE_UNREACHABLE, detail=exc) from None
        self.registry.hold(block)
        return self.registry.numbers_left(issuer_id)

    def _begin(self, issuer_id: bytes, begin: Callable[[], CardRecord]) -> CardRecord:
        """Take a number (topping the blocks up first when online and running low), then
        claim it for the holder at the card centre; offline, the push reconciles later."""
        lease: IssuanceError | None = None
        if self.centre is not None and (
            self.registry.numbers_left(issuer_id) < self.config.low_water
        ):
            try:
                self.lease(issuer_id)
            except IssuanceError as exc:
                lease = exc
        try:
            record = begin()
        except NoNumbers as exc:
            if lease is not None:
                raise IssuanceError(
                    IssuanceRefusal.NO_NUMBERS_LEASE, reason=exc, lease=lease
                ) from None
            raise IssuanceError(IssuanceRefusal.NO_NUMBERS, reason=exc) from None
        if self.centre is None:
            return record
        try:
            self.centre.claim(record)
        except CentreUnreachable:
            return record
        except CentreRefused as exc:
            if record.state == CardState.PENDING:
                self.registry.abandon(record.card_number)
            raise IssuanceError(
                IssuanceRefusal.CLAIM_REFUSED, number=record.card_number, refusal=exc
            ) from None
        return record

    # -- new card -------------------------------------------------------------------------
    def issue(self, applicant: Applicant, *, pin: str | None = None) -> Issued:
        """Personalise the card in the reader for ``applicant`` (or finish doing so)."""
        applicant = self.check_applicant(applicant, pin)
        probe = self._probe()
        if probe.operational:
            return self._resume_operational(probe, applicant, pin)
        assert probe.chip_id is not None
        issuer_id, chip_id = self.config.issuer_id, probe.chip_id
        record = self._begin(
            issuer_id, lambda: self.registry.begin_issue(issuer_id, applicant, chip_id)
        )
        return self._personalise(record, probe, pin)

    def check_applicant(self, applicant: Applicant, pin: str | None = None) -> Applicant:
        """The applicant with a normalised ID number, or a typed error saying what is wrong
        (the same checks the card files impose, before any number is taken)."""
        if applicant.id_type == ID_TYPE_RESIDENT:
            id_number = check_id_number(applicant.id_number, today=self.session.now().date())
            applicant = Applicant(
                applicant.name.strip(),
                id_number,
                applicant.card_kind,
                applicant.id_type,
                applicant.card_type,
            )
        if not 0 <= applicant.card_kind <= 0xFF or not 0 <= applicant.card_type <= 0xFF:
            raise IssuanceError(IssuanceRefusal.KIND_TYPE_RANGE)
        self._plan_for(PLACEHOLDER_NUMBER, self.config.issuer_id, applicant, pin)
        return applicant

    def issue_batch(
        self,
        rows: Iterable[tuple[int, Mapping[str, str | None]]],
        feeder: CardFeeder,
        *,
        done: Callable[[BatchRow], None] | None = None,
    ) -> list[BatchRow]:
        """Issue one card per ``(line, row)``; a refused row (bad data, a duplicate, a
        card error) is reported with its reason and the batch goes on."""
        results: list[BatchRow] = []
        for line, row in rows:
            name = row.get("name") or ""
            pin = row.get("pin") or None
            try:
                applicant = self.check_applicant(row_applicant(row), pin)
                feeder.present(line)
                issued = self.issue(applicant, pin=pin)
            except (YikatongError, ValueError) as exc:
                result = BatchRow(line, name, "refused", reason=f"{type(exc).__name__}: {exc}")
                feeder.refused(line)
            else:
                number = issued.record.card_number
                result = BatchRow(line, name, "ok", number, file=feeder.issued(line, number))
            results.append(result)
            if done is not None:
                done(result)
        return results

    # -- replacement ------------------------------------------------------------------------
    def replace(
        self, old_card_number: str, *, pin: str | None = None, card_book: CardBook | None = None
    ) -> Issued:
        """Report ``old_card_number`` lost if it is not yet, hotlist it, and issue its
        replacement on the card in the reader with the old card's balance loaded; with a
        ``card_book`` that balance is the one the gateway proves."""
        if card_book is not None:
            self.carry_from(card_book, old_card_number)
        old = self.registry.get(old_card_number)
        if self.credits is None and (old.balance_fen or 0) > 0:
            raise IssuanceError(
                IssuanceRefusal.CARRY_OFFLINE, number=old_card_number, balance=old.balance_fen
            )
        if old.state == CardState.ACTIVE:
            old = self.registry.report_lost(old_card_number)
        if old.state == CardState.LOST and old.hotlist_version is None:
            old = self._hotlist(old)
        probe = self._probe()
        if probe.operational:
            return self._resume_operational(probe, old.holder, pin)
        assert probe.chip_id is not None
        chip_id = probe.chip_id
        record = self._begin(
            old.issuer_id, lambda: self.registry.begin_replacement(old_card_number, chip_id)
        )
        return self._personalise(record, probe, pin)

    def carry_from(self, card_book: CardBook, card_number: str) -> None:
        """Take the lost card's carried balance from the gateway, which vouches only for a
        balance it proved from verified records (docs/security.md); a refusal stops the
        replacement before any card work, with the gateway's reason, and nothing is carried.

        The gateway answers only for a card it knows is lost, so the loss is recorded and
        pushed first."""
        if self.registry.get(card_number).state == CardState.ACTIVE:
            self.registry.report_lost(card_number)
        card_book.push()
        try:
            found = card_book.last_known_balance(card_number)
        except GatewayRefused as exc:
            raise IssuanceError(
                IssuanceRefusal.CARRY_REFUSED, number=card_number, refusal=exc
            ) from None
        if found is None:
            raise IssuanceError(IssuanceRefusal.CARRY_UNKNOWN, number=card_number)
        proven = int(found["balance_fen"])
        as_of = datetime.fromisoformat(found["as_of"])
        book = self.registry.report_balance(card_number, proven, as_of)
        if book.balance_fen != proven:
            raise IssuanceError(
                IssuanceRefusal.CARRY_MISMATCH,
                number=card_number,
                book=book.balance_fen,
                as_of=book.balance_as_of,
                proven=proven,
            )

    def _hotlist(self, old: CardRecord) -> CardRecord:
        hotlist = self.hotlist
        if hotlist is None:
            raise IssuanceError(IssuanceRefusal.NO_HOTLIST, number=old.card_number)
        if old.serial not in hotlist:
            hotlist.apply(hotlist.version + 1, added=[old.serial])
        return self.registry.mark_hotlisted(old.card_number, hotlist.version)

    # -- the card ------------------------------------------------------------------------------
    def _probe(self) -> CardProbe:
        self.session.card_reader.connect()
        return self.session.run(perso.probe())

    def _plan_for(
        self, number: str, issuer_id: bytes, holder: Applicant, pin: str | None
    ) -> PersoPlan:
        cfg = self.config
        start = self.session.now().date()
        return PersoPlan(
            issuer_id=issuer_id,
            card_number=number,
            holder_name=holder.name,
            id_number=holder.id_number,
            id_type=holder.id_type,
            card_type=holder.card_type,
            card_kind=holder.card_kind,
            start_date=start,
            expiry_date=_years_later(start, cfg.validity_years),
            province_code=cfg.province_code,
            city_code=cfg.city_code,
            interop_type=cfg.interop_type,
            pin=pin if pin is not None else cfg.default_pin,
            key_index=cfg.key_index,
            load_key_index=cfg.load_key_index,
            max_balance=cfg.max_balance,
            campus_identity=self.campus.identity(holder, start) if self.campus else b"",
        )

    def _plan(self, record: CardRecord, pin: str | None) -> PersoPlan:
        return self._plan_for(record.card_number, record.issuer_id, record.holder, pin)

    def _personalise(self, record: CardRecord, probe: CardProbe, pin: str | None) -> Issued:
        assert probe.chip_id is not None
        plan = self._plan(record, pin)
        redo = probe.life_cycle == LifeCycle.INITIALISATION
        self.session.run(perso.personalise(plan, self.host, probe.chip_id, erase_first=redo))
        return self._finish(record, plan, resumed=redo)

    def _finish(self, record: CardRecord, plan: PersoPlan, *, resumed: bool) -> Issued:
        snap = self.session.run(perso.verify(plan))
        record = self.registry.activate(record.card_number)
        carried = None
        if record.carry_pending:
            carried = self._load_carry(record, snap)
            if carried is not None:
                snap = self.session.run(flows.read_card())
            record = self.registry.record_carry_loaded(record.card_number)
        return Issued(record, snap, resumed, carried)

    def _load_carry(self, record: CardRecord, snap: CardSnapshot) -> LoadResult | None:
        """Load the carried balance on the journaled credit path, unless an interrupted
        earlier load already did: that load is proved or voided first, with the card."""
        amount = record.carry_fen
        if amount == 0:
            return None
        credits = self.credits
        if credits is None:
            raise IssuanceError(
                IssuanceRefusal.CARRY_NO_GATEWAY, number=record.card_number, amount=amount
            )
        s, info = self.session, snap.info
        for retried in (False, True):
            credits.recover(info)
            if credits.journal.open_loads(info.serial):
                raise IssuanceError(IssuanceRefusal.CARRY_OPEN, number=record.card_number)
            balance = s.run(flows.read_balance())
            if balance == amount:
                return None
            if balance != 0:
                raise IssuanceError(
                    IssuanceRefusal.CARRY_BALANCE,
                    number=record.card_number,
                    balance=balance,
                    amount=amount,
                )
            try:
                credit = credits.load(
                    info,
                    amount,
                    self.config.terminal_id,
                    key_index=self.config.load_key_index,
                    purpose=CARRY_PURPOSE,
                    context={"card_number": record.card_number, "replaces": record.replaces},
                    host=_labelled(credits.host),
                )
            except LoadPending:
                if retried or not settled_any(settle_own_loads(s, credits.host, info)):
                    raise
                continue
            return credit.result
        raise AssertionError("unreachable")

    def _resume_operational(
        self, probe: CardProbe, applicant: Applicant, pin: str | None
    ) -> Issued:
        assert probe.info is not None
        info = probe.info
        record = self.registry.by_serial(info.serial)
        if record is None or record.issuer_id != info.issuer_id:
            raise CardAlreadyIssued(IssuanceRefusal.PERSONALISED, number=info.card_number)
        holder = record.holder
        if (holder.id_number, holder.card_kind) != (applicant.id_number, applicant.card_kind):
            raise CardAlreadyIssued(IssuanceRefusal.OTHER_HOLDER, number=record.card_number)
        if record.state == CardState.PENDING or (
            record.state == CardState.ACTIVE and record.carry_pending
        ):
            return self._finish(record, self._plan(record, pin), resumed=True)
        raise CardAlreadyIssued(
            IssuanceRefusal.ISSUED, number=record.card_number, state=record.state
        )
