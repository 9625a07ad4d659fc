"""A small fleet of software cards and validators sharing a journal, plus the money invariant.

Each validator is built by the one assembly from a ``TerminalConfig``, as ``ykt run``
builds it, with the fleet's antenna, journal, hotlist and clock given as shared parts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import demo_card, demo_psam
from terminal.epurse.commands import Ins
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import SETTLED, SUSPECT, Journal
from terminal.readers.sim import AFTER, SimCard, SimReader, TearRule
from terminal.roles.transport import Ride
from terminal.roles.validator import Validator
from terminal.runtime.assembly import Parts, assemble
from terminal.runtime.config import TerminalConfig
from terminal.sam.commands import SamIns

RULES = load_rules()  # the demo fares every assembled validator here runs on


CREDIT = Ins.CREDIT_FOR_LOAD
DEBIT = Ins.DEBIT_FOR_PURCHASE
CREDIT_SAM = SamIns.CREDIT_SAM_FOR_PURCHASE  # the PSAM's MAC2 check


def is_debit(apdu: bytes) -> bool:
    return apdu[:2] == bytes([0x80, DEBIT])


def record_commands(card: SimCard) -> list[bytes]:
    """Every command the card is sent from now on (its ``process`` is wrapped to list them)."""
    seen: list[bytes] = []
    original = card.process

    def spy(apdu: bytes) -> bytes:
        seen.append(apdu)
        return original(apdu)

    card.process = spy  # type: ignore[method-assign]
    return seen


def tear_after_nth(n: int) -> tuple[TearRule, list[int]]:
    """A tear rule pulling the card right after it acts on the ``n``-th command from now
    (0 = the next), and the INS bytes of the commands the rule has seen."""
    seen: list[int] = []

    def rule(apdu: bytes) -> str | None:
        seen.append(apdu[1])
        return AFTER if len(seen) == n + 1 else None

    return rule, seen


class Answering:
    """A card or PSAM that answers one command (by INS) with a fixed status word."""

    def __init__(self, inner: SimCard, ins: int, sw: bytes):
        self.inner, self.ins, self.sw = inner, ins, sw

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def reset(self) -> None:
        getattr(self.inner, "reset", lambda: None)()

    def process(self, apdu: bytes) -> bytes:
        if apdu[1] == self.ins:
            return self.sw
        return self.inner.process(apdu)


@dataclass
class Fleet:
    journal_path: Path
    clock: object
    autocheckpoint: bool = True
    cards: list[SoftEPurseCard] = field(default_factory=list)
    opening: dict[bytes, int] = field(default_factory=dict)
    opening_atc: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reader = SimReader(name="antenna")
        self.hotlist = Hotlist()
        self.psams = {
            tid: demo_psam(tid) for tid in ("310000000201", "310000000301", "310000000302")
        }
        self.restart()

    def add_cards(self, n: int, balance: int = 5_000, **kw: object) -> None:
        for _i in range(n):
            c = demo_card(len(self.cards) + 1, balance=balance, **kw)  # type: ignore[arg-type]
            self.cards.append(c)
            self.opening[c.serial] = c.balance
            self.opening_atc[c.serial] = c.state.offline_atc

    def restart(self) -> None:
        """A terminal restart: new process state, same journal file, cards and PSAMs."""
        for p in self.psams.values():
            p.reset()
        self.journal = Journal(
            self.journal_path, clock=self.clock, autocheckpoint=self.autocheckpoint
        )
        self.journal.check_integrity()

        self.bus = self.gate(Mode.BUS, "0001", tid="310000000201")
        self.entry = self.gate(Mode.METRO_ENTRY, "0101", tid="310000000301")
        self.exit = self.gate(Mode.METRO_EXIT, "0103", tid="310000000302")

    def gate(
        self, mode: Mode, station: str = "0101", ride: Ride | None = None, tid: str | None = None
    ) -> Validator:
        """A validator of any mode (taxi, bike, coach, parking too) on its own PSAM, sharing
        the fleet's reader, journal and hotlist."""
        tid = tid or f"3100000004{len(self.psams):02d}"
        psam = self.psams.setdefault(tid, demo_psam(tid))
        ride = ride or Ride()
        config = TerminalConfig(
            role=mode.value,
            journal=str(self.journal_path),
            station=station,
            meter=ride.meter,
            driver=ride.driver,
            vehicle=ride.vehicle,
            destination=ride.destination,
        )
        parts = Parts(
            card_reader=self.reader,
            sam_reader=SimReader(psam),
            journal=self.journal,
            hotlist=self.hotlist,
            clock=self.clock,  # type: ignore[arg-type]
        )
        role: Validator = assemble(config, parts=parts).role
        return role

    def tap(self, card: SoftEPurseCard, gate: Validator):  # type: ignore[no-untyped-def]
        self.reader.insert(card)
        card.reset()
        return gate.tap()

    def check_invariants(self) -> None:
        check_invariants(self.journal, self.cards, self.opening, self.opening_atc)


def check_invariants(
    journal: Journal,
    cards: list[SoftEPurseCard],
    opening: dict[bytes, int],
    opening_atc: dict[bytes, int],
) -> None:
    """Sum of card balance changes = sum of settled journal amounts; nothing twice;
    every debit on a card has its settled row."""
    rows = [r for r in journal.rows() if r.state in (SETTLED, SUSPECT)]
    by_card: dict[str, list] = {}
    for r in rows:
        by_card.setdefault(r.card_serial, []).append(r)
    total_change = sum(opening[c.serial] - c.balance for c in cards)
    assert total_change == sum(r.amount for r in rows)
    for c in cards:
        mine = by_card.get(c.serial.hex().upper(), [])
        assert opening[c.serial] - c.balance == sum(r.amount for r in mine)
        debits = c.state.offline_atc - opening_atc[c.serial]
        assert debits == len(mine), f"card {c.serial.hex()} debited {debits}x, rows {len(mine)}"
        assert sorted(r.card_atc for r in mine) == list(
            range(opening_atc[c.serial], c.state.offline_atc)
        )
    keys = [(r.terminal_id, r.terminal_seq) for r in journal.rows()]
    assert len(keys) == len(set(keys))


@contextmanager
def counted_checks(journal: Journal) -> Iterator[Callable[[int], None]]:
    """Count the journal's integrity checks (idle time runs them); yields ``wait(rounds)``,
    which returns once that many more have run (an assertion error after 10 s each)."""
    checked = threading.Semaphore(0)
    verify = journal.verify

    def counted() -> None:
        verify()
        checked.release()

    journal.verify = counted  # type: ignore[method-assign]
    try:
        yield lambda rounds: assert_rounds(checked, rounds)
    finally:
        journal.verify = verify  # type: ignore[method-assign]


def assert_rounds(checked: threading.Semaphore, rounds: int) -> None:
    assert all(checked.acquire(timeout=10) for _ in range(rounds))
