"""ISO/IEC 7816-4 interindustry commands: their INS bytes (``IsoIns``) and builders, in one
place for every card application (e-purse, EMV, SSSE, campus), the PSAM, the card OS's
personalisation and the trace importers."""

from __future__ import annotations

from enum import IntEnum

from terminal.apdu.bcd import encode_pin
from terminal.apdu.command import CommandAPDU, template


class IsoIns(IntEnum):
    """INS bytes of the ISO 7816-4 commands: named once, for the builders below, the
    simulated cards and SAM that answer them and the tests that tear or answer at one."""

    VERIFY = 0x20
    EXTERNAL_AUTHENTICATE = 0x82
    GET_CHALLENGE = 0x84
    INTERNAL_AUTHENTICATE = 0x88
    SELECT = 0xA4
    READ_BINARY = 0xB0
    READ_RECORD = 0xB2
    GET_RESPONSE = 0xC0


class SelectBy(IntEnum):
    """SELECT's P1: what the data names."""

    FILE_ID = 0x00  # the MF, a DF or an EF by its file identifier
    CHILD_EF = 0x02  # an EF under the current DF
    NAME = 0x04  # a DF (an application) by its name, the AID


def _sfi(sfi: int, lowest: int = 1) -> int:
    if not lowest <= sfi <= 30:
        raise ValueError(f"SFI {sfi} out of range {lowest}..30")
    return sfi


@template
def select_aid(aid: bytes, *, first: bool = True, le: int | None = 256) -> CommandAPDU:
    """SELECT by DF name (00 A4 04); ``first=False`` asks for the next occurrence (a partial
    AID), ``le=None`` asks for no FCI."""
    return CommandAPDU(0x00, IsoIns.SELECT, SelectBy.NAME, 0x00 if first else 0x02, aid, le=le)


@template
def select_fid(fid: int, *, by: SelectBy = SelectBy.FILE_ID, le: int | None = None) -> CommandAPDU:
    """SELECT by file identifier (00 A4 00, or 02 for an EF of the current DF)."""
    return CommandAPDU(0x00, IsoIns.SELECT, by, 0x00, fid.to_bytes(2, "big"), le=le)


@template
def read_binary(sfi: int, offset: int = 0, length: int = 256) -> CommandAPDU:
    """READ BINARY of the EF named by its short file identifier (P1 = 80 | SFI)."""
    return CommandAPDU(0x00, IsoIns.READ_BINARY, 0x80 | _sfi(sfi), offset, le=length)


@template
def read_record(sfi: int, record: int, length: int = 256) -> CommandAPDU:
    """READ RECORD ``record`` (1..255) of the EF with short file identifier ``sfi``, or of
    the current EF for ``sfi`` 0 (P2 = SFI << 3 | 04)."""
    if not 1 <= record <= 255:
        raise ValueError(f"record number {record} out of range 1..255")
    return CommandAPDU(0x00, IsoIns.READ_RECORD, record, (_sfi(sfi, 0) << 3) | 0x04, le=length)


def get_response(cla: int, length: int) -> CommandAPDU:
    """GET RESPONSE for what a 61xx said waits (on the channel of ``cla``)."""
    return CommandAPDU(cla & 0x03, IsoIns.GET_RESPONSE, 0x00, 0x00, le=length)


def verify(reference_data: bytes, *, reference: int = 0x00) -> CommandAPDU:
    """VERIFY (00 20 00 ref): a PIN block, encoded as the application encodes it."""
    return CommandAPDU(0x00, IsoIns.VERIFY, 0x00, reference, reference_data)


def verify_pin(pin: str) -> CommandAPDU:
    """VERIFY with the PIN as packed BCD, F-padded (``encode_pin``)."""
    return verify(encode_pin(pin))


def get_challenge(length: int) -> CommandAPDU:
    return CommandAPDU(0x00, IsoIns.GET_CHALLENGE, 0x00, 0x00, le=length)


def internal_authenticate(data: bytes, *, key: int = 0x00, le: int = 256) -> CommandAPDU:
    """INTERNAL AUTHENTICATE (00 88 00 key): the card answers ``data`` with its key."""
    return CommandAPDU(0x00, IsoIns.INTERNAL_AUTHENTICATE, 0x00, key, data, le=le)


def external_authenticate(data: bytes, *, key: int = 0x00) -> CommandAPDU:
    """EXTERNAL AUTHENTICATE (00 82 00 key): the terminal's (or host's) cryptogram."""
    return CommandAPDU(0x00, IsoIns.EXTERNAL_AUTHENTICATE, 0x00, key, data)
