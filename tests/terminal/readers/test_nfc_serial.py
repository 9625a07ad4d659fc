"""PN532 modules on a UART: nfcpy's tty driver against the PN532 emulator on a pty pair."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

import pytest

from simulators.pn532 import ACK, SYNTAX_ERROR, Pn532Emulator, build_frame
from simulators.profiles import demo_card, demo_psam
from terminal.apdu.errors import CardRemoved, ReaderUnavailable
from terminal.epurse import flows
from terminal.journal import Journal
from terminal.readers.nfc import NfcReader, open_frontend
from terminal.readers.sim import SimReader
from terminal.readers.spec import open_reader
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession


@pytest.fixture
def pn532() -> Iterator[tuple[Pn532Emulator, object]]:
    card = demo_card(21, balance=3_000)
    with Pn532Emulator(card) as emulator:
        yield emulator, card


def test_nfcpy_pn532_driver_initialises_against_the_emulator(pn532) -> None:
    emulator, _ = pn532
    clf = open_frontend(emulator.path)
    try:
        assert clf.device.chipset_name == "PN532v1.6"
    finally:
        clf.close()
    # GetFirmwareVersion, SAMConfiguration, Diagnose line test, RFConfiguration, ...
    for code in (0x02, 0x14, 0x00, 0x12, 0x32):
        assert code in emulator.commands
    assert emulator.commands[-1] == 0x16  # PowerDown when nfcpy closes the device


def test_read_and_purchase_through_a_serial_pn532(pn532, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    emulator, card = pn532
    reader = open_reader(f"nfc:{emulator.path}")
    assert isinstance(reader, NfcReader)
    try:
        assert reader.wait_for_card(5.0)
        assert reader.connect() == card.atr
        session = TerminalSession(reader, SimReader(demo_psam("310000000521")), clock=clock)
        session.start()
        assert session.run(flows.read_card()).balance == 3_000
        with Journal(tmp_path / "pos.db") as journal:
            sale = PointOfSale(session, journal).charge(125)
        assert sale.balance_after == 2_875 and card.balance == 2_875
        assert 0x4A in emulator.commands and 0x42 in emulator.commands
    finally:
        reader.close()


def test_card_taken_from_the_pn532_field_raises_card_removed(pn532) -> None:
    emulator, _ = pn532
    reader = NfcReader(emulator.path, targets=("106A",))
    try:
        assert reader.wait_for_card(5.0)
        session = TerminalSession(reader)
        session.run(flows.select())
        emulator.remove()
        with pytest.raises(CardRemoved):
            session.run(flows.read_balance())
        assert not reader.wait_for_card(0.2)
    finally:
        reader.close()


def test_in_data_exchange_carries_whole_apdus(pn532) -> None:
    """The chip's own ISO-DEP (InDataExchange), driven through nfcpy's chipset API."""
    emulator, _ = pn532
    clf = open_frontend(emulator.path)
    try:
        chipset = clf.device.chipset
        assert chipset.in_list_passive_target(1, 0, b"") is not None
        select_ep = bytes.fromhex("00A4040008A000000632010105")
        data, more = chipset.in_data_exchange(bytearray(select_ep), timeout=1.0)
        assert not more and bytes(data[-2:]) == b"\x90\x00" and data[0] == 0x6F
    finally:
        clf.close()


def test_no_pn532_on_the_port_is_reader_unavailable() -> None:
    master, slave = os.openpty()
    try:
        with pytest.raises(ReaderUnavailable, match="no pn532"):
            open_frontend(f"tty:{os.ttyname(slave)}:pn532")
    finally:
        os.close(master)
        os.close(slave)


def _exchange_raw(emulator: Pn532Emulator, raw: bytes, expect: int) -> bytes:
    fd = os.open(emulator.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, raw)
        got = b""
        while len(got) < expect and select.select([fd], [], [], 2.0)[0]:
            got += os.read(fd, 512)
        return got
    finally:
        os.close(fd)


def test_raw_frames_ack_then_answer_and_syntax_errors() -> None:
    with Pn532Emulator() as emulator:
        version = build_frame(b"\xd4\x02")
        fd_answer = _exchange_raw(emulator, b"\x55\x55\x00\x00" + version, 6 + 13)
        assert fd_answer.startswith(ACK)
        assert fd_answer[6:] == build_frame(b"\xd5\x03\x32\x01\x06\x07")
        bad = bytearray(version)
        bad[-2] ^= 0xFF  # data checksum
        assert _exchange_raw(emulator, bytes(bad), len(SYNTAX_ERROR)) == SYNTAX_ERROR
