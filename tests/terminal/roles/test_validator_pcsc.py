"""The validator over the real PC/SC stack: card and PSAM in two vpcd readers of our pcscd.

Composite purchase (metro entry and exit) end to end through pyscard; a card pulled
mid-DEBIT through the real stack, resolved by the torn-transaction path on the next tap;
the validator's run loop across a pcscd restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.profiles import demo_card, demo_psam
from simulators.vpcd import AFTER, BEFORE
from terminal.epurse.layouts import MetroRecord
from terminal.fares import Mode, load_rules
from terminal.fares.engine import METRO_ENTERED, METRO_EXITED
from terminal.hotlist import Hotlist
from terminal.journal import SETTLED, Journal
from terminal.layout import parse
from terminal.readers.pcsc import PcscReader
from terminal.roles.loop import TapLoop
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator, ValidatorConfig
from tests.stacks import CARD_READER, SAM_READER, pcscd, plug, wait_reader_state  # noqa: F401
from tests.terminal.roles.fleet import DEBIT


class Gates:
    """Bus, metro entry and metro exit validators sharing one PC/SC card reader and PSAM."""

    def __init__(self, journal_path: Path, clock: object):
        self.card_reader = PcscReader(CARD_READER)
        self.sam_reader = PcscReader(SAM_READER)
        self.journal = Journal(journal_path, clock=clock)
        session = TerminalSession(self.card_reader, self.sam_reader, clock=clock)  # type: ignore[arg-type]
        session.start()
        rules, hotlist = load_rules(), Hotlist()

        def gate(mode: Mode, station: str) -> Validator:
            return Validator(
                session, self.journal, hotlist, ValidatorConfig(mode, rules, station=station)
            )

        self.bus = gate(Mode.BUS, "0001")
        self.entry = gate(Mode.METRO_ENTRY, "0101")
        self.exit = gate(Mode.METRO_EXIT, "0103")

    def close(self) -> None:
        self.card_reader.close()
        self.sam_reader.close()


@pytest.fixture
def gates(plug, tmp_path: Path, clock) -> Iterator[Gates]:  # noqa: F811
    plug(demo_psam("310000000701"), reader=1)
    g = Gates(tmp_path / "journal.db", clock)
    yield g
    g.close()


def test_metro_entry_and_exit_composite_purchase_over_pcsc(gates, plug, clock) -> None:  # noqa: F811
    card = demo_card(61, balance=5_000)
    bridge = plug(card, reader=0)
    entry = gates.entry.tap()
    assert entry.green and entry.fare == 0, entry
    assert parse(MetroRecord, bytes.fromhex(card.state.capp["2701"]), "2701").status == (
        METRO_ENTERED
    )
    clock.advance(minutes=25)
    leave = gates.exit.tap()
    assert leave.green and leave.fare == 400 and leave.balance == 4_600, leave
    record = parse(MetroRecord, bytes.fromhex(card.state.capp["2701"]), "2701")
    assert record.status == METRO_EXITED and record.actual_amount == 400
    assert card.balance == 4_600
    assert gates.journal.totals()["settled"] == (2, 400)
    assert bridge.apdus > 10


@pytest.mark.parametrize("when", [AFTER, BEFORE])
def test_card_pulled_mid_debit_then_the_next_tap_resolves_it(gates, plug, clock, when) -> None:  # noqa: F811
    """The card leaves the real reader at DEBIT; the next tap settles (card debited) or
    voids (not debited) the open journal row, and the card pays exactly once."""
    card = demo_card(62, balance=5_000)
    bridge = plug(card, reader=0)
    bridge.tear_at_ins(DEBIT, when)
    first = gates.bus.tap()
    assert not first.green and "tap again" in first.message, first
    assert len(gates.journal.open_rows()) == 1
    assert card.balance == (4_800 if when == AFTER else 5_000)
    assert wait_reader_state(CARD_READER, present=False)

    clock.advance(seconds=5)
    plug(card, reader=0)
    retry = gates.bus.tap()
    assert retry.green, retry
    assert gates.journal.open_rows() == []
    if when == AFTER:
        assert retry.message == "paid (interrupted tap completed)"
        assert retry.recovered[0].outcome == SETTLED
    assert card.balance == 4_800  # charged once either way
    settled_count, settled_amount = gates.journal.totals()["settled"]
    assert (settled_count, settled_amount) == (1, 200)


def test_validator_loop_recovers_from_a_pcscd_restart(pcscd, plug, tmp_path: Path, clock) -> None:  # noqa: F811
    """The validator's run loop keeps serving across a pcscd restart: the PSAM (left in
    its slot) is powered anew, the session notices and starts it again."""
    plug(demo_psam("310000000702"), reader=1, stay_plugged=True)
    gates = Gates(tmp_path / "journal.db", clock)
    results: list = []
    loop = TapLoop(gates.bus, gates.card_reader, results.append, poll=0.2, removal_timeout=0.5)
    worker = threading.Thread(target=loop.run, daemon=True)
    worker.start()
    card = demo_card(63, balance=5_000)
    try:
        bridge = plug(card, reader=0)
        assert loop.wait_for_taps(1, timeout=10.0)
        assert results[0].green and card.balance == 4_800
        bridge.unplug()
        assert wait_reader_state(CARD_READER, present=False)

        pcscd.restart()
        clock.advance(minutes=5)
        plug(card, reader=0)
        deadline = time.monotonic() + 20.0
        while sum(r.green for r in results) < 2 and time.monotonic() < deadline:
            loop.wait_for_taps(len(results) + 1, timeout=1.0)
        assert sum(r.green for r in results) == 2, [r.line() for r in results]
        assert card.balance == 4_600
        assert gates.journal.totals()["settled"] == (2, 400)
        assert gates.journal.open_rows() == []
        assert gates.sam_reader.connection > 1  # the PSAM was connected (and started) anew
    finally:
        loop.stop()
        worker.join(10.0)
        gates.close()
