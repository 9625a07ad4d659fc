"""The NFC backend through nfcpy's own UDP driver, a software card on the listen side."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from simulators.iso_dep_card import IsoDepCard, UdpCardEmulator
from simulators.profiles import demo_card, demo_psam
from terminal.apdu.errors import CardRemoved, NoCard
from terminal.epurse import flows
from terminal.journal import Journal
from terminal.readers.events import EventKind, EventQueue
from terminal.readers.nfc import NfcReader, atr_for_type_a, atr_for_type_b
from terminal.readers.sim import SimReader
from terminal.readers.spec import ReaderSpecError, open_reader
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EchoCard:
    """Answers any command with its own bytes after the header, then 9000 (for chaining)."""

    atr = bytes.fromhex("3B8180018080")

    def process(self, apdu: bytes) -> bytes:
        return apdu[4:] + b"\x90\x00"


@pytest.fixture
def card_a() -> Iterator[tuple[UdpCardEmulator, object]]:
    card = demo_card(11, balance=2_500)
    emulator = UdpCardEmulator(card, port=free_udp_port(), kind="A", fwi=10).start()
    yield emulator, card
    emulator.stop()


@pytest.fixture
def nfc_reader(card_a) -> Iterator[NfcReader]:
    events = EventQueue()
    reader = NfcReader(card_a[0].path, targets=("106A",), on_event=events)
    yield reader
    reader.close()


def test_type_a_atr_is_built_from_the_ats_historical_bytes(card_a, nfc_reader) -> None:
    _, card = card_a
    assert nfc_reader.wait_for_card(5.0)
    assert nfc_reader.connect() == card.atr  # PC/SC part 3: 3B 8n 80 01 + ATS historicals


def test_read_and_purchase_over_iso_dep(card_a, nfc_reader, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Card over NFC, PSAM in a contact slot (in process): a whole purchase."""
    _, card = card_a
    assert nfc_reader.wait_for_card(5.0)
    session = TerminalSession(nfc_reader, SimReader(demo_psam("310000000411")), clock=clock)
    session.start()
    snap = session.run(flows.read_card())
    assert snap.balance == 2_500 and snap.info.serial == card.serial
    with Journal(tmp_path / "pos.db") as journal:
        sale = PointOfSale(session, journal).charge(450)
    assert sale.balance_after == 2_050 and sale.verified and sale.row.amount == 450
    assert card.balance == 2_050


def test_type_b_card_is_activated_with_attrib(clock) -> None:
    card = demo_card(12, balance=900)
    with UdpCardEmulator(card, port=free_udp_port(), kind="B") as emulator:
        reader = NfcReader(emulator.path, targets=("106B",))
        try:
            assert reader.wait_for_card(5.0)
            atr = reader.connect()
            assert atr[:4] == bytes.fromhex("3B888001") and len(atr) == 13
            assert TerminalSession(reader).run(flows.read_card()).balance == 900
        finally:
            reader.close()


def test_long_commands_and_responses_are_chained_both_ways() -> None:
    with UdpCardEmulator(EchoCard(), port=free_udp_port()) as emulator:
        reader = NfcReader(emulator.path, targets=("106A",))
        try:
            assert reader.wait_for_card(5.0)
            payload = bytes(range(256)) * 4
            apdu = b"\x80\xee\x00\x00" + payload
            assert reader.transmit(apdu) == payload + b"\x90\x00"
        finally:
            reader.close()


def test_card_leaving_the_field_raises_card_removed_and_events(card_a) -> None:
    emulator, _ = card_a
    events = EventQueue()
    reader = NfcReader(emulator.path, targets=("106A",), on_event=events)
    try:
        assert reader.wait_for_card(5.0)
        assert events.wait_for(EventKind.CARD_INSERTED, timeout=0.1)
        session = TerminalSession(reader)
        session.run(flows.select())
        emulator.remove()
        with pytest.raises(CardRemoved, match="left the field"):
            session.run(flows.read_balance())
        assert events.wait_for(EventKind.CARD_REMOVED, timeout=0.1)
        assert not reader.card_present()
        assert reader.wait_for_removal(0.1)
        with pytest.raises(NoCard):
            reader.connect()
    finally:
        reader.close()


def test_presence_check_sees_the_card_leave(card_a, nfc_reader) -> None:
    emulator, _ = card_a
    assert nfc_reader.wait_for_card(5.0)
    assert nfc_reader.card_present()
    assert not nfc_reader.wait_for_removal(0.3)  # still there
    emulator.remove()
    assert nfc_reader.wait_for_removal(5.0)


def test_cancel_stops_the_connect_loop_and_the_next_wait_rearms_it(card_a, nfc_reader) -> None:
    emulator, _ = card_a
    emulator.remove()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(nfc_reader.wait_for_card(30.0)))
    waiter.start()
    time.sleep(0.3)
    started = time.monotonic()
    nfc_reader.cancel()
    waiter.join(10.0)
    assert result == [False]
    assert time.monotonic() - started < 3.0  # one polling round of nfcpy's UDP driver
    emulator.insert()
    assert nfc_reader.wait_for_card(10.0)
    assert nfc_reader.connect()


def test_disconnect_deselects_and_connect_activates_again(card_a, nfc_reader) -> None:
    emulator, card = card_a
    assert nfc_reader.wait_for_card(5.0)
    nfc_reader.disconnect()
    assert nfc_reader.wait_for_card(5.0)
    assert emulator.activations == 2
    assert nfc_reader.connect() == card.atr


def test_atr_mapping_of_pcsc_part_3() -> None:
    ats = bytes.fromhex("0B788033811122334455")  # TL=0B: T0 TA TB TC + 6 historical bytes
    ats = bytes([len(ats)]) + ats[1:]
    atr = atr_for_type_a(ats)
    hist = ats[5:]
    assert atr[:4] == bytes([0x3B, 0x80 | len(hist), 0x80, 0x01])
    assert atr[4:-1] == hist
    tck = 0
    for b in atr[1:]:
        tck ^= b
    assert tck == 0  # TCK makes the XOR of T0..TCK zero
    atqb = bytes.fromhex("50 0C0A0F0E 11223344 00 81 C0".replace(" ", ""))
    atr_b = atr_for_type_b(atqb, b"\x10")
    assert atr_b[4:8] == bytes.fromhex("11223344") and atr_b[8:11] == bytes.fromhex("0081C0")
    assert atr_b[11] == 0x10


def test_iso_dep_card_protocol_blocks() -> None:
    """The card-side block logic alone: RATS, I-block, R(NAK) presence, DESELECT."""
    iso = IsoDepCard(EchoCard(), fwi=12)
    ats = iso.activate(b"\xe0\x80")
    assert ats[0] == len(ats) and ats[3] >> 4 == 12
    assert iso.handle(b"\x02\x00\xa4\x04\x00") == b"\x02\x90\x00"
    assert iso.handle(b"\xb3") == b"\xa3"  # presence check for the next block number
    assert iso.handle(b"\xb2") == b"\x02\x90\x00"  # R(NAK) for the last block: resend it
    assert iso.handle(b"\xc2") == b"\xc2" and not iso.active


def test_nfc_specs() -> None:
    assert isinstance(open_reader("nfc:udp:localhost:54321"), NfcReader)
    assert isinstance(open_reader("nfc:tty:/dev/ttyUSB0:pn532"), NfcReader)
    for bad in ("nfc:bluetooth", "nfc:udp:localhost:http"):
        with pytest.raises(ReaderSpecError):
            open_reader(bad)
