"""A real terminal process killed with SIGKILL at random moments, restarted each time:
after the last restart settles every card, the money invariant holds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import demo_card, demo_psam
from terminal.journal import Journal
from tests.terminal.roles.fleet import check_invariants

ROOT = Path(__file__).resolve().parents[3]


def start(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.terminal.roles.crashy_terminal", str(workdir), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    opening, opening_atc = {}, {}
    for i in range(6):
        card = demo_card(i + 1, balance=50_000)
        card.save(tmp_path / f"card-{i}.json")
        opening[card.serial], opening_atc[card.serial] = card.balance, 0
    demo_psam("310000000201").save(tmp_path / "psam.json")
    rng = random.Random(9)
    kills = 0
    for _ in range(6):
        proc = start(tmp_path)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        kills += 1
    settle = start(tmp_path, "--settle")
    out, err = settle.communicate(timeout=60)
    assert settle.returncode == 0, err
    assert kills == 6 and len(out.splitlines()) == 6
    cards = [SoftEPurseCard.load(p) for p in sorted(tmp_path.glob("card-*.json"))]
    journal = Journal(tmp_path / "journal.db")
    journal.check_integrity()
    assert journal.open_rows() == []
    assert sum(c.state.offline_atc for c in cards) > 20  # real traffic happened between kills
    check_invariants(journal, cards, opening, opening_atc)
