"""BER-TLV: published vectors (emv-reference §1.1), round trips, and hostile input."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.apdu import tlv
from terminal.apdu.errors import TlvError

H = bytes.fromhex


def test_constructed_and_empty_values() -> None:
    objs = tlv.parse(H("9C0101E0055F2A0202089F0200"))
    assert [(o.tag, o.value) for o in objs] == [
        (0x9C, H("01")),
        (0xE0, H("5F2A020208")),
        (0x9F02, b""),
    ]
    assert objs[1].constructed
    assert objs[1].find(0x5F2A).value == H("0208")


@pytest.mark.parametrize(
    ("raw", "tag", "value"),
    [
        ("9F820101FF", 0x9F8201, "FF"),
        ("9C8101FF", 0x9C, "FF"),
        ("9C820001FF", 0x9C, "FF"),
        ("9C83000001FF", 0x9C, "FF"),
        ("420103", 0x42, "03"),
        ("42810107", 0x42, "07"),
        ("4282000107", 0x42, "07"),
        ("DFDF390107", 0xDFDF39, "07"),
    ],
)
def test_published_vectors(raw: str, tag: int, value: str) -> None:
    assert tlv.parse_one(H(raw)) == tlv.Tlv(tag, H(value))


def test_long_form_lengths_encode() -> None:
    assert tlv.Tlv(0x9C, b"\xff" * 128).encode()[:3] == H("9C8180")
    assert tlv.Tlv(0x9C, b"\xff" * 511).encode()[:4] == H("9C8201FF")


def test_fci_vector() -> None:
    raw = H("6F1D8407A0000000038002A5125008424152434C4159538701005F2D02656E")
    fci = tlv.parse_one(raw, 0x6F)
    assert fci.find(0x50).value == b"BARCLAYS"
    assert fci.find(0x5F2D).value == b"en"
    assert tlv.find([fci], 0x87).value == b"\x00"


def test_format2_gpo_vector() -> None:
    raw = H("771E9F2701809F360200059F26086ECF9347C1A924719F1007060B0A03A49000")
    flat = tlv.flatten(tlv.parse(raw))
    assert flat[0x9F27] == H("80") and flat[0x9F36] == H("0005")
    assert flat[0x9F26] == H("6ECF9347C1A92471") and flat[0x9F10] == H("060B0A03A49000")


def test_padding_tolerated_and_duplicates_kept() -> None:
    raw = H("00 00 61 03 4F 01 AA FF 61 03 4F 01 BB 00".replace(" ", ""))
    entries = tlv.find_all(tlv.parse(raw), 0x4F)
    assert [e.value for e in entries] == [H("AA"), H("BB")]


MALFORMED = [
    ("9F", "multi-byte tag"),
    ("9F02", "length expected"),
    ("9C05AABB", "claims 5 bytes"),
    ("9C8201", "long-form length"),
    ("9C80", "indefinite"),
    ("9C85FFFFFFFFFF00", "too wide"),
    ("9FFFFFFF7F0100", "longer than 4"),
    ("E0039C05AA", "claims 5 bytes"),
]


@pytest.mark.parametrize(("raw", "message"), MALFORMED)
def test_malformed_rejected_with_reason(raw: str, message: str) -> None:
    with pytest.raises(TlvError, match=message):
        tlv.parse(H(raw))


def test_runaway_nesting_rejected() -> None:
    raw = b""
    for _ in range(40):
        raw = tlv.Tlv(0xE1, raw).encode()
    with pytest.raises(TlvError, match="nesting"):
        tlv.parse(raw)


def test_error_reports_absolute_offset() -> None:
    with pytest.raises(TlvError) as info:
        tlv.parse(H("9C0101E0049F0205AA"))
    assert info.value.offset == 5


def test_build_constructed() -> None:
    t = tlv.build(0xA5, [tlv.build(0x9F08, b"\x01"), tlv.build(0x88, b"\x01")])
    assert t.encode() == H("A5079F0801018801 01".replace(" ", ""))
    assert tlv.parse_one(t.encode()).find(0x88).value == b"\x01"


tags = st.sampled_from([0x4F, 0x50, 0x57, 0x5F2A, 0x9F02, 0x9F8201, 0xDF8101, 0x80, 0x84])
ctags = st.sampled_from([0x6F, 0x70, 0x77, 0xA5, 0xBF0C, 0xE1])
leaves = st.builds(tlv.Tlv, tags, st.binary(min_size=0, max_size=300))
trees = st.recursive(
    leaves,
    lambda kids: st.builds(lambda t, k: tlv.build(t, k), ctags, st.lists(kids, max_size=4)),
    max_leaves=12,
)


@given(st.lists(trees, max_size=4))
def test_round_trip(objs: list[tlv.Tlv]) -> None:
    raw = tlv.encode_all(objs)
    assert tlv.encode_all(tlv.parse(raw)) == raw
    assert [o.tag for o in tlv.parse(raw)] == [o.tag for o in objs]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_tlverror(raw: bytes) -> None:
    try:
        objs = tlv.parse(raw)
    except TlvError:
        return
    assert len(tlv.encode_all(objs)) <= len(raw) + 8 * len(raw)


@pytest.mark.parametrize(("raw", "message"), MALFORMED)
def test_first_values_refuses_what_parse_refuses(raw: str, message: str) -> None:
    with pytest.raises(TlvError, match=message):
        tlv.first_values(H(raw), frozenset((0x9C, 0x9F02)))


def test_first_values_checks_past_the_tags_it_found() -> None:
    """The wanted tag comes first; the bytes after it are still checked."""
    with pytest.raises(TlvError, match="claims 5 bytes"):
        tlv.first_values(H("840101E0039C05AA"), frozenset((0x84,)))


def test_first_values_of_a_real_fci() -> None:
    fci = H(
        "6F318408A000000632010105A5259F0801019F0C1E02902900FFFFFFFF02010310002900000000005120"
        "240101203412310000"
    )
    found = tlv.first_values(fci, frozenset((0x84, 0x50, 0x9F0C)))
    assert found == {0x84: H("A000000632010105"), 0x9F0C: fci[21:51]}


@given(st.binary(max_size=200), st.lists(tags | ctags, max_size=4))
def test_first_values_are_what_find_finds(raw: bytes, wanted: list[int]) -> None:
    try:
        objs = tlv.parse(raw)
    except TlvError:
        with pytest.raises(TlvError):
            tlv.first_values(raw, frozenset(wanted))
        return
    expected = {t: found.value for t in wanted if (found := tlv.find(objs, t)) is not None}
    assert tlv.first_values(raw, frozenset(wanted)) == expected


@given(st.lists(trees, max_size=4), st.lists(tags | ctags, max_size=4))
def test_first_values_of_well_formed_trees(objs: list[tlv.Tlv], wanted: list[int]) -> None:
    raw = tlv.encode_all(objs)
    expected = {t: found.value for t in wanted if (found := tlv.find(objs, t)) is not None}
    assert tlv.first_values(raw, frozenset(wanted)) == expected
