"""Initiate application processing and read application data: GPO and the AFL records.

GPO answers in format 1 (``80``: AIP ‖ AFL) or format 2 (``77``: TLV objects, always
used by qPBOC). Records are read as the AFL says; the first *n* records of each AFL
entry are the ODA records whose bytes make up the static data to be authenticated
(SFI 1-10: the value of template 70; SFI 11-30: the whole record).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from terminal.apdu import iso, tlv
from terminal.apdu.errors import MalformedResponse, TlvError
from terminal.apdu.flow import Flow, card
from terminal.emv import commands as c
from terminal.emv.errors import MissingCardData
from terminal.emv.tags import Tag

# AIP (82) byte 1
AIP_SDA = 0x40
AIP_DDA = 0x20
AIP_CVM = 0x10
AIP_TRM = 0x08
AIP_ISSUER_AUTH = 0x04
AIP_CDA = 0x01


@dataclass(frozen=True, slots=True)
class AflEntry:
    sfi: int
    first: int
    last: int
    oda_records: int

    @property
    def numbers(self) -> range:
        return range(self.first, self.last + 1)


def parse_afl(afl: bytes) -> list[AflEntry]:
    """AFL entries; any entry that breaks the rules raises MalformedResponse."""
    if len(afl) % 4:
        raise MalformedResponse(f"AFL of {len(afl)} bytes is not a multiple of 4", raw=afl)
    entries = []
    for i in range(0, len(afl), 4):
        b0, first, last, oda = afl[i : i + 4]
        sfi = b0 >> 3
        if b0 & 0x07 or not 1 <= sfi <= 30:
            raise MalformedResponse(f"AFL entry {i // 4 + 1}: bad SFI byte {b0:02X}", raw=afl)
        if first == 0 or last < first:
            raise MalformedResponse(
                f"AFL entry {i // 4 + 1}: records {first}..{last} are not a range", raw=afl
            )
        if oda > last - first + 1:
            raise MalformedResponse(
                f"AFL entry {i // 4 + 1}: {oda} ODA records in a range of {last - first + 1}",
                raw=afl,
            )
        entries.append(AflEntry(sfi, first, last, oda))
    return entries


@dataclass(frozen=True, slots=True)
class GpoResponse:
    """AIP, AFL and (format 2) every other object the card put in the response."""

    aip: bytes
    afl: list[AflEntry]
    data: dict[int, bytes]
    template: int
    raw_afl: bytes = b""

    def aip_has(self, bit: int) -> bool:
        return bool(self.aip[0] & bit)


def parse_gpo_response(data: bytes) -> GpoResponse:
    """Decode a GPO response in format 1 or 2."""
    try:
        top = tlv.parse_one(data)
    except TlvError as exc:
        raise MalformedResponse(f"GPO response: {exc}", raw=data) from None
    if top.tag == Tag.RESPONSE_FORMAT_1:
        v = top.value
        if len(v) < 2 or (len(v) - 2) % 4:
            raise MalformedResponse(
                f"GPO format 1 of {len(v)} bytes is not AIP(2) + AFL(4n)", raw=data
            )
        afl = v[2:]
        return GpoResponse(v[:2], parse_afl(afl), {Tag.AIP: v[:2], Tag.AFL: afl}, top.tag, afl)
    if top.tag == Tag.RESPONSE_FORMAT_2:
        flat = tlv.flatten(top.children)
        aip = flat.get(Tag.AIP)
        if aip is None:
            raise MissingCardData("GPO format 2 response has no AIP (82)", raw=data)
        if len(aip) != 2:
            raise MalformedResponse(f"AIP of {len(aip)} bytes", raw=data)
        afl = flat.get(Tag.AFL, b"")
        return GpoResponse(aip, parse_afl(afl), flat, top.tag, afl)
    raise MalformedResponse(f"GPO response template {top.tag:X} is neither 80 nor 77", raw=data)


def get_processing_options(pdol_data: bytes) -> Flow[GpoResponse]:
    r = yield card(c.get_processing_options(pdol_data))
    return parse_gpo_response(r.data)


@dataclass
class RecordData:
    """The records read, their data objects, and the static data for ODA."""

    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    data: dict[int, bytes] = field(default_factory=dict)
    static_data: bytes = b""
    static_data_error: str = ""  # why the static data cannot be trusted, if it cannot


def read_records(afl: list[AflEntry]) -> Flow[RecordData]:
    """READ RECORD for every AFL record; collect data objects and the ODA static data."""
    out = RecordData()
    static = bytearray()
    for entry in afl:
        for index, number in enumerate(entry.numbers):
            r = yield card(iso.read_record(entry.sfi, number))
            raw = r.data
            out.records.append((entry.sfi, number, raw))
            try:
                record = tlv.parse_one(raw)
            except TlvError as exc:
                raise MalformedResponse(
                    f"record {number} of SFI {entry.sfi}: {exc}", raw=raw
                ) from None
            if record.tag != Tag.RECORD_TEMPLATE:
                if index < entry.oda_records and entry.sfi <= 10:
                    out.static_data_error = (
                        f"ODA record {number} of SFI {entry.sfi} is not template 70"
                    )
                if index < entry.oda_records and entry.sfi > 10:
                    static += raw
                continue
            for key, value in tlv.flatten(record.children).items():
                out.data.setdefault(key, value)
            if index < entry.oda_records:
                static += record.value if entry.sfi <= 10 else raw
    out.static_data = bytes(static)
    return out


def static_data_to_authenticate(
    records: RecordData, sda_tag_list: bytes | None, aip: bytes
) -> tuple[bytes, str]:
    """Static data (records, then AIP when 9F4A = 82) and the reason it is unusable, if any."""
    if records.static_data_error:
        return records.static_data, records.static_data_error
    data = records.static_data
    if sda_tag_list:
        if sda_tag_list != bytes((Tag.AIP,)):
            return data, f"SDA tag list {sda_tag_list.hex().upper()} names more than the AIP"
        data += aip
    return data, ""
