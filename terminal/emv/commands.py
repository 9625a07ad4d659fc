"""Command APDU builders for EMV / PBOC 3.0 applications (emv-reference.md §1.4)."""

from __future__ import annotations

from enum import IntEnum

from terminal.apdu.command import CommandAPDU
from terminal.apdu.tlv import build, tag_bytes
from terminal.emv.tags import Tag


class EmvIns(IntEnum):
    """INS bytes of the EMV / PBOC 3.0 commands beyond ISO 7816-4's (``IsoIns``: SELECT, READ
    RECORD, INTERNAL and EXTERNAL AUTHENTICATE): named once, for the builders below, the
    simulated EMV card that answers them and the trace replay's loose matching."""

    GET_PROCESSING_OPTIONS = 0xA8
    GENERATE_AC = 0xAE
    GET_DATA = 0xCA
    PUT_DATA = 0xDA


class CryptogramType(IntEnum):
    """GENERATE AC reference control parameter (P1) and the CID's top two bits."""

    AAC = 0x00
    TC = 0x40
    ARQC = 0x80


def get_processing_options(pdol_data: bytes) -> CommandAPDU:
    """GPO with the command template ``83 L <PDOL data>`` (``83 00`` without a PDOL)."""
    return CommandAPDU(
        0x80,
        EmvIns.GET_PROCESSING_OPTIONS,
        0x00,
        0x00,
        build(Tag.COMMAND_TEMPLATE, pdol_data).encode(),
        le=256,
    )


def get_data(tag: int) -> CommandAPDU:
    raw = tag_bytes(tag)
    if len(raw) > 2:
        raise ValueError(f"GET DATA takes one- or two-byte tags, not {tag:X}")
    raw = raw.rjust(2, b"\x00")
    return CommandAPDU(0x80, EmvIns.GET_DATA, raw[0], raw[1], le=256)


def generate_ac(kind: CryptogramType, cdol_data: bytes, *, cda: bool = False) -> CommandAPDU:
    return CommandAPDU(
        0x80, EmvIns.GENERATE_AC, int(kind) | (0x10 if cda else 0), 0x00, cdol_data, le=256
    )
