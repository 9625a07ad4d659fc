"""The terminal configuration: one TOML file per device, parsed strictly.

Only the sections and keys of ``SCHEMA`` exist; anything else is refused as
``<file>:<line>: unknown key ...``, because a misspelt ``upload_intervall`` must not quietly
mean "the default". Relative paths are relative to the configuration file's directory, so
a device directory can be moved as a whole. docs/terminal-config.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from terminal.fares import DEMO_FARES, Mode
from terminal.qr.params import POLICY_NUMBERS, QrSettings
from terminal.readers.scanner import DATA, FRAMINGS, ScannerSettings
from terminal.roles.loop import PRIORITIES, TORN_WINDOW, TapPlacement
from terminal.roles.onecard_pos import PaymentRule
from terminal.text import FileError, TextError, hex_bytes
from terminal.tomlfile import TomlFile, read_toml

# a torn debit must reach the gateway well within a lost card's settling period (7 days by
# default) or the replacement's carried balance would be proven without it
MAX_TORN_WINDOW_HOURS = 72
VALIDATOR_ROLES = tuple(m.value for m in Mode)  # bus, metro, taxi, bike, coach, parking
CAMPUS_ROLES = ("door", "till", "library")  # docs/campus.md: cards proved by the campus key
ROLES = (*VALIDATOR_ROLES, "pos", "kiosk", "desk", *CAMPUS_ROLES)

SCHEMA: dict[str, Any] = {
    "terminal": {"role": None, "station": None, "line": None, "clock": None, "lang": None},
    "readers": {"card": None, "sam": None, "trace": None},
    "sim": {
        "terminal_id": None,
        "sam_state": None,
        "cards": None,
        "demo_cards": None,
        "taps": None,
        "seed": None,
        "tap_interval": None,
    },
    "journal": {"path": None, "check_interval": None, "torn_window_hours": None},
    "fares": {"file": None},
    "hotlist": {"path": None, "sync_interval": None},
    "gateway": {
        "url": None,
        "token_file": None,
        "upload_interval": None,
        "batch_size": None,
        "backoff_base": None,
        "backoff_cap": None,
        "timeout": None,
        "flush_timeout": None,
    },
    "status": {"port": None},
    "runtime": {"tap_cpu": None, "tap_priority": None},
    "ride": {"meter": None, "driver": None, "vehicle": None, "destination": None},
    "qr": {
        "root_keys": None,
        "issuers": None,
        "min_version": None,
        "future_skew": None,
        "max_validity": None,
        "debounce": None,
        "min_interval": None,
        "account_types": None,
        "scanner": None,
        "scanner_baud": None,
        "scanner_data": None,
        "scanner_framing": None,
        "images": None,
    },
    "pos": {
        "pay": None,
        "merchant": None,
        "card_wait": None,
        "terminal_data": None,
        "ca_keys": None,
        "trust_test_keys": None,
    },
    "kiosk": {
        "min_top_up_fen": None,
        "max_top_up_fen": None,
        "max_balance_fen": None,
        "pickup": None,
    },
    "door": {"rules": None, "point": None},
    "till": {"rules": None, "sales": None, "merchant": None},
    "library": {"rules": None},
    "desk": {
        "registry": None,
        "issuer_id": None,
        "keys": None,
        "transport_master_file": None,
        "cards": None,
        "replacement_wait_days": None,
    },
}


@dataclass
class TerminalConfig:
    """Everything the assembly needs to build one device (from a file or from CLI options)."""

    role: str
    journal: str
    card_reader: str = "sim"
    sam_reader: str = "sim"
    trace: str | None = None
    station: str = "0101"
    line: str = "0001"
    clock: datetime | None = None  # None: the system clock; else fixed (tests)
    terminal_id: str = "310000000201"  # the software PSAM's, when it is created
    sam_state: str | None = None  # software PSAM state file (default: next to the journal)
    cards: list[str] = field(default_factory=list)  # software card files (sim reader)
    demo_cards: int = 5  # fresh demo cards when no card files are given
    taps: int | None = None  # sim reader: taps to simulate, then stop (None: none)
    seed: int = 1
    tap_interval: float = 0.0  # sim reader: seconds between simulated taps
    journal_check: float = 10.0
    # hours a torn debit waits for its card before it is made suspect and uploaded
    torn_window_hours: int = TORN_WINDOW // timedelta(hours=1)
    meter: int | None = None  # taxi: the meter's amount (fen) each simulated tap pays
    driver: str = ""  # taxi driver id, in the record and the journal
    vehicle: str = ""  # taxi plate, bike number
    destination: str | None = None  # coach: where the rider is going (station code)
    fares: str = str(DEMO_FARES)
    hotlist: str | None = None
    hotlist_sync: float = 60.0
    gateway: str | None = None
    token: str | None = None
    token_file: str | None = None
    upload_interval: float = 30.0
    batch_size: int = 500
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    gateway_timeout: float = 10.0
    flush_timeout: float = 10.0
    status_port: int = 0  # 0: no status server
    pay: str = "ep"  # POS: ep, ec, auto (EC then EP) or a rule like "ep<=500,ec"
    merchant: str = "yikatong 一卡通"  # POS: the name printed on receipts
    card_wait: float = 15.0  # POS service: seconds a sale waits for a card in the field
    terminal_data: str | None = None  # POS: the EMV kernel's terminal data (JSON)
    ca_keys: str | None = None  # POS: CA public keys added to the built-in ones
    trust_test_keys: bool = False  # POS: accept test CA keys (always with the sim reader)
    lang: str | None = None  # operator lines: "zh" or "en" (None: from the locale)
    min_top_up: int = 100  # kiosk: the smallest top-up, fen
    max_top_up: int = 100_000  # kiosk: the largest top-up, fen
    max_balance: int = 100_000  # kiosk: the purse ceiling checked before loading, fen
    pickup: bool = False  # kiosk: also pay approved subsidies (POST /pickup)
    door_rules: str | None = None  # door: the door rules file (docs/campus.md)
    door_point: str | None = None  # door: which of the rules' doors this reader is
    till_rules: str | None = None  # till: the canteen rules file (meals, limits)
    till_sales: str | None = None  # till: its sales ledger (default: next to the journal)
    till_merchant: str = "canteen 食堂"  # till: the name printed on receipts
    library_rules: str | None = None  # library: the library rules file (loan limits)
    registry: str = "ykt-cards.db"  # desk: the desk's card registry (its book of cards)
    issuer_id: str = "02902900FFFFFFFF"  # desk: the issuer whose cards it issues (8 bytes)
    keys: str | None = None  # desk: issuer key sets (JSON) for personalisation; None: demo
    transport_master: str | None = None  # desk: the card vendor's transport master key file
    desk_cards: str = "cards"  # desk, sim reader: where new software card files are made
    replacement_wait: int = 0  # desk: days between a loss report and the replacement
    offline: bool = False  # desk (ykt issue, no --gateway): no card centre, nothing carried
    qr: QrSettings | None = None  # bus validator: ride codes accepted ([qr] section)
    qr_scanner: ScannerSettings | None = None  # [qr] scanner: a serial QR scanner module
    qr_images: str | None = None  # [qr] images: a folder a camera drops code snapshots in
    tap: TapPlacement = field(default_factory=TapPlacement)  # validators: [runtime]
    source: str = "command line"  # the file this came from, for messages

    @property
    def sam_state_path(self) -> str:
        """The software PSAM's state file: as configured, else ``<journal>.psam.json``."""
        if self.sam_state:
            return self.sam_state
        journal = Path(self.journal)
        return str(journal.with_name(journal.stem + ".psam.json"))

    @property
    def sales_path(self) -> str:
        """A till's sales ledger: as configured, else ``<journal>.sales.db``."""
        if self.till_sales:
            return self.till_sales
        journal = Path(self.journal)
        return str(journal.with_name(journal.stem + ".sales.db"))

    @property
    def torn_window(self) -> timedelta:
        """How long a torn debit waits for its card to prove or void it ([journal])."""
        return timedelta(hours=self.torn_window_hours)

    @property
    def is_validator(self) -> bool:
        return self.role in VALIDATOR_ROLES

    @property
    def takes_trips(self) -> bool:
        """A taxi without a fixed [ride] meter, a coach without a fixed destination: each
        trip's input arrives over ``POST /trip`` and pays once."""
        return (self.role == "taxi" and self.meter is None) or (
            self.role == "coach" and self.destination is None
        )


class _ConfigFile(TomlFile):
    what = "terminal configuration"

    def number(self, keys: tuple[str, ...], *, whole: bool = False, minimum: float = 0) -> Any:
        value = self.data[keys[0]][keys[1]]
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
            kind = "a whole number" if whole else "a number of seconds"
            raise self.error(keys, f"{'.'.join(keys)} must be {kind} >= {minimum}, got {value!r}")
        return value

    def file_path(self, keys: tuple[str, ...]) -> str:
        value = self.text_value(self.data[keys[0]][keys[1]], keys)
        if not value:
            raise self.error(keys, f"{'.'.join(keys)} must not be empty")
        return str(Path(self.path or ".").parent / Path(value).expanduser())


PATHS = (
    "journal",
    "sam_state",
    "trace",
    "fares",
    "hotlist",
    "token_file",
    "terminal_data",
    "ca_keys",
    "door_rules",
    "till_rules",
    "till_sales",
    "library_rules",
    "registry",
    "keys",
    "transport_master",
    "desk_cards",
)


def _set(f: _ConfigFile, config: TerminalConfig, section: str, key: str, attr: str) -> None:
    """Copy ``[section] key`` into ``config.attr``, checked by the type of its default."""
    table = f.data.get(section, {})
    if key not in table:
        return
    keys = (section, key)
    default = getattr(config, attr)
    if attr in PATHS:
        value: Any = f.file_path(keys)
    elif isinstance(default, bool):
        value = table[key]
        if not isinstance(value, bool):
            raise f.error(keys, f"{'.'.join(keys)} must be true or false, got {value!r}")
    elif (isinstance(default, int) and not isinstance(default, float)) or attr in (
        "taps",
        "meter",
    ):
        value = f.number(keys, whole=True, minimum=1 if attr == "batch_size" else 0)
    elif isinstance(default, float):
        value = float(f.number(keys))
    else:
        value = f.text_value(table[key], keys)
    setattr(config, attr, value)


FIELDS = (
    ("terminal", "station", "station"),
    ("terminal", "line", "line"),
    ("terminal", "lang", "lang"),
    ("readers", "card", "card_reader"),
    ("readers", "sam", "sam_reader"),
    ("readers", "trace", "trace"),
    ("sim", "terminal_id", "terminal_id"),
    ("sim", "sam_state", "sam_state"),
    ("sim", "demo_cards", "demo_cards"),
    ("sim", "taps", "taps"),
    ("sim", "seed", "seed"),
    ("sim", "tap_interval", "tap_interval"),
    ("journal", "check_interval", "journal_check"),
    ("fares", "file", "fares"),
    ("hotlist", "path", "hotlist"),
    ("hotlist", "sync_interval", "hotlist_sync"),
    ("gateway", "url", "gateway"),
    ("gateway", "token_file", "token_file"),
    ("gateway", "upload_interval", "upload_interval"),
    ("gateway", "batch_size", "batch_size"),
    ("gateway", "backoff_base", "backoff_base"),
    ("gateway", "backoff_cap", "backoff_cap"),
    ("gateway", "timeout", "gateway_timeout"),
    ("gateway", "flush_timeout", "flush_timeout"),
    ("status", "port", "status_port"),
    ("ride", "meter", "meter"),
    ("ride", "driver", "driver"),
    ("ride", "vehicle", "vehicle"),
    ("ride", "destination", "destination"),
    ("pos", "pay", "pay"),
    ("pos", "merchant", "merchant"),
    ("pos", "card_wait", "card_wait"),
    ("pos", "terminal_data", "terminal_data"),
    ("pos", "ca_keys", "ca_keys"),
    ("pos", "trust_test_keys", "trust_test_keys"),
    ("kiosk", "min_top_up_fen", "min_top_up"),
    ("kiosk", "max_top_up_fen", "max_top_up"),
    ("kiosk", "max_balance_fen", "max_balance"),
    ("kiosk", "pickup", "pickup"),
    ("door", "rules", "door_rules"),
    ("door", "point", "door_point"),
    ("till", "rules", "till_rules"),
    ("till", "sales", "till_sales"),
    ("till", "merchant", "till_merchant"),
    ("library", "rules", "library_rules"),
    ("desk", "registry", "registry"),
    ("desk", "issuer_id", "issuer_id"),
    ("desk", "keys", "keys"),
    ("desk", "transport_master_file", "transport_master"),
    ("desk", "cards", "desk_cards"),
    ("desk", "replacement_wait_days", "replacement_wait"),
)


def parse_config(data: dict[str, Any], *, path: str | Path, text: str) -> TerminalConfig:
    """The configuration in ``data`` (parsed from ``text``); FileError naming the line."""
    f = _ConfigFile(data, str(path), text)
    f.check_keys(data, SCHEMA, ())
    terminal = data.get("terminal", {})
    if "role" not in terminal:
        raise f.error(("terminal",), "[terminal] is missing 'role' (" + ", ".join(ROLES) + ")")
    role = f.choice(terminal["role"], ("terminal", "role"), ROLES)
    if "path" not in data.get("journal", {}):
        raise f.error(("journal",), "[journal] is missing 'path' (the journal database)")
    config = TerminalConfig(role=role, journal=f.file_path(("journal", "path")), source=str(path))
    for section, key, attr in FIELDS:
        _set(f, config, section, key, attr)
    cards = data.get("sim", {}).get("cards", [])
    if not isinstance(cards, list) or not all(isinstance(c, str) and c for c in cards):
        raise f.error(("sim", "cards"), "sim.cards must be a list of software card files")
    base = Path(path).parent
    config.cards = [str(base / c) for c in cards]
    codes = [(("terminal", "station"), 2), (("terminal", "line"), 2)]
    if config.destination is not None:
        codes.append((("ride", "destination"), 2))
    for keys, size in codes:
        try:
            hex_bytes(getattr(config, keys[1]), ".".join(keys), size=size)
        except TextError as exc:
            raise f.error(keys, str(exc)) from None
    for keys, size in ((("sim", "terminal_id"), 6), (("desk", "issuer_id"), 8)):
        try:
            hex_bytes(getattr(config, keys[1]), ".".join(keys), size=size)
        except TextError as exc:
            raise f.error(keys, str(exc)) from None
    try:
        PaymentRule.named(config.pay)
    except ValueError as exc:
        raise f.error(("pos", "pay"), f"pos.pay {config.pay!r}: {exc}") from None
    if config.lang is not None and config.lang not in ("zh", "en"):
        raise f.error(("terminal", "lang"), f"terminal.lang must be zh or en, got {config.lang!r}")
    if not 0 < config.min_top_up <= config.max_top_up or config.max_balance <= 0:
        raise f.error(
            ("kiosk",),
            "[kiosk] limits must be above 0 with min_top_up_fen <= max_top_up_fen",
        )
    if "torn_window_hours" in data.get("journal", {}):
        config.torn_window_hours = _torn_window_hours(f, data["journal"]["torn_window_hours"])
    if config.status_port > 65535:
        raise f.error(("status", "port"), "status.port must be 0 (off) or a TCP port 1..65535")
    clock = terminal.get("clock", "system")
    if isinstance(clock, datetime):  # a TOML date-time written without quotes
        config.clock = clock
    elif clock != "system":
        try:
            config.clock = datetime.fromisoformat(f.text_value(clock, ("terminal", "clock")))
        except ValueError:
            raise f.error(
                ("terminal", "clock"),
                f"terminal.clock must be 'system' or a date and time (2026-03-01T08:00:00), "
                f"got {clock!r}",
            ) from None
    if role == "door":
        for key in ("rules", "point"):
            if key not in data.get("door", {}):
                raise f.error(("door",), f"a door needs [door] {key} (docs/campus.md)")
    for section, what in (("till", "the canteen rules file"), ("library", "the loan limits file")):
        if role == section and "rules" not in data.get(section, {}):
            raise f.error(
                (section,), f"a {section} needs [{section}] rules ({what}, docs/campus.md)"
            )
    if role == "desk":
        if "registry" not in data.get("desk", {}):
            raise f.error(("desk",), "a desk needs [desk] registry (its book of cards)")
        if "cards" not in data.get("desk", {}):
            config.desk_cards = str(base / "cards")
    if "runtime" in data:
        config.tap = _tap_placement(f, data["runtime"], role)
    if "qr" in data:
        config.qr = _qr_settings(f, data["qr"], role)
        config.qr_scanner, config.qr_images = _qr_inputs(f, data["qr"])
    if config.sam_reader == "none":  # the assembly's NO_SAM: ykt issue's desk only
        raise f.error(
            ("readers", "sam"),
            "readers.sam = 'none' is only for ykt issue's desk: a device run from this file "
            "is numbered by its PSAM (give its reader, or sim)",
        )
    if config.gateway and not config.token_file:
        raise f.error(("gateway",), "[gateway] url needs token_file (the terminal's token)")
    return config


def _torn_window_hours(f: _ConfigFile, value: Any) -> int:
    """``[journal] torn_window_hours``: a whole number of hours in 1..MAX_TORN_WINDOW_HOURS."""
    if type(value) is not int or not 1 <= value <= MAX_TORN_WINDOW_HOURS:
        raise f.error(
            ("journal", "torn_window_hours"),
            f"journal.torn_window_hours must be a whole number of hours 1..{MAX_TORN_WINDOW_HOURS}"
            " (how long a torn debit waits for its card before it is reported suspect: 0 would"
            " report every torn tap at once, more would leave too little of a lost card's"
            f" settling period for the report to reach the gateway), got {value!r}",
        )
    return value


def _tap_placement(f: _ConfigFile, table: dict[str, Any], role: str) -> TapPlacement:
    """``[runtime]``: the tap loop's CPU and priority (validator roles: the tap path)."""
    if role not in VALIDATOR_ROLES:
        raise f.error(("runtime",), f"[runtime] is for validators (the tap loop), not a {role}")
    cpu = f.number(("runtime", "tap_cpu"), whole=True) if "tap_cpu" in table else None
    priority = "normal"
    if "tap_priority" in table:
        priority = f.choice(table["tap_priority"], ("runtime", "tap_priority"), PRIORITIES)
    return TapPlacement(cpu=cpu, priority=priority)


def _qr_settings(f: _ConfigFile, table: dict[str, Any], role: str) -> QrSettings:
    """``[qr]``: the root keys and issuer whitelist files (both needed), and policy values."""
    if role not in ("bus", "taxi"):
        raise f.error(
            ("qr",), f"[qr]: ride codes are taken on buses and in taxis, not by a {role} terminal"
        )
    for key in ("root_keys", "issuers"):
        if key not in table:
            raise f.error(("qr",), f"[qr] is missing '{key}' (the {key.replace('_', ' ')} file)")
    policy: dict[str, Any] = {}
    for key in POLICY_NUMBERS:
        if key in table:
            policy[key] = f.number(("qr", key), whole=True)
    if not 0x80 <= policy.get("min_version", 0x80) <= 0xFF:
        raise f.error(("qr", "min_version"), "qr.min_version must be 128..255 (0x80 interoperable)")
    if "account_types" in table:
        types = table["account_types"]
        if not isinstance(types, list) or not all(type(t) is int and 0 <= t <= 0xFF for t in types):
            raise f.error(("qr", "account_types"), "qr.account_types must be a list of 0..255")
        policy["account_types"] = frozenset(types)
    return QrSettings(f.file_path(("qr", "root_keys")), f.file_path(("qr", "issuers")), policy)


def _qr_inputs(f: _ConfigFile, table: dict[str, Any]) -> tuple[ScannerSettings | None, str | None]:
    """``[qr] scanner`` (and its baud, data, framing) and ``[qr] images``: where codes come
    from besides a direct ``scan``."""
    images = f.file_path(("qr", "images")) if "images" in table else None
    if "scanner" not in table:
        for key in ("scanner_baud", "scanner_data", "scanner_framing"):
            if key in table:
                raise f.error(("qr", key), f"qr.{key} needs qr.scanner (the scanner's port)")
        return None, images
    port = f.text_value(table["scanner"], ("qr", "scanner"))
    baud = (
        f.number(("qr", "scanner_baud"), whole=True, minimum=1) if "scanner_baud" in table else 9600
    )
    data = f.choice(table.get("scanner_data", "base64"), ("qr", "scanner_data"), DATA)
    framing = f.choice(table.get("scanner_framing", "line"), ("qr", "scanner_framing"), FRAMINGS)
    try:
        return ScannerSettings(port, baud, data, framing), images
    except ValueError as exc:
        raise f.error(("qr", "scanner_data"), f"qr.scanner_data: {exc}") from None


def load_config(path: str | Path) -> TerminalConfig:
    """The terminal configuration at ``path``; FileError (``<file>:<line>: <what>``)."""
    text, data = read_toml(path, "terminal configuration", lambda w, n: FileError(path, n, w))
    return parse_config(data, path=path, text=text)
