"""The run loop serves taps as cards come and go, and survives a card that fails."""

import os
import threading

import pytest

from terminal.roles.loop import PlacementRefused, TapLoop, TapPlacement
from tests.terminal.roles.fleet import Fleet


def test_loop_serves_cards_until_stopped(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(3)
    results = []
    loop = TapLoop(f.bus, f.reader, results.append, poll=0.05, removal_timeout=2)
    worker = threading.Thread(target=loop.run)
    worker.start()
    for i, card in enumerate([*f.cards, f.cards[0]]):
        f.reader.insert(card)
        assert loop.wait_for_taps(i + 1, timeout=5)
        f.reader.remove()
        clock.advance(minutes=5)
    loop.stop()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert [r.green for r in results] == [True] * 4
    assert sum(r.fare for r in results) == 800


def test_the_tap_thread_runs_on_its_configured_cpu_ahead_of_normal_processes(  # type: ignore[no-untyped-def]
    tmp_path, clock
) -> None:
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1)
    cpu = max(os.sched_getaffinity(0))
    seen = []

    def on_result(result) -> None:  # type: ignore[no-untyped-def]
        seen.append((result.green, os.sched_getaffinity(0), os.sched_getscheduler(0)))

    loop = TapLoop(f.bus, f.reader, on_result, poll=0.05, placement=TapPlacement(cpu, "realtime"))
    before = os.sched_getaffinity(0)
    worker = threading.Thread(target=loop.run)
    worker.start()
    f.reader.insert(f.cards[0])
    assert loop.wait_for_taps(1, timeout=5)
    loop.stop()
    worker.join(timeout=5)
    assert seen == [(True, {cpu}, os.SCHED_FIFO)]
    assert os.sched_getaffinity(0) == before and os.sched_getscheduler(0) == os.SCHED_OTHER


def test_a_cpu_the_process_may_not_use_is_refused_before_any_card(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1)
    f.reader.insert(f.cards[0])
    missing = max(os.sched_getaffinity(0)) + 1
    loop = TapLoop(f.bus, f.reader, lambda r: None, placement=TapPlacement(cpu=missing))
    with pytest.raises(PlacementRefused, match=f"tap_cpu = {missing}: this process may use"):
        loop.run(max_taps=1)
    assert loop.taps == 0 and f.journal.rows() == []
    assert f.cards[0].balance == f.opening[f.cards[0].serial]
