"""Packed BCD numbers, dates and times as cards store them (YYYYMMDD, hhmmss)."""

from __future__ import annotations

from datetime import date, datetime, time

from terminal.apdu.errors import YikatongError


class BcdError(YikatongError, ValueError):
    """Bytes that are not valid packed BCD, or a BCD date that does not exist."""


def to_bcd(value: int | str, length: int) -> bytes:
    """Right-aligned packed BCD of ``length`` bytes (leading zeros)."""
    digits = str(value)
    if not digits.isdigit():
        raise BcdError(f"{value!r} is not a decimal number")
    if len(digits) > length * 2:
        raise BcdError(f"{value!r} does not fit in {length} BCD bytes")
    return bytes.fromhex(digits.zfill(length * 2))


def from_bcd(data: bytes) -> str:
    """The digit string of packed BCD bytes; raises on any nibble above 9."""
    text = data.hex()
    if not text.isdigit():
        raise BcdError(f"{data.hex().upper()} is not packed BCD")
    return text


def bcd_int(data: bytes) -> int:
    return int(from_bcd(data) or "0")


def encode_date(d: date) -> bytes:
    return bytes.fromhex(f"{d.year:04d}{d.month:02d}{d.day:02d}")


_UNSET_DATES = frozenset((bytes(4), b"\xff" * 4))
_UNSET_DATETIME = bytes(7)


def decode_date(data: bytes) -> date | None:
    """A 4-byte YYYYMMDD date; all-zero or all-FF (unset) gives None."""
    if data in _UNSET_DATES:
        return None
    text = from_bcd(data)
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise BcdError(f"{text} is not a calendar date") from None


def encode_time(t: time) -> bytes:
    return bytes.fromhex(f"{t.hour:02d}{t.minute:02d}{t.second:02d}")


def decode_time(data: bytes) -> time:
    text = from_bcd(data)
    try:
        return time(int(text[0:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        raise BcdError(f"{text} is not a time of day") from None


def encode_datetime(dt: datetime) -> bytes:
    return bytes.fromhex(
        f"{dt.year:04d}{dt.month:02d}{dt.day:02d}{dt.hour:02d}{dt.minute:02d}{dt.second:02d}"
    )


def decode_datetime(data: bytes) -> datetime | None:
    """A 7-byte YYYYMMDDhhmmss datetime; all-zero gives None."""
    if data == _UNSET_DATETIME:
        return None
    text = from_bcd(data)
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
        )
    except ValueError:
        raise BcdError(f"{text} is not a date and time") from None


def encode_pin(pin: str) -> bytes:
    """A PIN as packed BCD, F-padded to whole bytes (field practice for PBOC and SSSE cards;
    the JT/T 978 note that PINs are ASCII is uncertain, reference §2.1)."""
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("PIN must be 4 to 12 digits")
    return bytes.fromhex(pin if len(pin) % 2 == 0 else pin + "F")
