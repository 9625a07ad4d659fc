"""SSSE files and records: EF05 (card basic information) and EF06 (holder information).

Each record holds one data element as ``tag(1) ‖ length(1) ‖ value``. Record numbers,
tags and lengths follow what public reader code uses (emv-reference.md §1.3 and
docs/emv.md); the exact value encodings of card type, sex and nation are not in a public
standard text we have, so they are shown raw where unsure [U].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from terminal.apdu.bcd import decode_date
from terminal.apdu.errors import MalformedResponse
from terminal.apdu.tlv import Tlv

DF_SSSE = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
FID_BASIC_INFO = 0xEF05
FID_HOLDER_INFO = 0xEF06


@dataclass(frozen=True, slots=True)
class RecordSpec:
    number: int
    tag: int
    length: int
    name: str


BASIC_INFO_RECORDS = (
    RecordSpec(1, 0x01, 16, "card identification code"),
    RecordSpec(2, 0x02, 1, "card type"),
    RecordSpec(3, 0x03, 4, "specification version"),
    RecordSpec(4, 0x04, 12, "initialising organisation"),
    RecordSpec(5, 0x05, 4, "issue date"),
    RecordSpec(6, 0x06, 4, "expiry date"),
    RecordSpec(7, 0x07, 9, "card number"),
)

HOLDER_INFO_RECORDS = (
    RecordSpec(1, 0x08, 18, "social security number"),
    RecordSpec(2, 0x09, 30, "name"),
    RecordSpec(3, 0x0A, 1, "sex"),
    RecordSpec(4, 0x0B, 1, "nation"),
    RecordSpec(5, 0x0C, 3, "birthplace"),
    RecordSpec(6, 0x0D, 4, "birth date"),
)


def encode_record(spec: RecordSpec, value: bytes) -> bytes:
    """A record as the card stores it (value right-padded with 00 to its length)."""
    if len(value) > spec.length:
        raise ValueError(f"{spec.name}: {len(value)} bytes exceed {spec.length}")
    return Tlv(spec.tag, value.ljust(spec.length, b"\x00")).encode()


def decode_record(spec: RecordSpec, raw: bytes) -> bytes:
    """The value of one record; a wrong tag or a length overrun is a MalformedResponse."""
    if len(raw) < 2 or raw[0] != spec.tag or raw[1] > len(raw) - 2:
        raise MalformedResponse(f"SSSE {spec.name} record malformed: {raw.hex().upper()}", raw=raw)
    return raw[2 : 2 + raw[1]]


def _text(raw: bytes, encoding: str) -> str:
    return raw.rstrip(b"\x00\xff ").decode(encoding, errors="replace")


def _date(raw: bytes) -> date | None:
    try:
        return decode_date(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class BasicInfo:
    card_identifier: bytes
    card_type: bytes
    spec_version: str
    issuer_org: bytes
    issue_date: date | None
    expiry_date: date | None
    card_number: str

    @property
    def region_code(self) -> str:
        """The administrative region (first six digits of the identification code)."""
        return self.card_identifier[:3].hex()

    @classmethod
    def from_values(cls, v: dict[int, bytes]) -> BasicInfo:
        return cls(
            v[0x01],
            v[0x02],
            _text(v[0x03], "ascii"),
            v[0x04],
            _date(v[0x05]),
            _date(v[0x06]),
            _text(v[0x07], "ascii"),
        )


@dataclass(frozen=True, slots=True)
class HolderInfo:
    social_security_number: str
    name: str
    sex: bytes
    nation: bytes
    birthplace: bytes
    birth_date: date | None

    @classmethod
    def from_values(cls, v: dict[int, bytes]) -> HolderInfo:
        return cls(
            _text(v[0x08], "ascii"),
            _text(v[0x09], "gbk"),
            v[0x0A],
            v[0x0B],
            v[0x0C],
            _date(v[0x0D]),
        )
