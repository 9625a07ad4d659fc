"""One assembly: a ``TerminalConfig`` becomes a working device.

Readers (and their trace), the PSAM, the session, the journal, the hotlist, the gateway
client with its uplink, and the role (a validator, a POS, a kiosk, an issuance desk, a
campus canteen till; a door and a library desk by ``assemble_door``/``assemble_library``)
are built here and nowhere else; ``ykt validator``, ``ykt pos``, ``ykt kiosk`` and ``ykt run``
differ only in where their configuration comes from. Software devices
(the sim PSAM and cards) come from a ``SimDevices`` the caller passes, because terminal
code never imports the simulators; a desk's personalisation key host and card registry
come the same way from a ``DeskDevices`` (both are gateway code, run in the desk's process).

Before the first card, the PSAM's next transaction sequence number is checked against the
journal: a PSAM whose next number was already journaled (reset, restored from an old copy,
or swapped) would make the first purchase collide with its own journal, so the device
refuses to start and says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from terminal.apdu.errors import YikatongError
from terminal.campus.canteen import Canteen, SalesLedger, load_canteen_rules
from terminal.campus.door import AccessList, Door, EventJournal, Presence
from terminal.campus.library import DeskNumbers, LibraryDesk, load_library_rules
from terminal.campus.rules import load_rules as load_door_rules
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig as EmvConfig
from terminal.epurse.host import LoadHost
from terminal.epurse.perso import PersoHost
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal, JournalError
from terminal.private_files import read_secret_file
from terminal.qr.checks import QrPolicy, RootKey
from terminal.qr.ride import QrGate
from terminal.readers.base import Reader
from terminal.readers.scanner import CodeSource
from terminal.readers.sim import SimCard, SimReader
from terminal.roles.debit import CreditPath
from terminal.roles.issuance import DeskConfig, IssuanceDesk
from terminal.roles.kiosk import Kiosk, KioskConfig
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.pickup import SubsidyHost
from terminal.roles.registry import CardRegistry
from terminal.roles.session import TerminalSession
from terminal.roles.transport import Ride, make_validator
from terminal.roles.validator import Validator, ValidatorConfig
from terminal.runtime.config import CAMPUS_ROLES, TerminalConfig
from terminal.text import hex_bytes
from terminal.uplink import GatewayClient, HotlistSync, Uplink, UploadWorker

NO_SAM = "none"  # readers.sam of a desk that personalises without a PSAM (ykt issue)


class StartRefused(YikatongError):
    """The device must not take cards; the message is the one-line reason."""


class SamBehindJournal(StartRefused):
    """The PSAM's next sequence number was already used in this terminal's journal."""


class SimDevices(Protocol):
    """Software devices for ``sim`` readers (the CLI provides them from simulators/)."""

    def psam(self, state_path: str, terminal_id: str) -> tuple[SimCard, int]:
        """The software PSAM kept in ``state_path`` (created there if absent) and its next
        terminal sequence number."""
        ...

    def cards(self, files: list[str], count: int, *, campus: bool = False) -> list[SimCard]:
        """The card files, or ``count`` fresh demo cards when there are none (``campus``:
        demo cards carrying the campus application, for a door)."""
        ...


class DeskDevices(Protocol):
    """What an issuance desk takes from outside terminal code (the CLI provides it): the
    personalisation key host and the desk's card registry - the gateway's host security
    module and registry, run in the desk's process, as ``ykt issue`` runs them (the gateway
    has no personalisation service over HTTP) - and blank software cards for a sim reader."""

    def perso_host(self, keys: str | None, transport_master: str | None) -> PersoHost:
        """The key host: issuer key sets from ``keys`` (None: demo keys), the card vendor's
        transport master from the file ``transport_master`` (None: the demo vendor's)."""
        ...

    def registry(self, path: str, replacement_wait_days: int) -> CardRegistry:
        """The desk's card registry kept at ``path``."""
        ...

    def blank_card(self, path: str, transport_master: str | None) -> SimCard:
        """The software card in ``path``: a fresh blank card made there if there is none."""
        ...

    def discard_if_untouched(self, path: str) -> None:
        """Remove the software card at ``path`` if nothing was written to it."""
        ...


def check_sam_sequence(journal: Journal, terminal_id: bytes, next_seq: int) -> None:
    """Refuse a PSAM that is behind its own journal (SamBehindJournal with the reason)."""
    last = journal.last_seq(terminal_id)
    if last is not None and next_seq <= last:
        raise SamBehindJournal(
            f"PSAM {terminal_id.hex().upper()} would number its next purchase {next_seq}, "
            f"but journal {journal.path} already holds seq {last} for it: the PSAM was reset, "
            f"restored from an older state or swapped; refusing to start (give it the PSAM "
            f"state that belongs to this journal, or a new journal)"
        )


@dataclass
class Parts:
    """Parts the caller already holds and shares between the devices it assembles (a
    station's one antenna and journal, a fixed clock, an open gateway client, the card
    centre's host in the same process), used instead of opening them from the
    configuration. What is given here stays the caller's to close, and a caller that gives
    its own gateway client uploads its journal itself (no background uplink is started)."""

    card_reader: Reader | None = None
    sam_reader: Reader | None = None  # its sequence number is the caller's to keep
    journal: Journal | None = None
    hotlist: Hotlist | None = None
    clock: Callable[[], datetime] | None = None
    client: GatewayClient | None = None
    load_host: LoadHost | None = None  # kiosk, desk: instead of the gateway's over HTTP
    subsidy_host: SubsidyHost | None = None  # kiosk: instead of the gateway's over HTTP
    qr: tuple[dict[int, RootKey], QrPolicy] | None = None  # bus, taxi: ride-code trust held
    # by the caller (root keys, policy with its issuers) instead of the [qr] files


@dataclass
class Terminal:
    """One assembled device; ``close()`` releases what was opened, in reverse."""

    config: TerminalConfig
    session: TerminalSession
    card_reader: Reader  # the reader itself (a sim reader takes cards by insert/remove)
    reader: Reader  # what the role talks through (the trace recorder when tracing)
    journal: Journal
    hotlist: Hotlist
    role: Any
    cards: list[SimCard] = field(default_factory=list)
    client: GatewayClient | None = None
    uploader: UploadWorker | None = None
    hotlist_sync: HotlistSync | None = None
    code_sources: list[CodeSource] = field(default_factory=list)  # QR scanners, image folder
    parts: Parts = field(default_factory=Parts)  # the caller's: not closed here
    stores: list[Any] = field(default_factory=list)  # the role's own files (a till's sales)

    def start_background(self) -> None:
        """Start uploading and hotlist syncing in threads (when there is a gateway)."""
        if self.hotlist_sync is not None:
            self.hotlist_sync.start()
        if self.uploader is not None:
            self.uploader.start()

    def close(self, flush_timeout: float | None = None) -> int:
        """Stop background work, send what waits (bounded), close files; the rows still
        waiting (-1: unknown, the journal failed)."""
        if self.hotlist_sync is not None:
            self.hotlist_sync.stop()
        timeout = self.config.flush_timeout if flush_timeout is None else flush_timeout
        try:
            if self.uploader is not None:
                waiting = self.uploader.close(timeout)
            else:
                waiting = self.journal.pending_upload()
        except JournalError:  # out of service: the journal's failure is the report
            waiting = -1
        if self.client is not None and self.client is not self.parts.client:
            self.client.close()
        for card in self.cards:
            save = getattr(card, "save", None)
            if save is not None:
                save()
        for source in self.code_sources:
            with contextlib.suppress(OSError, YikatongError):
                source.close()
        if self.hotlist is not self.parts.hotlist:
            self.hotlist.close()
        if self.journal is not self.parts.journal:
            with contextlib.suppress(YikatongError):
                self.journal.close()
        for store in self.stores:
            store.close()
        return waiting


class OneClient(Mapping[str, GatewayClient]):
    """Every terminal id in this device's journal uploads with the device's one token (the
    gateway checks that the token belongs to that terminal)."""

    def __init__(self, client: GatewayClient):
        self.client = client

    def __getitem__(self, terminal_id: str) -> GatewayClient:
        return self.client

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def open_uplink(
    config: TerminalConfig, journal: Journal, secret: str | None = None
) -> tuple[GatewayClient, Uplink]:
    """The gateway client and the uplink that sends ``journal`` to it, as configured
    (``secret``: the token when already read)."""
    if not config.gateway:
        raise StartRefused(f"{config.source}: no gateway URL configured")
    client = GatewayClient(config.gateway, secret or token(config), timeout=config.gateway_timeout)
    uplink = Uplink(
        journal,
        OneClient(client),
        batch_size=config.batch_size,
        max_age=timedelta(seconds=config.upload_interval),
        backoff_base=config.backoff_base,
        backoff_cap=config.backoff_cap,
    )
    return client, uplink


def token(config: TerminalConfig) -> str:
    """The gateway token: given directly (CLI), else the first line of the token file."""
    if config.token:
        return config.token
    if not config.token_file:
        raise StartRefused(f"{config.source}: a gateway URL needs a token (token_file)")
    return read_secret_file(config.token_file)


def _clock(config: TerminalConfig) -> Callable[[], datetime]:
    fixed = config.clock
    if fixed is None:
        return datetime.now
    return lambda: fixed


def kernel_config(
    terminal_data: str | None, *, trust_test_keys: bool, card_reader: str
) -> EmvConfig:
    """The EMV kernel's terminal data (from the file, else the defaults); test CA keys are
    trusted when asked, and always with the sim reader (software cards carry test keys)."""
    kernel = EmvConfig.from_file(terminal_data) if terminal_data else EmvConfig()
    if trust_test_keys or card_reader == "sim":
        kernel = kernel.with_overrides(trust_test_keys=True)
    return kernel


def ca_store(kernel: EmvConfig, extra: str | None) -> CaKeyStore:
    """The built-in CA public keys, plus the terminal data's key file and ``extra``."""
    store = CaKeyStore.builtin()
    for path in (kernel.ca_keys_file, extra):
        if path:
            store.update_from_file(path)
    return store


RoleMaker = Callable[[TerminalSession, Journal, Hotlist, GatewayClient | None], Any]


def _kiosk_maker(config: TerminalConfig, parts: Parts) -> RoleMaker:
    """A kiosk: top-ups through the gateway's load host on the one journaled credit path,
    subsidy pickup when ``[kiosk] pickup`` is on (or when the caller gives a subsidy host)."""
    if not config.gateway and parts.load_host is None:
        raise StartRefused(
            f"{config.source}: a kiosk loads cards through the gateway: set [gateway] url"
        )
    limits = KioskConfig(config.min_top_up, config.max_top_up, config.max_balance)

    def make(
        session: TerminalSession, journal: Journal, hotlist: Hotlist, client: GatewayClient | None
    ) -> Kiosk:
        from terminal.roles.kiosk_host import HttpSubsidyHost
        from terminal.roles.load_host import HttpLoadHost

        subsidies = parts.subsidy_host
        if subsidies is None and config.pickup:
            assert client is not None
            subsidies = HttpSubsidyHost(client)
        if parts.load_host is not None:
            host: LoadHost = parts.load_host
        else:
            assert client is not None
            host = HttpLoadHost(client)
        return Kiosk(
            session,
            host,
            session.sam.terminal_id,
            config=limits,
            subsidies=subsidies,
            journal=journal,
        )

    return make


def _desk_maker(config: TerminalConfig, devices: DeskDevices | None, parts: Parts) -> RoleMaker:
    """An issuance desk as ``ykt issue`` builds it: card numbers leased from the gateway
    (the card centre), carried balances through the one journaled credit path with the
    gateway's load host, its hotlist; the desk's number is its PSAM's terminal id (without a
    PSAM, ``[sim] terminal_id``). An ``offline`` desk has no card centre: it issues from the
    numbers its registry already holds and carries no balance."""
    online = bool(config.gateway) or parts.client is not None
    if config.offline and online:
        raise StartRefused(f"{config.source}: an offline desk is given no gateway")
    if not online and not config.offline:
        raise StartRefused(
            f"{config.source}: a desk leases card numbers and carries balances through the "
            "gateway: set [gateway] url"
        )
    if devices is None:
        raise StartRefused("a desk needs its personalisation key host and card registry")
    issuer_id = hex_bytes(config.issuer_id, "desk.issuer_id", size=8)
    terminal_id = hex_bytes(config.terminal_id, "sim.terminal_id", size=6)
    host = devices.perso_host(config.keys, config.transport_master)

    def make(
        session: TerminalSession, journal: Journal, hotlist: Hotlist, client: GatewayClient | None
    ) -> IssuanceDesk:
        from terminal.roles.load_host import HttpLoadHost
        from terminal.uplink.issuance import GatewayCentre

        assert devices is not None
        registry = devices.registry(config.registry, config.replacement_wait)
        number = session.sam.terminal_id if session.sam_reader is not None else terminal_id
        desk_config = DeskConfig(issuer_id, number)
        if client is None:  # offline
            return IssuanceDesk(session, host, registry, desk_config, hotlist=hotlist)
        loads: LoadHost = parts.load_host if parts.load_host is not None else HttpLoadHost(client)
        return IssuanceDesk(
            session,
            host,
            registry,
            desk_config,
            credits=CreditPath(session, journal, loads),
            hotlist=hotlist,
            centre=GatewayCentre(client),
        )

    return make


def _till_maker(config: TerminalConfig, stores: list[Any]) -> RoleMaker:
    """A campus canteen till: meals and limits from its rules file, the cash purse through
    the one debit path and the journal, the allowance purse at the gateway (refused while
    there is none), its sales ledger kept beside the journal."""
    assert config.till_rules, "a till configuration names its rules"
    rules = load_canteen_rules(config.till_rules)

    def make(
        session: TerminalSession, journal: Journal, hotlist: Hotlist, client: GatewayClient | None
    ) -> Canteen:
        ledger = SalesLedger(config.sales_path)
        stores.append(ledger)
        return Canteen(
            session, journal, rules, hotlist, ledger, client, merchant=config.till_merchant
        )

    return make


def _role_maker(
    config: TerminalConfig,
    desk: DeskDevices | None = None,
    parts: Parts | None = None,
    stores: list[Any] | None = None,
) -> RoleMaker:
    """What builds the role once the session, journal and gateway client are open; every
    value of the configuration is checked here, before a file is opened (``stores``: where
    a role's own files are listed for closing)."""
    parts = parts or Parts()
    if config.role == "till":
        return _till_maker(config, stores if stores is not None else [])
    if config.role == "library":
        raise StartRefused(
            f"{config.source}: a library desk keeps no payment journal: assemble_library"
        )
    if config.role == "kiosk":
        return _kiosk_maker(config, parts)
    if config.role == "desk":
        return _desk_maker(config, desk, parts)
    if config.is_validator:
        role_config = ValidatorConfig(
            mode=Mode(config.role),
            rules=load_rules(config.fares),
            station=hex_bytes(config.station, "station", size=2).hex().upper(),
            line=hex_bytes(config.line, "line", size=2),
        )
        to = config.destination
        to = hex_bytes(to, "destination", size=2).hex().upper() if to is not None else None
        ride = Ride(config.meter, config.driver, config.vehicle, to)
        qr = parts.qr if parts.qr is not None else config.qr.load() if config.qr else None

        def validator(
            session: TerminalSession, journal: Journal, hotlist: Hotlist, client: Any
        ) -> Validator:
            role = make_validator(
                session, journal, hotlist, role_config, ride, one_trip=config.takes_trips
            )
            if qr is not None:
                role.qr = QrGate(journal, qr[0], qr[1], session.sam.terminal_id)
            return role

        return validator
    if config.role == "pos":
        rule = PaymentRule.named(config.pay)
        kernel = kernel_config(
            config.terminal_data,
            trust_test_keys=config.trust_test_keys,
            card_reader=config.card_reader,
        )
        store = ca_store(kernel, config.ca_keys)
        return lambda session, journal, hotlist, client: OneCardPos(
            session, journal, kernel, store, rule, hotlist=hotlist
        )
    raise StartRefused(
        f"{config.source}: role {config.role!r} cannot be run as a service yet "
        f"(use its own command: ykt {config.role})"
    )


def open_readers(
    config: TerminalConfig, sim: SimDevices | None, parts: Parts | None = None
) -> tuple[list[SimCard], Reader, Reader, Reader | None, int | None]:
    """The software cards, the card reader, what the role talks through (its trace when
    tracing), the SAM reader (None: a desk without a PSAM) and a software PSAM's next
    sequence number (None: hardware, or a SAM reader the caller gave in ``parts``)."""
    parts = parts or Parts()
    if config.sam_reader == NO_SAM and config.role != "desk":
        raise StartRefused(
            f"{config.source}: a {config.role} works with its PSAM: readers.sam cannot be "
            f"{NO_SAM!r} (only an issuance desk personalises without one)"
        )
    sim_reader = config.card_reader == "sim" and parts.card_reader is None
    sim_sam = config.sam_reader == "sim" and parts.sam_reader is None
    if (sim_reader or sim_sam) and sim is None:
        raise StartRefused("sim readers need software devices")
    cards = (  # a desk's sim reader takes a fresh blank card for each request instead
        sim.cards(config.cards, config.demo_cards, campus=config.role in CAMPUS_ROLES)
        if sim_reader and sim and config.role != "desk"
        else []
    )
    if parts.card_reader is not None:
        card_reader: Reader = parts.card_reader
    elif sim_reader:
        card_reader = SimReader(name="antenna")
    else:
        from terminal.readers.spec import open_reader

        card_reader = open_reader(config.card_reader)
    reader = card_reader
    if config.trace:
        from terminal.readers.trace import TraceWriter
        from terminal.readers.tracing import TracingReader

        reader = TracingReader(card_reader, TraceWriter.open(config.trace))
    next_seq: int | None = None
    sam_reader: Reader | None
    if parts.sam_reader is not None:
        sam_reader = parts.sam_reader
    elif config.sam_reader == NO_SAM:
        sam_reader = None
    elif sim_sam:
        assert sim is not None
        psam, next_seq = sim.psam(config.sam_state_path, config.terminal_id)
        sam_reader = SimReader(psam, name="sam")
    else:
        from terminal.readers.spec import open_reader

        sam_reader = open_reader(config.sam_reader)
    return cards, card_reader, reader, sam_reader, next_seq


def assemble(
    config: TerminalConfig,
    sim: SimDevices | None = None,
    desk: DeskDevices | None = None,
    parts: Parts | None = None,
) -> Terminal:
    """Build the device ``config`` describes, from ``parts`` where the caller gives them;
    StartRefused/FileError say why it cannot run."""
    parts = parts or Parts()
    stores: list[Any] = []
    make_role = _role_maker(config, desk, parts, stores)
    own_client = bool(config.gateway) and parts.client is None
    secret = token(config) if own_client else None  # a bad token file stops us here
    cards, card_reader, reader, sam_reader, next_seq = open_readers(config, sim, parts)
    journal = (
        parts.journal
        if parts.journal is not None
        else Journal(config.journal, autocheckpoint=False)
    )
    client: GatewayClient | None = parts.client
    uplink: Uplink | None = None
    try:
        session = TerminalSession(reader, sam_reader, clock=parts.clock or _clock(config))
        if sam_reader is not None:
            info = session.start()
            if next_seq is not None:
                check_sam_sequence(journal, info.terminal_id, next_seq)
        hotlist = parts.hotlist if parts.hotlist is not None else Hotlist(config.hotlist)
        if own_client:
            client, uplink = open_uplink(config, journal, secret)
        role = make_role(session, journal, hotlist, client)
    except BaseException:
        if client is not None and client is not parts.client:
            client.close()
        if journal is not parts.journal:
            journal.close()
        raise
    terminal = Terminal(
        config, session, card_reader, reader, journal, hotlist, role, cards, parts=parts
    )
    terminal.stores = stores
    try:
        terminal.code_sources = open_code_sources(config)
    except BaseException:
        terminal.close(flush_timeout=0)
        raise
    if client is not None:
        terminal.client = client
    if client is not None and uplink is not None:
        terminal.uploader = UploadWorker(uplink)
        terminal.hotlist_sync = HotlistSync(client, hotlist, config.hotlist_sync)
        gate = getattr(role, "qr", None)
        if gate is not None and config.qr is not None:
            from terminal.uplink.qr_params import QrParamSync

            terminal.hotlist_sync.also.append(QrParamSync(client, gate, config.qr).sync_once)
    return terminal


def open_code_sources(config: TerminalConfig) -> list[CodeSource]:
    """The ride-code inputs ``[qr]`` names: a serial scanner, an image folder; one that
    cannot be opened refuses the start with the reason."""
    sources: list[CodeSource] = []
    try:
        if config.qr_scanner is not None:
            from terminal.readers.scanner import SerialScanner

            sources.append(SerialScanner(config.qr_scanner))
        if config.qr_images is not None:
            from terminal.readers.images import ImageFolder

            sources.append(ImageFolder(config.qr_images))
    except (OSError, YikatongError) as exc:
        for source in sources:
            source.close()
        raise StartRefused(f"{config.source}: ride-code input: {exc}") from None
    return sources


@dataclass
class DoorDevice:
    """One assembled door reader: the door controller, the reader point it serves, and the
    gateway client that syncs its lists and takes its events (None: offline)."""

    config: TerminalConfig
    door: Door
    point: str
    card_reader: Reader
    reader: Reader
    cards: list[SimCard] = field(default_factory=list)
    client: GatewayClient | None = None
    parts: Parts = field(default_factory=Parts)  # the caller's: not closed here

    def close(self) -> None:
        if self.client is not None and self.client is not self.parts.client:
            self.client.close()
        self.door.close()


def assemble_door(
    config: TerminalConfig, sim: SimDevices | None = None, parts: Parts | None = None
) -> DoorDevice:
    """Build the door reader ``config`` describes: rules, its point, the local store at
    ``[journal] path`` (events, allow list, anti-passback), the hotlist, the gateway client.
    Of ``parts`` a door takes the readers, the clock and the gateway client (its lists and
    events stay in its own store)."""
    assert config.door_rules and config.door_point, "a door configuration names rules and point"
    parts = parts or Parts()
    rules = load_door_rules(config.door_rules)
    if config.door_point not in rules.doors:
        raise StartRefused(
            f"{config.source}: door point {config.door_point!r} is not a door of "
            f"{config.door_rules} ({', '.join(sorted(rules.doors))})"
        )
    cards, card_reader, reader, session, client = _campus_session(config, sim, parts)
    door = Door(
        session,
        rules,
        AccessList(config.journal),
        Hotlist(config.hotlist),
        EventJournal(config.journal),
        Presence(config.journal),
    )
    return DoorDevice(config, door, config.door_point, card_reader, reader, cards, client, parts)


def _campus_session(
    config: TerminalConfig, sim: SimDevices | None, parts: Parts
) -> tuple[list[SimCard], Reader, Reader, TerminalSession, GatewayClient | None]:
    """A campus terminal's cards, readers, started session (its SAM proves the cards) and
    gateway client (the caller's, else one opened from the configuration, else None)."""
    own_client = bool(config.gateway) and parts.client is None
    secret = token(config) if own_client else None
    cards, card_reader, reader, sam_reader, _ = open_readers(config, sim, parts)
    session = TerminalSession(reader, sam_reader, clock=parts.clock or _clock(config))
    session.start()
    client = parts.client
    if own_client:
        assert config.gateway is not None and secret is not None
        client = GatewayClient(config.gateway, secret, timeout=config.gateway_timeout)
    return cards, card_reader, reader, session, client


@dataclass
class LibraryDevice:
    """One assembled library circulation desk and its gateway client (the caller's or its
    own)."""

    config: TerminalConfig
    desk: LibraryDesk
    card_reader: Reader
    reader: Reader
    cards: list[SimCard] = field(default_factory=list)
    parts: Parts = field(default_factory=Parts)  # the caller's: not closed here

    def close(self) -> None:
        if self.desk.client is not self.parts.client:
            self.desk.client.close()
        self.desk.access.close()
        self.desk.numbers.close()
        if self.desk.hotlist is not self.parts.hotlist:
            self.desk.hotlist.close()


def assemble_library(
    config: TerminalConfig, sim: SimDevices | None = None, parts: Parts | None = None
) -> LibraryDevice:
    """Build the library desk ``config`` describes: loan limits from its rules file, the
    allow list and its loan numbers in the store at ``[journal] path``, the hotlist, and
    the gateway that books every loan (a library desk lends nothing offline). Of ``parts``
    it takes the readers, the clock, the hotlist and the gateway client."""
    assert config.library_rules, "a library configuration names its rules"
    parts = parts or Parts()
    if not config.gateway and parts.client is None:
        raise StartRefused(
            f"{config.source}: a library desk books each loan at the gateway: set [gateway] url"
        )
    rules = load_library_rules(config.library_rules)
    cards, card_reader, reader, session, client = _campus_session(config, sim, parts)
    assert client is not None
    hotlist = parts.hotlist if parts.hotlist is not None else Hotlist(config.hotlist)
    desk = LibraryDesk(
        session, rules, AccessList(config.journal), hotlist, DeskNumbers(config.journal), client
    )
    return LibraryDevice(config, desk, card_reader, reader, cards, parts)
