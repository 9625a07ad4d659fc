"""Command APDU encoding/decoding: ISO 7816-4 cases 1-4, short and extended."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.apdu.command import CommandAPDU, CommandTemplate
from terminal.apdu.errors import MalformedApdu

H = bytes.fromhex


@pytest.mark.parametrize(
    ("apdu", "raw", "case"),
    [
        (CommandAPDU(0x00, 0x84, 0x00, 0x00), "00840000", 1),
        (CommandAPDU(0x80, 0x5C, 0x00, 0x02, le=4), "805C000204", 2),
        (CommandAPDU(0x00, 0xB0, 0x95, 0x00, le=256), "00B0950000", 2),
        (CommandAPDU(0x80, 0x72, 0x00, 0x00, H("11223344")), "807200000411223344", 3),
        (
            CommandAPDU(0x00, 0xA4, 0x04, 0x00, H("A000000632010105"), le=256),
            "00A4040008A00000063201010500",
            4,
        ),
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, le=65536), "00B00000000000", 2),
        (CommandAPDU(0x00, 0xB0, 0x00, 0x00, le=300), "00B0000000012C", 2),
    ],
)
def test_encode_decode_known(apdu: CommandAPDU, raw: str, case: int) -> None:
    assert apdu.encode().hex().upper() == raw
    assert apdu.case == case
    assert CommandAPDU.decode(H(raw)) == apdu


def test_long_data_switches_to_extended() -> None:
    apdu = CommandAPDU(0x00, 0xD6, 0x00, 0x00, bytes(300), le=10)
    raw = apdu.encode()
    assert apdu.extended
    assert raw[4:7] == H("00012C")
    assert raw[-2:] == H("000A")
    assert CommandAPDU.decode(raw) == apdu


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00",
        "00A404",
        "00A4040005AABB",
        "00A40400020102030405",
        "00A404000000",
        "00A4040000000201",
        "00A404000000020102FF",
    ],
)
def test_malformed_commands_rejected(raw: str) -> None:
    with pytest.raises(MalformedApdu):
        CommandAPDU.decode(H(raw))


def test_field_validation() -> None:
    with pytest.raises(MalformedApdu):
        CommandAPDU(0x100, 0, 0, 0)
    with pytest.raises(MalformedApdu):
        CommandAPDU(0, 0, 0, 0, le=0)
    with pytest.raises(MalformedApdu):
        CommandAPDU(0, 0, 0, 0, bytes(65536))


def test_with_le_keeps_the_rest() -> None:
    apdu = CommandAPDU(0x00, 0xB2, 0x01, 0xC4, le=256).with_le(0x17)
    assert apdu.encode().hex().upper() == "00B201C417"


commands = st.builds(
    CommandAPDU,
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=600),
    le=st.one_of(st.none(), st.integers(1, 65536)),
    extended=st.booleans(),
)


@given(commands)
def test_round_trip(apdu: CommandAPDU) -> None:
    assert CommandAPDU.decode(apdu.encode()) == apdu


@given(st.binary(max_size=300))
def test_decode_never_crashes(raw: bytes) -> None:
    try:
        apdu = CommandAPDU.decode(raw)
    except MalformedApdu:
        return
    assert apdu.encode() == raw or len(raw) > 4


@given(
    st.integers(0, 255),
    st.one_of(st.none(), st.integers(1, 255)),
    st.one_of(st.none(), st.integers(1, 256)),
    st.binary(max_size=300),
)
def test_template_fill_is_the_checked_command(
    ins: int, lc: int | None, le: int | None, data: bytes
) -> None:
    """A filled template is the command CommandAPDU builds and checks, bytes and all; data
    that does not fit its Lc is refused."""
    template = CommandTemplate(0x80, ins, 0x01, 0x02, lc=lc, le=le)
    fits = len(data) == lc if lc is not None else len(data) <= 255
    if not fits and lc is not None:
        with pytest.raises(MalformedApdu, match=f"takes {lc} bytes of data, got {len(data)}"):
            template.fill(data)
        return
    expected = CommandAPDU(0x80, ins, 0x01, 0x02, data, le)
    command = template.fill(data)
    assert command == expected
    assert command.encode() == expected.encode() == CommandAPDU.decode(command.encode()).encode()
    assert command.case == expected.case and command.extended is expected.extended


def test_template_refuses_a_bad_header_or_length() -> None:
    with pytest.raises(MalformedApdu, match="p1 must be a byte"):
        CommandTemplate(0x80, 0x54, 0x100, 0x00, lc=15, le=8)
    with pytest.raises(MalformedApdu, match=r"Lc must be 1\.\.255"):
        CommandTemplate(0x80, 0x54, 0x01, 0x00, lc=300, le=8)
    with pytest.raises(MalformedApdu, match=r"Le must be 1\.\.256"):
        CommandTemplate(0x80, 0x54, 0x01, 0x00, lc=15, le=1000)
    with pytest.raises(MalformedApdu, match="data must be bytes"):
        CommandTemplate(0x80, 0x72, 0x00, 0x00, lc=None, le=None).fill("abcd")  # type: ignore[arg-type]


def test_encoded_form_is_kept() -> None:
    apdu = CommandAPDU(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00", le=256)
    assert apdu.encode() is apdu.encode() == bytes.fromhex("00A4040002A00000")
    assert apdu == CommandAPDU(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00", le=256)  # not compared
