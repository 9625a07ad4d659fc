"""The ISO 7816-4 builders give the bytes each application sent before they were shared: the
e-purse's, EMV's, the SSSE's (SELECT without Le, READ RECORD of the current EF), the card
OS's, the campus card's and the PSAM's."""

from __future__ import annotations

import pytest

from terminal.apdu import iso
from terminal.apdu.command import CommandAPDU
from terminal.campus import card as campus
from terminal.cos import commands as cos
from terminal.ssse.records import DF_SSSE


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (iso.select_aid(bytes.fromhex("A000000632010105")), "00A4040008A00000063201010500"),
        (iso.select_aid(b"\xa0\x00", first=False), "00A4040202A00000"),
        (iso.select_aid(DF_SSSE, le=None), "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"),
        (iso.select_fid(0x3F00), "00A40000023F00"),
        (iso.select_fid(0xEF05, by=iso.SelectBy.CHILD_EF), "00A4020002EF05"),
        (cos.select_mf(), "00A40000023F0000"),
        (iso.read_binary(0x15), "00B0950000"),
        (iso.read_binary(0x16, length=55), "00B0960037"),
        (iso.read_record(0x18, 1), "00B201C400"),
        (iso.read_record(0, 3), "00B2030400"),
        (iso.read_record(1, 2), "00B2020C00"),
        (iso.get_response(0x80, 0x10), "00C0000010"),
        (iso.get_response(0x01, 256), "01C0000000"),
        (iso.verify_pin("12345"), "002000000312345F"),
        (iso.get_challenge(4), "0084000004"),
        (campus.sam_challenge(), "0084000008"),
        (campus.internal_authenticate(bytes(8), 3), "0088000308000000000000000008"),
        (campus.sam_verify(bytes(8), bytes(8), bytes(8)), "8082000118" + "00" * 24),
        (iso.internal_authenticate(b"\x01\x02"), "0088000002010200"),
        (cos.external_authenticate(bytes(8), 2), "008200020800000000" + "00000000"),
    ],
)
def test_each_builder_gives_the_bytes_it_gave_before(command: CommandAPDU, wire: str) -> None:
    assert command.encode().hex().upper() == wire.upper()


@pytest.mark.parametrize(("sfi", "record"), [(31, 1), (1, 0), (1, 256)])
def test_a_record_outside_the_file_is_refused_before_any_byte_is_sent(
    sfi: int, record: int
) -> None:
    with pytest.raises(ValueError, match="out of range"):
        iso.read_record(sfi, record)
