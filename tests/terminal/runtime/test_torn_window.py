"""``[journal] torn_window_hours``: read and range-checked at start, and the window every
device runs by: a validator's tap loop and a counter device's idle time (a POS here) make a
torn debit suspect once its card has stayed away that long, by the device's own clock."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from simulators.emv_profiles import resident_card
from simulators.profiles import demo_card, demo_psam
from terminal.emv.commands import EmvIns
from terminal.journal import INTENT, SUSPECT, Journal
from terminal.readers.sim import AFTER, SimReader
from terminal.runtime.assembly import Parts, Terminal, assemble
from terminal.runtime.config import TerminalConfig, load_config
from terminal.runtime.pos import PosService
from terminal.runtime.service import Service
from tests.cli_kit import ykt
from tests.terminal.cli.run_kit import SIM_READERS, section, write_config
from tests.terminal.roles.fleet import DEBIT, counted_checks

WITHIN_6_H = "the card did not come back within 6 h to prove whether the debit went through"


@pytest.mark.parametrize("value", ["0", "-1", "73", "1.5", '"24"', "true"])
def test_a_window_out_of_range_refuses_the_start(tmp_path: Path, value: str) -> None:
    path = write_config(
        tmp_path / "bus.toml",
        section("terminal", role="bus"),
        SIM_READERS,
        f'[journal]\npath = "journal.db"\ntorn_window_hours = {value}\n',
    )
    r = ykt("run", str(path), check=False)
    assert r.returncode != 0 and r.stdout == ""
    assert f"{path}:10: journal.torn_window_hours must be a whole number of hours 1..72" in (
        r.stderr
    )
    assert "0 would report every torn tap at once" in r.stderr
    assert not (tmp_path / "journal.db").exists()  # nothing started, no card taken


def test_the_window_is_24_hours_unless_set(tmp_path: Path) -> None:
    plain = write_config(
        tmp_path / "a.toml", section("terminal", role="pos"), section("journal", path="j.db")
    )
    assert load_config(plain).torn_window == timedelta(hours=24)
    six = write_config(
        tmp_path / "b.toml",
        section("terminal", role="pos"),
        section("journal", path="j.db", torn_window_hours=6),
    )
    assert load_config(six).torn_window == timedelta(hours=6)


def until(check: Any, timeout: float = 10.0) -> bool:
    """Whether ``check()`` held within ``timeout`` seconds (asked every 20 ms)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if check():
            return True
        done.wait(0.02)
    return bool(check())


def running(service: Any) -> threading.Thread:
    worker = threading.Thread(target=service.run)
    worker.start()
    return worker


def integrity_rounds(device: Terminal, rounds: int) -> None:
    """Wait until the device's idle time has checked its journal ``rounds`` more times."""
    with counted_checks(device.journal) as wait:
        wait(rounds)


def test_a_validator_service_reports_a_torn_tap_after_its_configured_window(
    tmp_path: Path, clock: Any
) -> None:
    card = demo_card(1, balance=5_000)
    reader = SimReader(name="antenna")
    config = TerminalConfig(
        role="bus", journal=str(tmp_path / "bus.db"), journal_check=0.02, torn_window_hours=6
    )
    parts = Parts(card_reader=reader, sam_reader=SimReader(demo_psam("310000000201")), clock=clock)
    device = assemble(config, parts=parts)
    results: list[Any] = []
    service = Service(device, results.append, stop_after_taps=False)
    worker = running(service)
    try:
        reader.tear_at_ins(DEBIT, AFTER)
        reader.insert(card)
        assert service.loop.wait_for_taps(1, timeout=10) and not results[0].green
        assert card.balance == 4_800 and len(device.journal.open_rows()) == 1
        clock.advance(hours=5, minutes=59)
        integrity_rounds(device, 3)
        assert len(device.journal.open_rows()) == 1  # 24 h by default, 6 h here: not yet
        clock.advance(minutes=2)
        assert until(lambda: device.journal.open_rows() == [])
    finally:
        service.stop()
        worker.join(10)
    with Journal(config.journal) as journal:
        (row,) = journal.rows()
        assert row.state == SUSPECT and (row.resolution or "").startswith(WITHIN_6_H)
        assert journal.pending_upload() == 1
    assert service.loop.fault is None and service.loop.taps == 1


def test_a_pos_reports_its_torn_ep_sale_and_leaves_the_ec_sale_to_its_own_window(
    tmp_path: Path, clock: Any
) -> None:
    """An EC sale torn at GPO (one customer) and an EP sale torn at DEBIT (another): neither
    card comes back. The POS's idle time reports the EP sale once the configured window has
    passed; the EC sale waits for the next EMV card at the POS (its own window)."""
    ec_card, ep_card = resident_card(61), resident_card(62)
    reader = SimReader(name="pos antenna")
    config = TerminalConfig(
        role="pos", journal=str(tmp_path / "pos.db"), journal_check=0.02, torn_window_hours=6
    )
    parts = Parts(card_reader=reader, sam_reader=SimReader(demo_psam("310000000771")), clock=clock)
    device = assemble(config, parts=parts)
    service = PosService(device, lambda outcome: None, poll=0.02)
    worker = running(service)
    try:
        for card, pay, ins in (
            (ec_card, "ec", EmvIns.GET_PROCESSING_OPTIONS),
            (ep_card, "ep", DEBIT),
        ):
            reader.insert(card)
            reader.tear_at_ins(ins, AFTER)
            status, doc = service.post_sale({"amount_fen": 1_000, "pay": pay})
            assert (status, doc["ok"]) == (200, False), doc
            assert reader.card is None  # the customer left with the card
        journal = device.journal
        assert len(journal.open_rows()) == 1 and len(journal.open_ec_rows()) == 1
        clock.advance(hours=6, minutes=1)
        assert until(lambda: journal.open_rows() == [])
        integrity_rounds(device, 3)
        (ec_row,) = journal.ec_rows()
        assert (ec_row.state, ec_row.upload_seq) == (INTENT, None)
    finally:
        service.stop()
        worker.join(10)
    assert service.fault is None
    with Journal(config.journal) as journal:
        (row,) = journal.rows()
        assert row.state == SUSPECT and (row.resolution or "").startswith(WITHIN_6_H)
        assert [r.state for r in journal.ec_rows()] == [INTENT]
        assert journal.pending_upload() == 1  # the EP sale alone goes to the gateway
    assert ep_card.app("epurse").card.balance == 5_000 - 1_000  # it paid; now reported
    assert ec_card.app("emv").ec_balance == 10_000 - 1_000
