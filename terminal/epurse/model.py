"""What the terminal knows about a card and a transaction, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from terminal.apdu.bcd import decode_time
from terminal.epurse.commands import TxnType
from terminal.epurse.layouts import (
    CardholderInfo,
    ManagementInfo,
    PublicInfo,
    TransactionRecord,
)
from terminal.layout import parse


def _text(raw: bytes, encoding: str) -> str:
    return raw.rstrip(b"\x00\xff ").decode(encoding, errors="replace")


@dataclass(frozen=True, slots=True)
class CardInfo:
    """Public application data (file 0x15): who issued the card and its serial."""

    issuer_id: bytes
    app_type: int
    app_version: int
    app_serial: bytes
    start_date: date | None
    expiry_date: date | None
    issuer_fci: bytes

    @classmethod
    def parse(cls, raw: bytes) -> CardInfo:
        p = parse(PublicInfo, raw, "public application info (0x15)")
        return cls(
            p.issuer_id,
            p.app_type,
            p.app_version,
            p.app_serial,
            p.start_date,
            p.expiry_date,
            p.issuer_fci,
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


@dataclass(frozen=True, slots=True)
class Cardholder:
    """File 0x16: holder identity (name GBK, ID number ASCII)."""

    card_type: int
    staff_flag: int
    name: str
    id_number: str
    id_type: int

    @classmethod
    def parse(cls, raw: bytes) -> Cardholder:
        h = parse(CardholderInfo, raw, "cardholder info (0x16)")
        return cls(
            h.card_type, h.staff_flag, _text(h.name, "gbk"), _text(h.id_number, "ascii"), h.id_type
        )


@dataclass(frozen=True, slots=True)
class Management:
    """File 0x17: country, province, city, interoperability type and card kind."""

    country_code: bytes
    province_code: bytes
    city_code: bytes
    interop_type: bytes
    card_kind: int

    @classmethod
    def parse(cls, raw: bytes) -> Management:
        m = parse(ManagementInfo, raw, "management info (0x17)")
        return cls(m.country_code, m.province_code, m.city_code, m.interop_type, m.card_kind)

    @property
    def interoperable(self) -> bool:
        return self.interop_type != b"\x00\x00"


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
class CardSnapshot:
    """Everything ``read_card`` gathers, for display and for the kiosk."""

    info: CardInfo
    balance: int  # fen: the low 31 bits of the balance word
    log: list[LogEntry] = field(default_factory=list)
    holder: Cardholder | None = None
    management: Management | None = None
    balance_flag: bool = False  # the word's top bit (meaning not public), shown as is


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
