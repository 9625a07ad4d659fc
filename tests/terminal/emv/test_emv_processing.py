"""GPO formats 1 and 2 (openemv and real-card vectors, emv-reference.md §1.5), AFL rules,
record reading and the static data to authenticate; hostile responses stay typed."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.apdu.errors import (
    ConditionsNotSatisfied,
    FunctionNotSupported,
    MalformedResponse,
    YikatongError,
)
from terminal.emv.commands import get_processing_options as gpo_command
from terminal.emv.dol import build_dol_data
from terminal.emv.errors import MissingCardData
from terminal.emv.processing import (
    AIP_CDA,
    AIP_DDA,
    AIP_SDA,
    AflEntry,
    get_processing_options,
    parse_afl,
    parse_gpo_response,
    read_records,
    static_data_to_authenticate,
)
from tests.terminal.emv.helpers import drive, h, scripted


def test_gpo_command_without_pdol_is_8300() -> None:
    assert gpo_command(b"").encode() == h("80A8000002830000")  # Lc 02, 83 00, Le 00


def test_format1_no_pdol_openemv_test1() -> None:
    reader = scripted([("80A8000002830000", "800E7800080202001001040018010201 9000")])
    r = drive(get_processing_options(b""), reader)
    assert r.aip == h("7800")
    assert r.afl == [AflEntry(1, 2, 2, 0), AflEntry(2, 1, 4, 0), AflEntry(3, 1, 2, 1)]
    assert r.aip_has(AIP_SDA) and r.aip_has(AIP_DDA) and not r.aip_has(AIP_CDA)


def test_format2_no_pdol_openemv_test2() -> None:
    reader = scripted([("80A8000002830000", "770E82023900940818010201200204009000")])
    r = drive(get_processing_options(b""), reader)
    assert r.aip == h("3900")
    assert r.afl == [AflEntry(3, 1, 2, 1), AflEntry(4, 2, 4, 0)]
    assert r.aip_has(AIP_CDA)


def test_format1_with_pdol_9f33_openemv_test4() -> None:
    pdol_data = build_dol_data(h("9F3303"), {0x9F33: h("60F0C8")})
    assert gpo_command(pdol_data).encode() == h("80A80000058303 60F0C8 00".replace(" ", ""))
    reader = scripted([("80A800000583 0360F0C8 00", "800E7800080202001001040018010201 9000")])
    assert drive(get_processing_options(pdol_data), reader).aip == h("7800")


def test_real_unionpay_card_format1() -> None:
    r = parse_gpo_response(h("800E7C00080103001001050120010100"))
    assert r.aip == h("7C00")
    assert r.afl == [AflEntry(1, 1, 3, 0), AflEntry(2, 1, 5, 1), AflEntry(4, 1, 1, 0)]


@pytest.mark.parametrize(
    ("sw", "exc"), [("6985", ConditionsNotSatisfied), ("6A81", FunctionNotSupported)]
)
def test_gpo_errors_are_typed(sw: str, exc: type) -> None:
    with pytest.raises(exc):
        drive(get_processing_options(b""), scripted([("80A8000002830000", sw)]))


def test_format2_with_cryptogram_objects() -> None:
    # python-emv's format-2 vector plus AIP and AFL
    body = h("9F2701809F360200059F26086ECF9347C1A924719F1007060B0A03A49000")
    r = parse_gpo_response(b"\x77" + bytes((len(body) + 10,)) + h("82022000940408010100") + body)
    assert r.data[0x9F27] == h("80")
    assert r.data[0x9F36] == h("0005")
    assert r.data[0x9F10] == h("060B0A03A49000")
    assert r.afl == [AflEntry(1, 1, 1, 0)]


@pytest.mark.parametrize(
    "bad",
    [
        "800D7C000801030010010501200101",  # AFL not 4n
        "80017C",  # AIP truncated
        "770494020801",  # no AIP
        "770882027C0094020801",  # AFL of 2 bytes
        "7003820100",  # neither 80 nor 77
        "800E7C00000103001001050120010100",  # SFI 0
        "800E7C00080300001001050120010100",  # first record after last
        "800E7C00080103041001050120010100",  # 4 ODA records in a range of 3
        "800E7C000801",  # truncated
    ],
)
def test_malformed_gpo_responses_raise_typed_errors(bad: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_gpo_response(h(bad))


def test_missing_aip_is_missing_card_data() -> None:
    with pytest.raises(MissingCardData):
        parse_gpo_response(h("770694040801 0100".replace(" ", "")))


@given(st.binary(max_size=60))
def test_any_bytes_give_a_result_or_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(YikatongError):
        parse_gpo_response(data)


def test_afl_entries_and_static_data_rules() -> None:
    afl = parse_afl(h("08010100 10010201 58010101".replace(" ", "")))
    rec_1_1 = "7003 5A0101"
    rec_2_1 = "7004 5F240100"
    rec_2_2 = "7004 9F4A0182"
    rec_11_1 = "7003 8F0109"
    reader = scripted(
        [
            ("00B2010C00", rec_1_1 + "9000"),
            ("00B2011400", rec_2_1 + "9000"),
            ("00B2021400", rec_2_2 + "9000"),
            ("00B2015C00", rec_11_1 + "9000"),
        ]
    )
    records = drive(read_records(afl), reader)
    assert records.data[0x5A] == h("01") and records.data[0x8F] == h("09")
    # SFI 2 record 1 is an ODA record: value of 70 only; SFI 11: the whole record
    assert records.static_data == h("5F240100") + h("70038F0109")
    static, error = static_data_to_authenticate(records, records.data[0x9F4A], h("7C00"))
    assert error == ""
    assert static == h("5F24010070038F01097C00")


def test_an_oda_record_that_is_not_template_70_spoils_the_static_data() -> None:
    afl = parse_afl(h("10010101"))
    reader = scripted([("00B2011400", "77035A0101 9000")])
    records = drive(read_records(afl), reader)
    _, error = static_data_to_authenticate(records, None, h("7C00"))
    assert "not template 70" in error


def test_sda_tag_list_naming_more_than_the_aip_is_refused() -> None:
    afl = parse_afl(h("10010101"))
    records = drive(read_records(afl), scripted([("00B2011400", "70035A0101 9000")]))
    _, error = static_data_to_authenticate(records, h("825A"), h("7C00"))
    assert "names more than the AIP" in error


def test_truncated_record_raises_malformed_response() -> None:
    afl = parse_afl(h("10010100"))
    with pytest.raises(MalformedResponse):
        drive(read_records(afl), scripted([("00B2011400", "70055A0101 9000")]))
