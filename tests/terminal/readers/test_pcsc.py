"""The PC/SC backend through the real stack: pyscard -> pcscd -> vpcd -> software cards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from simulators.profiles import demo_card, demo_psam
from simulators.vpcd import AFTER, BEFORE
from terminal.apdu.channel import Channel
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import CardRemoved, NoCard, ReaderUnavailable, TransportError
from terminal.epurse import flows
from terminal.epurse.commands import AID_TUNION_EP, Ins
from terminal.journal import Journal
from terminal.readers.events import EventKind, EventQueue
from terminal.readers.pcsc import PcscMonitor, PcscReader, list_readers, match_reader
from terminal.readers.spec import ReaderSpecError, open_reader
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession
from tests.stacks import CARD_READER, SAM_READER, pcscd, plug  # noqa: F401

KIOSK_ID = bytes.fromhex("310000000090")


@pytest.fixture
def readers(pcscd):  # noqa: F811
    card_reader, sam_reader = PcscReader(CARD_READER), PcscReader(SAM_READER)
    yield card_reader, sam_reader
    card_reader.close()
    sam_reader.close()


@pytest.fixture
def terminal(plug, readers, clock, tmp_path: Path):  # noqa: F811
    """A card (saved to a file) and a PSAM, each in its own virtual reader, and a session."""
    card = demo_card(3, balance=5_000)
    card.save(tmp_path / "card.json")
    card_bridge = plug(card, reader=0)
    plug(demo_psam("310000000301"), reader=1)
    card_reader, sam_reader = readers
    session = TerminalSession(card_reader, sam_reader, clock=clock)
    session.start()
    return session, card, card_bridge


def test_pcscd_lists_both_virtual_readers(pcscd) -> None:  # noqa: F811
    names = list_readers()
    assert CARD_READER in names and SAM_READER in names


def test_reader_names_match_exactly_by_index_or_by_unique_part() -> None:
    names = ["ACS ACR1252 PICC 00 00", "ACS ACR1252 SAM 00 01"]
    assert match_reader("ACS ACR1252 SAM 00 01", names) == names[1]
    assert match_reader("1", names) == names[1]
    assert match_reader("picc", names) == names[0]
    assert match_reader("", names) == names[0]
    assert match_reader("Omnikey", names) is None
    with pytest.raises(ReaderUnavailable, match="several readers"):
        match_reader("ACR1252", names)


def test_spec_builds_pcsc_readers_with_options() -> None:
    reader = open_reader("pcsc:Virtual PCD 00 01;exclusive;t1")
    assert isinstance(reader, PcscReader)
    assert reader.exclusive and reader.wanted == "Virtual PCD 00 01"
    with pytest.raises(ReaderSpecError, match="unknown pcsc option"):
        open_reader("pcsc:x;turbo")


def test_read_card_end_to_end(terminal) -> None:
    session, card, _ = terminal
    atr = session.card_reader.connect()
    assert atr == card.atr
    assert session.card_reader.protocol == "T=1"
    snap = session.run(flows.read_card())
    assert snap.balance == 5_000
    assert snap.info.serial == card.serial


def test_purchase_end_to_end_updates_the_card_file(terminal, hsm, tmp_path: Path) -> None:
    session, _, _ = terminal
    with Journal(tmp_path / "pos.db") as journal:
        sale = PointOfSale(session, journal).charge(1_250)
    r = sale.result
    assert r is not None and sale.row.state == "settled"
    assert r.balance_after == 3_750 and r.mac2_verified
    assert hsm.purchase_tac_valid(
        issuer_id=r.pending.issuer_id,
        card_serial=r.pending.card_serial,
        amount=1_250,
        txn_type=r.pending.txn_type,
        terminal_id=r.pending.terminal_id,
        terminal_seq=r.pending.terminal_seq,
        when=r.pending.when,
        tac=r.tac,
    )
    from simulators.epurse_card import SoftEPurseCard

    assert SoftEPurseCard.load(tmp_path / "card.json").balance == 3_750


def test_load_end_to_end(terminal, load_host) -> None:
    session, card, _ = terminal
    info = session.run(flows.select())
    result = session.run(flows.load(info, KIOSK_ID, 2_000, session.now(), load_host))
    assert result.balance_after == 7_000
    assert card.balance == 7_000
    snap = session.run(flows.read_card())
    assert snap.log[0].amount == 2_000


def _purchase_until_debit(session: TerminalSession, amount: int):
    info = session.run(flows.select())
    pending = session.run(flows.prepare_purchase(info, session.sam, amount, session.now()))
    return pending


def test_card_pulled_after_debit_raises_card_removed_at_debit(terminal) -> None:
    """The card commits the DEBIT and leaves before answering: CardRemoved at that step."""
    session, card, bridge = terminal
    session.card_reader.connect()
    pending = _purchase_until_debit(session, 300)
    bridge.tear_at_ins(Ins.DEBIT_FOR_PURCHASE, AFTER)
    with pytest.raises(CardRemoved, match="80540100"):
        session.run(flows.complete_purchase(pending))
    assert card.balance == 4_700  # debited: the proof must come from GET TRANSACTION PROVE
    assert session.card_reader.wait_for_removal(3.0)
    assert not session.card_reader.card_present()
    with pytest.raises((NoCard, CardRemoved)):
        session.card_reader.connect()


def test_card_pulled_before_debit_leaves_the_balance(terminal) -> None:
    session, card, bridge = terminal
    session.card_reader.connect()
    pending = _purchase_until_debit(session, 300)
    bridge.tear_at_ins(Ins.DEBIT_FOR_PURCHASE, BEFORE)
    with pytest.raises(CardRemoved):
        session.run(flows.complete_purchase(pending))
    assert card.balance == 5_000


def test_card_back_after_a_tear_is_read_again(terminal, plug) -> None:  # noqa: F811
    session, card, bridge = terminal
    session.card_reader.connect()
    pending = _purchase_until_debit(session, 100)
    bridge.tear_at_ins(Ins.DEBIT_FOR_PURCHASE, AFTER)
    with pytest.raises(CardRemoved):
        session.run(flows.complete_purchase(pending))
    assert session.card_reader.wait_for_removal(3.0)
    plug(card, reader=0)
    session.card_reader.connect()
    snap = session.run(flows.read_card())
    assert snap.balance == 4_900
    assert snap.log[0].amount == 100 and snap.log[0].terminal_id == pending.terminal_id


class CountingCard:
    """Wraps a software card; answers SELECT with 61xx so the terminal must GET RESPONSE."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.atr = inner.atr
        self.get_responses = 0
        self._pending = b""

    def reset(self) -> None:
        self.inner.reset()

    def process(self, apdu: bytes) -> bytes:
        if apdu[1] == 0xC0:
            self.get_responses += 1
            data, self._pending = self._pending, b""
            return data + b"\x90\x00"
        response = self.inner.process(apdu)
        if apdu[1] == 0xA4 and response[-2:] == b"\x90\x00":
            self._pending = response[:-2]
            return bytes([0x61, len(self._pending)])
        return response


def test_61xx_is_answered_by_exactly_one_get_response(plug, readers) -> None:  # noqa: F811
    card = CountingCard(demo_card(4))
    plug(card, reader=0)
    reader = readers[0]
    reader.connect()
    response = Channel(reader).exchange(CommandAPDU(0x00, 0xA4, 0x04, 0x00, AID_TUNION_EP, le=256))
    assert response.data.startswith(b"\x6f")
    assert card.get_responses == 1


def test_shared_by_default_exclusive_on_request(plug, pcscd) -> None:  # noqa: F811
    plug(demo_card(5), reader=0)
    first, second = PcscReader(CARD_READER), PcscReader(CARD_READER)
    exclusive = PcscReader(CARD_READER, exclusive=True)
    try:
        first.connect()
        second.connect()  # two SHARED connections coexist
        with pytest.raises(TransportError, match=r"(?i)shar"):
            exclusive.connect()
        first.disconnect()
        second.disconnect()
        exclusive.connect()
        with pytest.raises(TransportError, match=r"(?i)shar"):
            first.connect()
    finally:
        for r in (first, second, exclusive):
            r.close()


def test_monitor_reports_insert_and_remove_with_atr(plug, pcscd) -> None:  # noqa: F811
    events = EventQueue()
    with PcscMonitor(events):
        assert events.wait_for(EventKind.READER_ADDED, CARD_READER)
        card = demo_card(6)
        bridge = plug(card, reader=0)
        inserted = events.wait_for(EventKind.CARD_INSERTED, CARD_READER)
        assert inserted is not None and inserted.atr == card.atr
        bridge.unplug()
        assert events.wait_for(EventKind.CARD_REMOVED, CARD_READER)


def test_wait_for_card_wakes_on_insert_and_cancel_wakes_early(plug, readers) -> None:  # noqa: F811
    reader = readers[0]
    assert not reader.card_present()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(reader.wait_for_card(20.0)))
    waiter.start()
    plug(demo_card(7), reader=0)
    waiter.join(5.0)
    assert result == [True]

    started = time.monotonic()
    waiter = threading.Thread(target=lambda: result.append(reader.wait_for_removal(20.0)))
    waiter.start()
    time.sleep(0.2)
    reader.cancel()
    waiter.join(5.0)
    assert result == [True, False]
    assert time.monotonic() - started < 5.0


def test_two_readers_at_once_card_and_sam_each_with_its_protocol(terminal) -> None:
    session, _, _ = terminal
    assert session.card_reader.connect() != session.sam_reader.connect()
    assert session.card_reader.protocol == "T=1"  # the card's ATR offers T=1
    assert session.sam_reader.protocol == "T=0"  # the PSAM's ATR offers T=0 only
    assert session.sam.terminal_id == bytes.fromhex("310000000301")


def test_forcing_a_protocol_the_card_lacks_is_a_clear_error(terminal) -> None:
    forced = open_reader(f"pcsc:{SAM_READER};t1")
    try:
        with pytest.raises(TransportError, match=r"(?i)connecting on 'Virtual PCD 00 01'.*proto"):
            forced.connect()
    finally:
        forced.close()
