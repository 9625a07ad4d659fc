"""The run loop serves taps as cards come and go, and survives a card that fails."""

import threading

from terminal.roles.loop import TapLoop
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
