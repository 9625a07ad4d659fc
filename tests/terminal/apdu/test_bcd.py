"""Packed BCD numbers, dates and times."""

from datetime import date, datetime, time

import pytest

from terminal.apdu import bcd


def test_numbers() -> None:
    assert bcd.to_bcd(20261128, 4) == bytes.fromhex("20261128")
    assert bcd.to_bcd("42", 3) == bytes.fromhex("000042")
    assert bcd.bcd_int(bytes.fromhex("001234")) == 1234
    with pytest.raises(bcd.BcdError):
        bcd.to_bcd(123, 1)
    with pytest.raises(bcd.BcdError):
        bcd.from_bcd(bytes.fromhex("1A"))


def test_dates_and_times() -> None:
    assert bcd.decode_date(bytes.fromhex("20120229")) == date(2012, 2, 29)
    assert bcd.encode_date(date(2026, 1, 5)) == bytes.fromhex("20260105")
    assert bcd.decode_date(bytes(4)) is None
    assert bcd.decode_time(bytes.fromhex("135100")) == time(13, 51)
    dt = datetime(2011, 12, 21, 21, 48, 22)
    assert bcd.decode_datetime(bcd.encode_datetime(dt)) == dt


@pytest.mark.parametrize("raw", ["20230229", "20231301", "2023A101"])
def test_impossible_dates_rejected(raw: str) -> None:
    with pytest.raises(bcd.BcdError):
        bcd.decode_date(bytes.fromhex(raw))
