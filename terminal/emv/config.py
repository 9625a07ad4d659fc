"""Terminal data for the kernel: what the terminal is, what it supports, and its limits.

A ``TerminalConfig`` can be loaded from a JSON file (``--terminal-data FILE``), so the
same kernel runs a bus validator, a POS or a kiosk, and so a recorded exchange can be
reproduced byte for byte: pin ``date``, ``time`` and ``unpredictable_number`` in the file
(or pass ``--unpredictable-number``) and every command the kernel sends is fixed.

Values marked [U] in emv-reference.md are settings here rather than constants: the
fDDA format bytes accepted (05 or 95), what to do when fDDA fails, whether test CA keys
are trusted. See docs/emv.md for the file format.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from terminal.apdu.bcd import to_bcd
from terminal.emv.errors import TerminalConfigError
from terminal.emv.tags import Tag

KIND_EMV = "emv"
KIND_EPURSE = "epurse"
KIND_SSSE = "ssse"

# TTQ (9F66) bits, byte index then mask (emv-reference.md §1.6)
TTQ_QPBOC = (0, 0x20)
TTQ_CONTACT_PBOC = (0, 0x10)
TTQ_OFFLINE_ONLY = (0, 0x08)
TTQ_ONLINE_PIN = (0, 0x04)
TTQ_SIGNATURE = (0, 0x02)
TTQ_ODA_FOR_ONLINE = (0, 0x01)
TTQ_ONLINE_CRYPTOGRAM_REQUIRED = (1, 0x80)
TTQ_CVM_REQUIRED = (1, 0x40)

# Terminal capabilities (9F33) byte 3
CAP_SDA = (2, 0x80)
CAP_DDA = (2, 0x40)
CAP_CDA = (2, 0x08)

FDDA_FAILURE_DECLINE = "decline"
FDDA_FAILURE_ONLINE = "online"


def set_bit(value: bytes, bit: tuple[int, int], on: bool = True) -> bytes:
    out = bytearray(value)
    index, mask = bit
    if on:
        out[index] |= mask
    else:
        out[index] &= ~mask & 0xFF
    return bytes(out)


def has_bit(value: bytes, bit: tuple[int, int]) -> bool:
    index, mask = bit
    return len(value) > index and bool(value[index] & mask)


@dataclass(frozen=True, slots=True)
class SupportedAid:
    """One entry of the terminal's application list.

    ``partial``: the card's AID may be longer than this one (Application Selection
    Indicator). ``kind`` says which part of the terminal handles the application: the
    EMV kernel, the e-purse (JT/T 978) or the social security reader.
    """

    aid: bytes
    label: str = ""
    partial: bool = True
    kind: str = KIND_EMV

    def matches(self, card_aid: bytes) -> bool:
        if card_aid == self.aid:
            return True
        return self.partial and len(card_aid) > len(self.aid) and card_aid.startswith(self.aid)


AID_UNIONPAY_DEBIT = bytes.fromhex("A000000333010101")
AID_UNIONPAY_CREDIT = bytes.fromhex("A000000333010102")
AID_UNIONPAY_QUASI_CREDIT = bytes.fromhex("A000000333010103")
AID_UNIONPAY_EC = bytes.fromhex("A000000333010106")
AID_TUNION_EP = bytes.fromhex("A000000632010105")
DF_SSSE = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh." + GBK 社会保障
RID_UNIONPAY = bytes.fromhex("A000000333")

DEFAULT_AIDS: tuple[SupportedAid, ...] = (
    SupportedAid(AID_UNIONPAY_DEBIT, "UnionPay Debit"),
    SupportedAid(AID_UNIONPAY_CREDIT, "UnionPay Credit"),
    SupportedAid(AID_UNIONPAY_QUASI_CREDIT, "UnionPay Quasi-credit"),
    SupportedAid(AID_UNIONPAY_EC, "UnionPay Electronic Cash"),
    SupportedAid(AID_TUNION_EP, "T-Union EP", partial=False, kind=KIND_EPURSE),
    SupportedAid(DF_SSSE, "Social security (SSSE)", partial=False, kind=KIND_SSSE),
)


@dataclass(frozen=True)
class TerminalConfig:
    """Everything about the terminal the kernel needs (money in fen)."""

    terminal_type: int = 0x22
    capabilities: bytes = bytes.fromhex("E0F8C8")
    additional_capabilities: bytes = bytes.fromhex("F000F0A001")
    ttq: bytes = bytes.fromhex("37000000")
    country: str = "0156"
    currency: str = "0156"
    merchant_name: str = "YIKATONG TEST MERCHANT"
    ec_support: bool = True
    ec_terminal_limit: int = 100_000
    contactless_limit: int = 100_000
    floor_limit: int = 50_000
    cvm_limit: int = 30_000
    offline_only: bool = False
    cardholder_confirmation: bool = False
    supported_aids: tuple[SupportedAid, ...] = DEFAULT_AIDS
    fdda_formats: tuple[int, ...] = (0x05, 0x95)
    fdda_failure: str = FDDA_FAILURE_ONLINE
    trust_test_keys: bool = False
    ca_keys_file: str | None = None
    date: date | None = None
    time: time | None = None
    unpredictable_number: bytes | None = None
    extra_data: dict[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.ttq) != 4:
            raise TerminalConfigError("TTQ (9F66) must be 4 bytes")
        if len(self.capabilities) != 3:
            raise TerminalConfigError("terminal capabilities (9F33) must be 3 bytes")
        if self.fdda_failure not in (FDDA_FAILURE_DECLINE, FDDA_FAILURE_ONLINE):
            raise TerminalConfigError("fdda_failure must be 'decline' or 'online'")
        if self.unpredictable_number is not None and len(self.unpredictable_number) != 4:
            raise TerminalConfigError("the unpredictable number (9F37) is 4 bytes")
        for name in ("country", "currency"):
            value = getattr(self, name)
            if len(value) != 4 or not value.isdigit():
                raise TerminalConfigError(f"{name} must be a 4-digit ISO 3166/4217 code")

    @property
    def supports_sda(self) -> bool:
        return has_bit(self.capabilities, CAP_SDA)

    @property
    def supports_dda(self) -> bool:
        return has_bit(self.capabilities, CAP_DDA)

    def with_overrides(self, **changes: Any) -> TerminalConfig:
        return replace(self, **changes)

    @classmethod
    def from_file(cls, path: str | Path) -> TerminalConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TerminalConfigError(f"{path}: {exc}") from None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TerminalConfig:
        """Build from the JSON form (hex strings for bytes, ISO dates); unknown keys refused."""
        if not isinstance(data, dict):
            raise TerminalConfigError("terminal data must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise TerminalConfigError(f"unknown terminal data keys: {', '.join(sorted(unknown))}")
        kw: dict[str, Any] = {}
        try:
            for key, value in data.items():
                if key in (
                    "capabilities",
                    "additional_capabilities",
                    "ttq",
                    "unpredictable_number",
                ):
                    kw[key] = bytes.fromhex(value)
                elif key == "terminal_type":
                    kw[key] = int(value, 16) if isinstance(value, str) else int(value)
                elif key == "fdda_formats":
                    kw[key] = tuple(int(v, 16) if isinstance(v, str) else int(v) for v in value)
                elif key == "supported_aids":
                    kw[key] = tuple(
                        SupportedAid(
                            bytes.fromhex(a["aid"]),
                            a.get("label", ""),
                            bool(a.get("partial", True)),
                            a.get("kind", KIND_EMV),
                        )
                        for a in value
                    )
                elif key == "date":
                    kw[key] = date.fromisoformat(value)
                elif key == "time":
                    kw[key] = time.fromisoformat(value)
                elif key == "extra_data":
                    kw[key] = {int(t, 16): bytes.fromhex(v) for t, v in value.items()}
                else:
                    kw[key] = value
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise TerminalConfigError(f"terminal data key {key!r}: {exc}") from None
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction's own data (what changes from one card to the next)."""

    amount: int = 0
    amount_other: int = 0
    txn_type: int = 0x00  # 00 goods and services, 31 balance inquiry, 60 EC load ...
    when: datetime | None = None
    unpredictable_number: bytes | None = None
    online_required: bool = False


def transaction_data(
    config: TerminalConfig, txn: Transaction, *, now: datetime | None = None
) -> dict[int, bytes]:
    """The terminal-side DOL source: terminal data plus this transaction's data."""
    moment = txn.when or now or datetime.now()
    day = config.date or moment.date()
    clock = config.time or moment.time()
    un = txn.unpredictable_number or config.unpredictable_number or secrets.token_bytes(4)
    ttq = config.ttq
    if config.offline_only:
        ttq = set_bit(ttq, TTQ_OFFLINE_ONLY)
    if txn.online_required or txn.amount > config.floor_limit:
        ttq = set_bit(ttq, TTQ_ONLINE_CRYPTOGRAM_REQUIRED)
    if txn.amount > config.cvm_limit:
        ttq = set_bit(ttq, TTQ_CVM_REQUIRED)
    ec_ok = config.ec_support and txn.amount < config.ec_terminal_limit
    data: dict[int, bytes] = {
        Tag.AMOUNT: to_bcd(txn.amount, 6),
        Tag.AMOUNT_OTHER: to_bcd(txn.amount_other, 6),
        Tag.TERMINAL_COUNTRY: bytes.fromhex(config.country),
        Tag.CURRENCY: bytes.fromhex(config.currency),
        Tag.CURRENCY_EXPONENT: b"\x02",
        Tag.TVR: bytes(5),
        Tag.DATE: to_bcd(day.strftime("%y%m%d"), 3),
        Tag.TIME: to_bcd(clock.strftime("%H%M%S"), 3),
        Tag.TXN_TYPE: bytes((txn.txn_type,)),
        Tag.UNPREDICTABLE_NUMBER: un,
        Tag.TERMINAL_TYPE: bytes((config.terminal_type,)),
        Tag.TERMINAL_CAPABILITIES: config.capabilities,
        Tag.ADDITIONAL_CAPABILITIES: config.additional_capabilities,
        Tag.TTQ: ttq,
        Tag.EC_TERMINAL_SUPPORT: b"\x01" if ec_ok else b"\x00",
        Tag.EC_TERMINAL_LIMIT: to_bcd(config.ec_terminal_limit, 6),
        Tag.MERCHANT_NAME: config.merchant_name.encode("ascii", "replace")[:20].ljust(20),
        Tag.CVM_RESULTS: bytes.fromhex("3F0000"),
        Tag.SM_SUPPORT: b"\x00",
    }
    data.update(config.extra_data)
    return data


def transaction_date(config: TerminalConfig, txn: Transaction, now: datetime | None = None) -> date:
    """The date ODA checks certificate expiry against."""
    if config.date is not None:
        return config.date
    return (txn.when or now or datetime.now()).date()
