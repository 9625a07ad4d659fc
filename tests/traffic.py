"""Real terminal traffic for gateway tests: software cards, a software PSAM, a journal.

Each tap is a real purchase (card crypto, PSAM MAC1/MAC2) journaled as the validator
does it: the intent before DEBIT, the proof after. So every uploaded row carries a TAC
that clearing can verify against the card's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import DEMO_ISSUERS, demo_card, demo_psam
from terminal.journal import Journal, JournalRow
from terminal.readers.sim import SimReader
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession


def make_cards(count: int, *, balance: int = 100_000, first: int = 1) -> list[SoftEPurseCard]:
    """Cards alternating between the demo issuers, each with ``balance`` fen."""
    issuers = list(DEMO_ISSUERS)
    return [
        demo_card(first + i, balance=balance, issuer=issuers[i % len(issuers)])
        for i in range(count)
    ]


class JournaledTerminal:
    """A POS terminal (PSAM ``terminal_id``) that journals every purchase to ``path``."""

    def __init__(self, terminal_id: str, path: Path | str, clock: Callable[[], datetime]):
        self.terminal_id = terminal_id
        self.reader = SimReader(name="antenna")
        self.session = TerminalSession(self.reader, SimReader(demo_psam(terminal_id)), clock=clock)
        self.journal = Journal(path, clock=clock)

    def tap(self, card: SoftEPurseCard, amount: int) -> JournalRow:
        """One purchase through the journaled debit path: MAC1, intent, DEBIT, proof."""
        self.reader.insert(card)
        return PointOfSale(self.session, self.journal).charge(amount).row

    def close(self) -> None:
        self.journal.close()
