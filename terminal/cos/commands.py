"""Command APDUs of the personalisation command set (docs/issuance.md).

INS values follow ISO/IEC 7816-4/-9 and the FMCOS family: CREATE FILE 80 E0 (file id in
P1-P2), WRITE KEY 80/84 D4 (P1 01 = add, P2 = key id), ERASE DF 80 0E, EXTERNAL
AUTHENTICATE 00 82, UPDATE BINARY 00 D6 by SFI, ACTIVATE FILE 80 44 (the ISO 7816-9
instruction, used here to end personalisation).
"""

from __future__ import annotations

from terminal.apdu import iso
from terminal.apdu.command import CommandAPDU

FID_MF = 0x3F00
FID_KEY_FILE = 0x0000
FID_EP_PURSE = 0x0002  # FMCOS convention: 0001 ED, 0002 EP

CLA_PLAIN = 0x80
CLA_SECURE = 0x84  # secure messaging: data carries a MAC (and here a cryptogram)
INS_CREATE_FILE = 0xE0
INS_WRITE_KEY = 0xD4
INS_ERASE_DF = 0x0E
INS_UPDATE_BINARY = 0xD6
INS_ACTIVATE = 0x44
P1_ADD_KEY = 0x01
MAC_LEN = 4


def sfi_of(fid: int) -> int:
    """The short file identifier of an elementary file: the low 5 bits of its FID."""
    return fid & 0x1F


def select_mf() -> CommandAPDU:
    return iso.select_fid(FID_MF, le=256)


def external_authenticate(cryptogram: bytes, key_id: int = 0) -> CommandAPDU:
    if len(cryptogram) != 8:
        raise ValueError("external authentication cryptogram must be 8 bytes")
    return iso.external_authenticate(cryptogram, key=key_id)


def create_file(fid: int, header: bytes) -> CommandAPDU:
    return CommandAPDU(CLA_PLAIN, INS_CREATE_FILE, fid >> 8, fid & 0xFF, header)


def write_key_header(key_id: int, data_len: int) -> bytes:
    """The part of a protected WRITE KEY the MAC covers: header with Lc counting the MAC."""
    return bytes((CLA_SECURE, INS_WRITE_KEY, P1_ADD_KEY, key_id, data_len + MAC_LEN))


def write_key(key_id: int, protected_data: bytes) -> CommandAPDU:
    """WRITE KEY with line protection: ``protected_data`` = cryptogram ‖ MAC from the HSM."""
    return CommandAPDU(CLA_SECURE, INS_WRITE_KEY, P1_ADD_KEY, key_id, protected_data)


def set_pin(pin_record: bytes) -> CommandAPDU:
    """WRITE KEY of the PIN (key id 00), in clear, allowed after external authentication."""
    return CommandAPDU(CLA_PLAIN, INS_WRITE_KEY, P1_ADD_KEY, 0x00, pin_record)


def update_binary(sfi: int, data: bytes, offset: int = 0) -> CommandAPDU:
    if not 1 <= sfi <= 30:
        raise ValueError(f"SFI {sfi} out of range 1..30")
    return CommandAPDU(0x00, INS_UPDATE_BINARY, 0x80 | sfi, offset, data)


def erase_df() -> CommandAPDU:
    """Erase everything below the MF (allowed only before activation)."""
    return CommandAPDU(CLA_PLAIN, INS_ERASE_DF, 0x00, 0x00)


def activate() -> CommandAPDU:
    """End personalisation: the card checks it is complete and becomes operational."""
    return CommandAPDU(CLA_PLAIN, INS_ACTIVATE, 0x00, 0x00)
