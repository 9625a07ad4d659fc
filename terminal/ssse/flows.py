"""Read the social security application: select the SSSE, then EF05 and EF06 records.

EF06 (holder information) may need the card PIN; without one the report says so
instead of failing the whole read.
"""

from __future__ import annotations

from dataclasses import dataclass

from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import SecurityStatusNotSatisfied
from terminal.apdu.flow import Flow, card
from terminal.epurse.commands import Ins
from terminal.ssse.records import (
    BASIC_INFO_RECORDS,
    DF_SSSE,
    FID_BASIC_INFO,
    FID_HOLDER_INFO,
    HOLDER_INFO_RECORDS,
    BasicInfo,
    HolderInfo,
    RecordSpec,
    decode_record,
)


def select_ssse() -> CommandAPDU:
    return CommandAPDU(0x00, Ins.SELECT, 0x04, 0x00, DF_SSSE)


def select_ef(fid: int) -> CommandAPDU:
    return CommandAPDU(0x00, Ins.SELECT, 0x02, 0x00, fid.to_bytes(2, "big"))


def read_record(number: int) -> CommandAPDU:
    """READ RECORD of the current EF (P2 = 04)."""
    return CommandAPDU(0x00, Ins.READ_RECORD, number, 0x04, le=256)


def verify_pin(pin: str) -> CommandAPDU:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("PIN must be 4 to 12 digits")
    return CommandAPDU(
        0x00, Ins.VERIFY, 0x00, 0x00, bytes.fromhex(pin if len(pin) % 2 == 0 else pin + "F")
    )


@dataclass(frozen=True, slots=True)
class SsseReport:
    basic: BasicInfo
    holder: HolderInfo | None
    holder_note: str = ""


def _read_file(specs: tuple[RecordSpec, ...]) -> Flow[dict[int, bytes]]:
    values: dict[int, bytes] = {}
    for spec in specs:
        r = yield card(read_record(spec.number))
        values[spec.tag] = decode_record(spec, r.data)
    return values


def read_ssse(pin: str | None = None) -> Flow[SsseReport]:
    """Select the SSSE and read the basic and (if allowed) holder information."""
    yield card(select_ssse())
    yield card(select_ef(FID_BASIC_INFO))
    basic = BasicInfo.from_values((yield from _read_file(BASIC_INFO_RECORDS)))
    yield card(select_ef(FID_HOLDER_INFO))
    try:
        values = yield from _read_file(HOLDER_INFO_RECORDS)
    except SecurityStatusNotSatisfied:
        if pin is None:
            return SsseReport(basic, None, "holder information needs the card PIN")
        yield card(verify_pin(pin))
        values = yield from _read_file(HOLDER_INFO_RECORDS)
    return SsseReport(basic, HolderInfo.from_values(values))
