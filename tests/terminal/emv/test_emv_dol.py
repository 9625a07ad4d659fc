"""DOL building and parsing: the published openemv / python-emv / UnionPay vectors
(emv-reference.md §1.8) as known answers, plus the truncation and padding rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.emv.dol import DolEntry, build_dol_data, dol_length, fit, parse_dol, split_dol_data
from terminal.emv.errors import DolError

h = bytes.fromhex

SRC1 = {
    0x9C: h("09"),
    0x9A: h("240217"),
    0x5F2A: h("0978"),
    0x9F02: h("000123456789"),
    0x9F03: h("000987654321"),
    0x9F37: h("DEADBEEF"),
}
SRC2 = {0x9F1A: h("0528"), 0x9F37: h("DEADCAFE"), 0x95: h("1234554321")}


def test_openemv_test6_exact_lengths_first_source_wins() -> None:
    dol = h("9F02069F03069F1A0295055F2A029A039C019F3704")
    assert build_dol_data(dol, SRC1, SRC2) == h(
        "00012345678900098765432105281234554321097824021709DEADBEEF"
    )


def test_openemv_test7_truncation_and_padding_by_format() -> None:
    dol = h("9F02039F03079F1A0295065F2A029A009C039F37035A059F20059F1908")
    src1 = {**SRC1, 0x5A: h("541333008902001F"), 0x9F20: h("12345F")}
    src2 = {**SRC2, 0x9F20: h("123F"), 0x9F19: h("654321012345")}
    assert build_dol_data(dol, src1, src2) == h(
        "456789"  # n, longer: rightmost
        "00000987654321"  # n, shorter: left-padded 00
        "0528"
        "123455432100"  # b, shorter: right-padded 00
        "0978"
        ""  # zero length: nothing
        "000009"  # n
        "DEADBE"  # b, longer: leftmost
        "5413330089"  # cn, longer: leftmost
        "12345FFFFF"  # cn, shorter: right-padded FF
        "0000654321012345"  # n
    )


def test_python_emv_absent_tags_are_zeros() -> None:
    dol = h("9F02069F03069F1A0295055F2A029A039C019F3704")
    data = build_dol_data(dol, {0x95: h("8000000000"), 0x9A: h("010101")})
    assert data == h("0000000000000000000000000000800000000000000101010000000000")
    assert len(data) == 29 == dol_length(dol)


def test_unionpay_cdol1_from_the_uics_trace() -> None:
    cdol1 = h("9F02069F03069F1A0295055F2A029A039C019F37049F21039F4E149F3403")
    terminal = {
        0x9F02: h("000000006580"),
        0x9F03: h("000000000000"),
        0x9F1A: h("0036"),
        0x95: h("0000008000"),
        0x5F2A: h("0036"),
        0x9A: h("150316"),
        0x9C: h("00"),
        0x9F37: h("3510540E"),
        0x9F21: h("160136"),
        0x9F34: h("5E0300"),
    }
    data = build_dol_data(cdol1, terminal)
    assert len(data) == 0x37
    assert data == h(
        "000000006580000000000000003600000080000036150316003510540E160136" + "00" * 20 + "5E0300"
    )


def test_parse_dol_and_split_round_trip() -> None:
    dol = h("9F66049F02065F2A02")
    assert parse_dol(dol) == [DolEntry(0x9F66, 4), DolEntry(0x9F02, 6), DolEntry(0x5F2A, 2)]
    data = h("260000000000000012340156")
    assert split_dol_data(dol, data) == {
        0x9F66: h("26000000"),
        0x9F02: h("000000001234"),
        0x5F2A: h("0156"),
    }


@pytest.mark.parametrize("bad", [h("9F"), h("9F02"), h("9F0281"), h("9F0285000000000001")])
def test_malformed_dol_raises_dol_error(bad: bytes) -> None:
    with pytest.raises(DolError):
        parse_dol(bad)


def test_split_rejects_data_of_the_wrong_length() -> None:
    with pytest.raises(DolError):
        split_dol_data(h("9F0206"), h("0001"))


@pytest.mark.parametrize(
    ("value", "length", "fmt", "expected"),
    [
        (h("1234"), 3, "n", h("001234")),
        (h("1234"), 1, "n", h("34")),
        (h("1234"), 3, "cn", h("1234FF")),
        (h("1234"), 1, "cn", h("12")),
        (h("4142"), 3, "an", h("414200")),
        (h("4142"), 1, "b", h("41")),
    ],
)
def test_fit_rules(value: bytes, length: int, fmt: str, expected: bytes) -> None:
    assert fit(value, length, fmt) == expected


@given(
    st.lists(st.tuples(st.sampled_from([0x9F02, 0x5A, 0x95, 0x9F4E, 0xDF69]), st.integers(0, 40))),
    st.dictionaries(st.sampled_from([0x9F02, 0x5A, 0x95, 0x9F4E]), st.binary(max_size=30)),
)
def test_built_data_is_always_as_long_as_the_dol_asks(entries, source) -> None:  # type: ignore[no-untyped-def]
    dol = b"".join(t.to_bytes((t.bit_length() + 7) // 8, "big") + bytes((n,)) for t, n in entries)
    assert len(build_dol_data(dol, source)) == sum(n for _, n in entries)
