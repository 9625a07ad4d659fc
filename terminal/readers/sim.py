"""In-process simulator backend: a software card object sits in a slot, no I/O at all.

A card is anything with ``atr: bytes`` and ``process(apdu: bytes) -> bytes`` (the
simulators package provides them). Fault injection lets tests pull the card away
before or after the card acts on a chosen command.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from terminal.apdu.errors import CardRemoved, NoCard


class SimCard(Protocol):
    atr: bytes

    def process(self, apdu: bytes) -> bytes: ...


BEFORE = "before"  # the card never sees the command
AFTER = "after"  # the card acts on it, the answer is lost

TearRule = Callable[[bytes], str | None]


def at_ins(ins: int, when: str = BEFORE) -> TearRule:
    """A tear rule that pulls the card (``when``) at the next command with this INS byte."""
    return lambda apdu: when if len(apdu) > 1 and apdu[1] == ins else None


class SimReader:
    """A slot holding at most one in-process card."""

    def __init__(self, card: SimCard | None = None, name: str = "sim"):
        self.name = name
        self._card = card
        self._powered = False
        self._tear: Callable[[bytes], str | None] | None = None
        self._changed = threading.Condition()
        self.exchanges = 0
        self._generation = 0  # bumps on every insert and removal
        self._connected_generation = -1

    # -- slot ---------------------------------------------------------------------------
    @property
    def card(self) -> SimCard | None:
        return self._card

    def insert(self, card: SimCard) -> None:
        with self._changed:
            self._card = card
            self._powered = False
            self._generation += 1
            self._changed.notify_all()

    def remove(self) -> SimCard | None:
        with self._changed:
            card, self._card = self._card, None
            self._powered = False
            self._generation += 1
            self._changed.notify_all()
            return card

    def tear_when(self, rule: Callable[[bytes], str | None] | None) -> None:
        """Install a fault rule: called with each command, returns BEFORE/AFTER to pull the card."""
        self._tear = rule

    def tear_at_ins(self, ins: int, when: str = BEFORE) -> None:
        """Pull the card at the next command with this INS byte (BEFORE or AFTER it acts)."""
        self._tear = at_ins(ins, when)

    def tear_at(self, index: int, when: str = BEFORE) -> None:
        """Pull the card at the ``index``-th exchange from now (0 = the next one)."""
        target = self.exchanges + index

        def rule(_apdu: bytes) -> str | None:
            return when if self.exchanges == target else None

        self._tear = rule

    # -- Reader protocol ----------------------------------------------------------------
    def connect(self) -> bytes:
        if self._card is None:
            raise NoCard(f"no card in {self.name}")
        self._powered = True
        self._connected_generation = self._generation
        reset = getattr(self._card, "reset", None)
        if reset is not None:
            reset()
        return self._card.atr

    @property
    def atr(self) -> bytes:
        if self._card is None:
            raise NoCard(f"no card in {self.name}")
        return self._card.atr

    def transmit(self, apdu: bytes) -> bytes:
        card = self._card
        if card is None:
            raise NoCard(f"no card in {self.name}")
        if not self._powered:
            self.connect()
        when = self._tear(apdu) if self._tear is not None else None
        self.exchanges += 1
        if when == BEFORE:
            self._tear = None
            self.remove()
            raise CardRemoved(f"card pulled from {self.name} before {apdu[:4].hex().upper()}")
        response = card.process(apdu)
        if when == AFTER:
            self._tear = None
            self.remove()
            raise CardRemoved(f"card pulled from {self.name} after {apdu[:4].hex().upper()}")
        return response

    def disconnect(self) -> None:
        self._powered = False

    def card_present(self) -> bool:
        return self._card is not None

    def wait_for_card(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._card is not None, timeout)

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        """Wait until the card last connected has gone (even if another took its place)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._card is None or self._generation != self._connected_generation,
                timeout,
            )
