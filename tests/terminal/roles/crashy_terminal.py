"""A terminal process for the kill -9 test: taps file-backed software cards at a bus
validator forever (or once each with --settle), journaling to a file."""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

from simulators.epurse_card import SoftEPurseCard
from simulators.psam import SoftPsam
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator, ValidatorConfig


class StepClock:
    """Each run starts where the journal left off, so time never goes backwards."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=97)
        return self.now


def main(workdir: str, mode: str) -> None:
    d = Path(workdir)
    cards = [SoftEPurseCard.load(p) for p in sorted(d.glob("card-*.json"))]
    journal = Journal(d / "journal.db")
    rows = journal.rows()
    start = max((r.txn_time for r in rows), default=datetime(2026, 11, 28, 6, 0))
    clock = StepClock(start + timedelta(hours=1))
    reader = SimReader(name="antenna")
    session = TerminalSession(reader, SimReader(SoftPsam.load(d / "psam.json")), clock=clock)
    session.start()
    v = Validator(session, journal, Hotlist(), ValidatorConfig(mode=Mode.BUS, rules=load_rules()))
    rng = random.Random()
    if mode == "--settle":
        for card in cards:
            reader.insert(card)
            print(v.tap().line(), flush=True)
        return
    print("ready", flush=True)
    while True:
        card = rng.choice(cards)
        reader.insert(card)
        if rng.random() < 0.3:  # a rider pulling the card away at a random point
            reader.tear_at(rng.randrange(10), rng.choice(["before", "after"]))
        v.tap()
        reader.tear_when(None)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
