"""What the terminal knows about a card and a transaction, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime

from terminal.apdu.bcd import decode_time
from terminal.apdu.errors import MalformedResponse
from terminal.apdu.frozen import quick_init
from terminal.epurse.commands import AID_TUNION_EP, TxnType
from terminal.epurse.layouts import (
    CardholderInfo,
    ManagementInfo,
    PublicInfo,
    TransactionRecord,
    TripRecord,
)
from terminal.layout import parse, parse_present, plain_values

# 0x15 must hold at least issuer id, application type and version and serial (20 bytes)
PUBLIC_INFO_REQUIRED = ("issuer_id", "app_type", "app_version", "app_serial")


def _text(raw: bytes | None, encoding: str) -> str | None:
    if raw is None:
        return None
    return raw.rstrip(b"\x00\xff ").decode(encoding, errors="replace")


@quick_init
@dataclass(frozen=True, slots=True)
class CardInfo:
    """Public application data (file 0x15): who issued the card and its serial."""

    issuer_id: bytes
    app_type: int
    app_version: int
    app_serial: bytes
    start_date: date | None
    expiry_date: date | None
    issuer_fci: bytes | None  # None: the card's file is shorter (absent)

    @classmethod
    def parse(cls, raw: bytes) -> CardInfo:
        """The fields present; a file too short for the serial is malformed."""
        if len(raw) == _PUBLIC_INFO_SIZE:  # every tap's case: the whole file, one unpack
            try:
                return cls(*_public_info_values(raw))
            except Exception:
                pass  # parse_present below names what is wrong
        p = parse_present(PublicInfo, raw, "public application info (0x15)")
        if any(p[name] is None for name in PUBLIC_INFO_REQUIRED):
            raise MalformedResponse(
                f"public application info (0x15): {len(raw)} bytes, too short for the "
                "issuer id and serial (20 bytes)",
                raw=raw,
            )
        return cls(
            p["issuer_id"],
            p["app_type"],
            p["app_version"],
            p["app_serial"],
            p["start_date"],
            p["expiry_date"],
            p["issuer_fci"],
        )

    @property
    def serial(self) -> bytes:
        """The 8-byte application serial used as the card-level diversification factor."""
        return self.app_serial[2:]

    @property
    def serial_hex(self) -> str:
        return self.serial.hex().upper()

    @property
    def card_number(self) -> str:
        """The printed card number: the 10-byte BCD serial without its first nibble."""
        return self.app_serial.hex().upper()[1:]

    @property
    def issuer_hex(self) -> str:
        return self.issuer_id.hex().upper()

    def valid_on(self, day: date) -> bool:
        if self.start_date is not None and day < self.start_date:
            return False
        return not (self.expiry_date is not None and day > self.expiry_date)


_PUBLIC_INFO_SIZE = PublicInfo.sizeof()
_public_info_values = plain_values(PublicInfo)
if tuple(sc.name for sc in PublicInfo.subcons) != tuple(f.name for f in fields(CardInfo)):
    raise TypeError("CardInfo's fields must be PublicInfo's, in order")


@dataclass(frozen=True, slots=True)
class Cardholder:
    """File 0x16: holder identity (name GBK, ID number ASCII); None = not in the card's file."""

    card_type: int | None
    staff_flag: int | None
    name: str | None
    id_number: str | None
    id_type: int | None

    @classmethod
    def parse(cls, raw: bytes) -> Cardholder:
        h = parse_present(CardholderInfo, raw, "cardholder info (0x16)")
        return cls(
            h["card_type"],
            h["staff_flag"],
            _text(h["name"], "gbk"),
            _text(h["id_number"], "ascii"),
            h["id_type"],
        )


@dataclass(frozen=True, slots=True)
class Management:
    """File 0x17: country, province, city, interoperability type and card kind; a field the
    card's (shorter) file does not hold is None."""

    country_code: bytes | None
    province_code: bytes | None
    city_code: bytes | None
    interop_type: bytes | None
    card_kind: int | None

    @classmethod
    def parse(cls, raw: bytes) -> Management:
        m = parse_present(ManagementInfo, raw, "management info (0x17)")
        return cls(
            m["country_code"], m["province_code"], m["city_code"], m["interop_type"], m["card_kind"]
        )

    @property
    def interoperable(self) -> bool | None:
        return None if self.interop_type is None else self.interop_type != b"\x00\x00"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One 0x18 transaction record."""

    atc: int
    overdraft_limit: int
    amount: int
    txn_type: int
    terminal_id: bytes
    when: datetime | None

    @classmethod
    def parse(cls, raw: bytes) -> LogEntry | None:
        """The record, or None for an empty (all-zero) slot."""
        if not any(raw):
            return None
        r = parse(TransactionRecord, raw, "transaction record (0x18)")
        when = datetime.combine(r.date, decode_time(r.time)) if r.date else None
        return cls(r.atc, r.overdraft_limit, r.amount, r.txn_type, r.terminal_id, when)

    @property
    def type_name(self) -> str:
        try:
            return TxnType(self.txn_type).name
        except ValueError:
            return f"TYPE_{self.txn_type:02X}"

    @property
    def signed_amount(self) -> int:
        """Amount in fen, negative for debits."""
        try:
            debit = TxnType(self.txn_type).is_debit
        except ValueError:
            debit = False
        return -self.amount if debit else self.amount


@dataclass(frozen=True, slots=True)
class TripEntry:
    """One 0x1E process (trip) record; ``raw`` always, the fields when it is 48 bytes."""

    raw: bytes
    txn_type: int | None = None
    amount: int | None = None
    balance: int | None = None
    when: datetime | None = None
    line: bytes | None = None
    station: bytes | None = None

    @classmethod
    def parse(cls, raw: bytes) -> TripEntry | None:
        """The record, or None for an empty (all-zero or all-FF) slot."""
        if not any(raw) or all(b == 0xFF for b in raw):
            return None
        if len(raw) != TripRecord.sizeof():
            return cls(raw)
        t = parse(TripRecord, raw, "trip record (0x1E)")
        return cls(raw, t.txn_type, t.amount, t.balance, t.when, t.line, t.station)


@dataclass(frozen=True, slots=True)
class CappEntry:
    """One 0x1A composite-application record (27xx): its number, id and raw bytes."""

    number: int
    raw: bytes

    @property
    def record_id(self) -> str:
        return self.raw[:2].hex().upper()

    @property
    def used(self) -> bool:
        """Personalised records hold their 3-byte header and zeros until a transaction."""
        return any(self.raw[3:])


@dataclass(frozen=True, slots=True)
class CardSnapshot:
    """Everything ``read_card`` gathers, for display and for the kiosk.

    A full read (``ykt read``) keeps every item it could read: ``errors`` holds, per item
    (``balance``, ``holder``, ``management``, ``log``, ``trips``, ``capp``), why it was not
    read, and ``balance`` is None when the card did not give it."""

    info: CardInfo
    balance: int | None  # fen: the low 31 bits of the balance word; None = not read
    log: list[LogEntry] = field(default_factory=list)
    holder: Cardholder | None = None
    management: Management | None = None
    balance_flag: bool = False  # the word's top bit (meaning not public), shown as is
    errors: dict[str, str] = field(default_factory=dict)
    log_end: str = ""  # why the log stopped, when it was not the card's 6A83/6A82
    trips: list[TripEntry] | None = None  # 0x1E, None when not read
    capp: list[CappEntry] | None = None  # 0x1A, None when not read
    second_purse: int | None = None  # fen, GET BALANCE P1 01, when the card answers it
    second_purse_flag: bool = False
    aid: bytes = AID_TUNION_EP  # the application's own DF name (FCI 84) or the AID selected
    label: str = "T-Union EP"  # FCI 50, else the name of the AID it was found under
    found_by: str = ""  # the discovery rule that found it (PPSE, AID list, PBOC directory...)


@quick_init
@dataclass(frozen=True, slots=True)
class PendingPurchase:
    """A purchase after MAC1 and before DEBIT: what the journal must hold before sending DEBIT."""

    issuer_id: bytes
    card_serial: bytes
    terminal_id: bytes
    terminal_seq: int
    txn_type: int
    amount: int
    balance_before: int
    offline_atc: int
    key_version: int
    algorithm: int
    when: datetime
    mac1: bytes


@quick_init
@dataclass(frozen=True, slots=True)
class PurchaseResult:
    """A completed debit with its proof. ``mac2_verified`` False means the PSAM refused MAC2:
    the card did debit, so the transaction is kept but marked suspect."""

    pending: PendingPurchase
    tac: bytes
    mac2: bytes
    mac2_verified: bool

    @property
    def balance_after(self) -> int:
        return self.pending.balance_before - self.pending.amount


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """What the kiosk sends the host after INITIALIZE FOR LOAD."""

    issuer_id: bytes
    card_serial: bytes
    terminal_id: bytes
    amount: int
    balance_before: int
    online_atc: int
    key_version: int
    algorithm: int
    card_random: bytes
    mac1: bytes
    when: datetime


@dataclass(frozen=True, slots=True)
class LoadAuthorization:
    """The host's answer: MAC2 over the date and time it chose."""

    mac2: bytes
    when: datetime
    reference: str = ""


@dataclass(frozen=True, slots=True)
class LoadResult:
    request: LoadRequest
    authorization: LoadAuthorization
    tac: bytes

    @property
    def balance_after(self) -> int:
        return self.request.balance_before + self.request.amount


# How the balance shown to the holder is formed when the card also has a second purse
# (GET BALANCE P1 01). Sources disagree (docs/readers.md); the default does no arithmetic.
BALANCE_RULE_MAIN = "main"  # the main purse alone; the second purse is shown beside it
BALANCE_RULE_SUBTRACT = "main-minus-second"  # the second purse holds what is owed
BALANCE_RULES = (BALANCE_RULE_MAIN, BALANCE_RULE_SUBTRACT)


def displayed_balance(snap: CardSnapshot, rule: str = BALANCE_RULE_MAIN) -> int | None:
    """The balance to show under ``rule`` (fen, may be negative); None when a purse it
    needs was not read."""
    if rule not in BALANCE_RULES:
        raise ValueError(f"unknown balance rule {rule!r}")
    if snap.balance is None:
        return None
    if rule == BALANCE_RULE_MAIN or snap.second_purse is None:
        return snap.balance
    return snap.balance - snap.second_purse
