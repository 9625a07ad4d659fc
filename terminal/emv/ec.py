"""Electronic Cash (电子现金): balance and limits by GET DATA, the EC logs, and EC top-up.

Amounts are n12 BCD with two implied decimals, i.e. the digits are the amount in fen.
The transaction log lives in the SFI named by 9F4D (FCI), its records laid out by the
log format 9F4F (a DOL, read with GET DATA). Top-up is an online transaction whose
issuer answer carries a script: ``04 DA 9F 79 0A <new balance 6> <MAC 4>`` (PUT DATA
with secure messaging), sent to the card around the second GENERATE AC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from terminal.apdu import iso, tlv
from terminal.apdu.bcd import bcd_int, to_bcd
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu, MalformedResponse, RecordNotFound, TlvError
from terminal.apdu.flow import Flow, card
from terminal.emv import commands as c
from terminal.emv.dol import split_dol_data
from terminal.emv.errors import DolError
from terminal.emv.fci import LogEntry
from terminal.emv.tags import Tag

EC_BALANCE_P1P2 = Tag.EC_BALANCE
EC_LOAD_LENGTH = 10  # new balance 6 + MAC 4


def amount_n12(raw: bytes) -> int:
    """An n12 amount (6 BCD bytes) as fen; anything else is a MalformedResponse."""
    if len(raw) != 6:
        raise MalformedResponse(f"amount of {len(raw)} bytes is not n12", raw=raw)
    try:
        return bcd_int(raw)
    except ValueError:
        raise MalformedResponse(f"amount {raw.hex().upper()} is not BCD", raw=raw) from None


def get_data(tag: int) -> Flow[bytes | None]:
    """GET DATA for one tag; None when the card has no such object (any error SW)."""
    r = yield card(c.get_data(tag), check=False)
    if not r.ok:
        return None
    try:
        found = tlv.find(tlv.parse(r.data), tag)
    except TlvError as exc:
        raise MalformedResponse(f"GET DATA {tag:X}: {exc}", raw=r.data) from None
    if found is None:
        raise MalformedResponse(f"GET DATA {tag:X} answered without tag {tag:X}", raw=r.data)
    return found.value


@dataclass(frozen=True, slots=True)
class EcInfo:
    """EC balance and limits (fen); None where the card does not answer."""

    balance: int | None = None
    balance_limit: int | None = None
    single_limit: int | None = None
    reset_threshold: int | None = None
    currency: str | None = None

    @property
    def present(self) -> bool:
        return self.balance is not None


def read_ec_info() -> Flow[EcInfo]:
    values: dict[int, int | None] = {}
    for tag in (
        Tag.EC_BALANCE,
        Tag.EC_BALANCE_LIMIT,
        Tag.EC_SINGLE_LIMIT,
        Tag.EC_RESET_THRESHOLD,
    ):
        raw = yield from get_data(tag)
        values[tag] = amount_n12(raw) if raw is not None else None
    currency = yield from get_data(Tag.APP_CURRENCY)
    return EcInfo(
        values[Tag.EC_BALANCE],
        values[Tag.EC_BALANCE_LIMIT],
        values[Tag.EC_SINGLE_LIMIT],
        values[Tag.EC_RESET_THRESHOLD],
        currency.hex() if currency else None,
    )


@dataclass(frozen=True, slots=True)
class EcLogRecord:
    """One log record, cut by the log format; typed views of the usual fields."""

    values: dict[int, bytes]

    @property
    def amount(self) -> int | None:
        raw = self.values.get(Tag.AMOUNT)
        return amount_n12(raw) if raw is not None else None

    @property
    def txn_type(self) -> int | None:
        raw = self.values.get(Tag.TXN_TYPE)
        return raw[0] if raw else None

    @property
    def atc(self) -> int | None:
        raw = self.values.get(Tag.ATC)
        return int.from_bytes(raw, "big") if raw else None

    @property
    def merchant(self) -> str:
        raw = self.values.get(Tag.MERCHANT_NAME, b"")
        return raw.rstrip(b"\x00 ").decode("gbk", errors="replace")

    @property
    def when(self) -> datetime | None:
        d, t = self.values.get(Tag.DATE), self.values.get(Tag.TIME)
        if not d:
            return None
        try:
            return datetime.strptime(d.hex() + (t.hex() if t else "000000"), "%y%m%d%H%M%S")
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class EcLog:
    log_format: bytes
    records: list[EcLogRecord] = field(default_factory=list)


def read_log(entry: LogEntry, format_tag: int = Tag.LOG_FORMAT) -> Flow[EcLog | None]:
    """Read a log (newest first) by its entry (9F4D/DF4D) and format (9F4F/DF4F)."""
    log_format = yield from get_data(format_tag)
    if log_format is None:
        return None
    records: list[EcLogRecord] = []
    for number in range(1, entry.records + 1):
        try:
            r = yield card(iso.read_record(entry.sfi, number))
        except RecordNotFound:
            break
        if not any(r.data):
            continue
        try:
            records.append(EcLogRecord(split_dol_data(log_format, r.data)))
        except DolError as exc:
            raise MalformedResponse(f"log record {number}: {exc}", raw=r.data) from None
    return EcLog(log_format, records)


# -- top-up through an issuer script ------------------------------------------------------


def ec_load_mac_input(atc: bytes, arqc: bytes, new_balance: int) -> bytes:
    """What the issuer MACs for an EC load script (emv-reference.md §1.7) [U]."""
    header = bytes((0x04, c.EmvIns.PUT_DATA, 0x9F, 0x79, EC_LOAD_LENGTH))
    return header + atc + arqc + to_bcd(new_balance, 6)


def ec_load_command(new_balance: int, mac: bytes) -> CommandAPDU:
    """PUT DATA 9F79 (secure messaging): the EC load script command."""
    if len(mac) != 4:
        raise ValueError("script MAC is 4 bytes")
    return CommandAPDU(0x04, c.EmvIns.PUT_DATA, 0x9F, 0x79, to_bcd(new_balance, 6) + mac)


@dataclass(frozen=True, slots=True)
class IssuerScript:
    """One issuer script: run before (71) or after (72) the second GENERATE AC."""

    template: int
    script_id: bytes
    commands: list[CommandAPDU]


def parse_scripts(data: bytes) -> list[IssuerScript]:
    """Scripts from the issuer's answer (71/72 templates with 9F18 and 86 commands)."""
    try:
        objects = tlv.parse(data)
    except TlvError as exc:
        raise MalformedResponse(f"issuer scripts: {exc}", raw=data) from None
    scripts = []
    for t in objects:
        if t.tag not in (Tag.ISSUER_SCRIPT_BEFORE, Tag.ISSUER_SCRIPT_AFTER):
            raise MalformedResponse(f"issuer script template {t.tag:X} is not 71/72", raw=data)
        sid = t.find(Tag.ISSUER_SCRIPT_ID)
        try:
            commands = [
                CommandAPDU.decode(k.value)
                for k in t.children
                if k.tag == Tag.ISSUER_SCRIPT_COMMAND
            ]
        except MalformedApdu as exc:
            raise MalformedResponse(f"issuer script command: {exc}", raw=data) from None
        scripts.append(IssuerScript(t.tag, sid.value if sid else b"", commands))
    return scripts


@dataclass(frozen=True, slots=True)
class EcLoadRequest:
    """What the terminal sends the issuer host after the first GENERATE AC (ARQC)."""

    pan: str
    psn: str
    aid: bytes
    aip: bytes
    amount: int
    balance_before: int
    atc: bytes
    arqc: bytes
    cid: int
    cdol1_data: bytes
    iad: bytes
    terminal_data: dict[int, bytes]


@dataclass(frozen=True, slots=True)
class EcLoadAuthorization:
    """The host's answer: response code, ARPC (issuer authentication data) and scripts."""

    arc: bytes
    issuer_auth_data: bytes = b""
    scripts: bytes = b""

    @property
    def approved(self) -> bool:
        return self.arc in (b"00", b"10", b"11")


class EcLoadHost(Protocol):
    """The issuer side of an EC top-up (a real host, or the software issuer in tests)."""

    def authorize_ec_load(self, request: EcLoadRequest) -> EcLoadAuthorization: ...


@dataclass(frozen=True, slots=True)
class ScriptResult:
    script_id: bytes
    template: int
    sws: list[int]

    @property
    def ok(self) -> bool:
        return all(sw == 0x9000 for sw in self.sws)


@dataclass(frozen=True, slots=True)
class EcLoadResult:
    approved: bool
    balance_before: int
    balance_after: int | None
    arqc: bytes
    final_cryptogram: bytes
    final_cid: int
    scripts: list[ScriptResult]
    reason: str = ""
