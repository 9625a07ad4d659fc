"""Read the social security application: select the SSSE, then EF05 and EF06 records.

EF06 (holder information) may need the card PIN; without one the report says so
instead of failing the whole read.
"""

from __future__ import annotations

from dataclasses import dataclass

from terminal.apdu.errors import SecurityStatusNotSatisfied
from terminal.apdu.flow import Flow, card
from terminal.apdu.iso import SelectBy, read_record, select_aid, select_fid, verify_pin
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


@dataclass(frozen=True, slots=True)
class SsseReport:
    basic: BasicInfo
    holder: HolderInfo | None
    holder_note: str = ""


def _read_file(specs: tuple[RecordSpec, ...]) -> Flow[dict[int, bytes]]:
    values: dict[int, bytes] = {}
    for spec in specs:
        r = yield card(read_record(0, spec.number))  # the current EF
        values[spec.tag] = decode_record(spec, r.data)
    return values


def read_ssse(pin: str | None = None) -> Flow[SsseReport]:
    """Select the SSSE and read the basic and (if allowed) holder information."""
    yield card(select_aid(DF_SSSE, le=None))
    yield card(select_fid(FID_BASIC_INFO, by=SelectBy.CHILD_EF))
    basic = BasicInfo.from_values((yield from _read_file(BASIC_INFO_RECORDS)))
    yield card(select_fid(FID_HOLDER_INFO, by=SelectBy.CHILD_EF))
    try:
        values = yield from _read_file(HOLDER_INFO_RECORDS)
    except SecurityStatusNotSatisfied:
        if pin is None:
            return SsseReport(basic, None, "holder information needs the card PIN")
        yield card(verify_pin(pin))
        values = yield from _read_file(HOLDER_INFO_RECORDS)
    return SsseReport(basic, HolderInfo.from_values(values))
