"""The social security application reader: records, PIN handling, malformed records."""

from __future__ import annotations

from datetime import date

import pytest

from simulators.emv_profiles import SsseProfile, ssse_card
from terminal.apdu.errors import MalformedResponse, WrongPin
from terminal.readers.sim import SimReader
from terminal.ssse.flows import read_ssse
from terminal.ssse.records import BASIC_INFO_RECORDS, decode_record, encode_record
from tests.terminal.emv.helpers import drive, scripted


def test_basic_and_holder_information() -> None:
    card = ssse_card(1, ssse=SsseProfile(region="440300", birth_date=date(1985, 6, 1)))
    report = drive(read_ssse(), SimReader(card))
    assert report.basic.card_number == "A12345678"
    assert report.basic.region_code == "440300"
    assert report.basic.spec_version == "3.00"
    assert report.basic.expiry_date == date(2035, 1, 1)
    assert report.holder is not None
    assert report.holder.social_security_number == "310101199003070011"
    assert report.holder.birth_date == date(1985, 6, 1)


def test_wrong_pin_is_a_typed_error() -> None:
    card = ssse_card(1, ssse=SsseProfile(holder_pin_required=True))
    with pytest.raises(WrongPin):
        drive(read_ssse(pin="000000"), SimReader(card))


def test_record_codec_round_trip_and_rejection() -> None:
    spec = BASIC_INFO_RECORDS[6]
    raw = encode_record(spec, b"A12345678")
    assert raw.hex().upper() == "0709413132333435363738"
    assert decode_record(spec, raw) == b"A12345678"
    with pytest.raises(MalformedResponse):
        decode_record(spec, bytes.fromhex("0809413132"))  # wrong tag
    with pytest.raises(MalformedResponse):
        decode_record(spec, bytes.fromhex("07094131"))  # length overruns


def test_malformed_record_from_the_card_is_a_typed_error() -> None:
    reader = scripted(
        [
            (
                "00A404000F7378312E73682EC9E7BBE1B1A3D5CF",
                "6F1184 0F7378312E73682EC9E7BBE1B1A3D5CF 9000",
            ),
            ("00A4020002EF05", "9000"),
            ("00B2010400", "0110" + "33" * 16 + "9000"),
            ("00B2020400", "0205FF 9000"),  # claims 5 bytes, has 1
        ]
    )
    with pytest.raises(MalformedResponse):
        drive(read_ssse(), reader)
