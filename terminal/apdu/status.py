"""Status words as named constants: the one place the project spells each SW."""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    OK = 0x9000
    SELECTED_FILE_INVALIDATED = 0x6283
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS = 0x6982
    PIN_BLOCKED = 0x6983
    CONDITIONS = 0x6985
    STATE_MISMATCH = 0x6901
    CAPP_CACHE_FAILED = 0x6974
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    FILE_EXISTS = 0x6A89
    WRONG_P1P2 = 0x6A86
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    MAC_ERROR = 0x9302
    APP_LOCKED = 0x9303
    INSUFFICIENT_BALANCE = 0x9401
    KEY_NOT_FOUND = 0x9403
    MAC_UNAVAILABLE = 0x9406
    WRONG_PIN_ANY = 0x63C0
    MORE_DATA_ANY = 0x6100
    WRONG_LE_ANY = 0x6C00


def wrong_pin(tries_left: int) -> int:
    """63Cx: the PIN was wrong and x tries remain."""
    return SW.WRONG_PIN_ANY | (tries_left & 0x0F)


def more_data(available: int) -> int:
    """61xx: xx bytes wait for GET RESPONSE (00 means 256)."""
    return SW.MORE_DATA_ANY | (available & 0xFF)


def wrong_le(exact: int) -> int:
    """6Cxx: re-issue the command with Le = xx."""
    return SW.WRONG_LE_ANY | (exact & 0xFF)
