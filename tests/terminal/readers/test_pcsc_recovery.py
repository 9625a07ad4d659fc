"""The PC/SC backend outliving pcscd restarts and readers that go away and come back."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from simulators.profiles import demo_card
from simulators.vpcd import VpcdBridge
from terminal.apdu.errors import ReaderUnavailable, TransportError
from terminal.epurse import flows
from terminal.readers.events import EventKind, EventQueue
from terminal.readers.pcsc import PcscMonitor, PcscReader
from terminal.roles.session import TerminalSession
from tests.stacks import CARD_READER, pcscd  # noqa: F401


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_reader_loop_recovers_from_a_pcscd_restart(pcscd, caplog) -> None:  # noqa: F811
    """A validator-style loop keeps reading the card across a pcscd restart and says so."""
    caplog.set_level(logging.WARNING, logger="terminal.readers.pcsc")
    card = demo_card(8, balance=4_321)
    bridge = VpcdBridge(card, reader=0, stay_plugged=True)
    bridge.plug()
    events = EventQueue()
    reader = PcscReader(CARD_READER, on_event=events)
    session = TerminalSession(reader)
    balances: list[int] = []
    failures: list[Exception] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                if not reader.wait_for_card(0.5):
                    continue
                reader.connect()
                session.run(flows.select())
                balances.append(session.run(flows.read_balance()))
                reader.wait_for_removal(0.1)
            except TransportError as exc:
                failures.append(exc)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        assert _wait_until(lambda: len(balances) >= 3, 10.0)
        old_pid = pcscd.pid
        pcscd.restart()
        assert pcscd.pid != old_pid
        before = len(balances)
        assert _wait_until(lambda: len(balances) >= before + 3, 15.0), failures
    finally:
        stop.set()
        reader.cancel()
        worker.join(5.0)
        bridge.unplug()
        reader.close()
    assert set(balances) == {4_321}
    kinds = [e.kind for e in events.history]
    assert EventKind.SERVICE_LOST in kinds and EventKind.SERVICE_RESTORED in kinds
    assert kinds.index(EventKind.SERVICE_LOST) < kinds.index(EventKind.SERVICE_RESTORED)
    assert "re-established" in caplog.text


def test_monitor_reports_service_lost_and_restored(pcscd) -> None:  # noqa: F811
    events = EventQueue()
    with PcscMonitor(events):
        assert events.wait_for(EventKind.READER_ADDED, CARD_READER)
        pcscd.restart()
        assert events.wait_for(EventKind.SERVICE_LOST, timeout=5.0)
        assert events.wait_for(EventKind.SERVICE_RESTORED, timeout=10.0)
        assert events.wait_for(EventKind.READER_ADDED, CARD_READER, timeout=5.0)


def test_wait_for_card_follows_a_reader_that_goes_and_comes_back(pcscd) -> None:  # noqa: F811
    """pcscd comes back without our reader (as after an unplug), then with it again."""
    card = demo_card(9)
    bridge = VpcdBridge(card, reader=0, stay_plugged=True)
    reader = PcscReader(CARD_READER)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(reader.wait_for_card(30.0)))
    try:
        pcscd.restart("Other Reader")
        assert not reader.card_present()
        assert reader.wait_for_removal(1.0)  # a missing reader holds no card
        with pytest.raises(ReaderUnavailable, match="no PC/SC reader"):
            reader.connect()
        waiter.start()
        bridge.plug()
        time.sleep(0.5)
        assert result == []  # the card sits in another reader: still waiting for ours
        pcscd.restart("Virtual PCD")
        waiter.join(15.0)
        assert result == [True]
        assert reader.connect() == card.atr
    finally:
        if pcscd.friendly_name != "Virtual PCD":
            pcscd.restart("Virtual PCD")
        reader.cancel()
        bridge.unplug()
        reader.close()
