"""Card and reader events that watching backends (PC/SC, NFC) report to a callback or queue.

A validator loop reacts to ``CARD_INSERTED`` instead of polling, notices a reader that
was unplugged (``READER_REMOVED``) or a PC/SC daemon that restarted (``SERVICE_LOST`` then
``SERVICE_RESTORED``), and carries on.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from enum import StrEnum


class EventKind(StrEnum):
    CARD_INSERTED = "card-inserted"
    CARD_REMOVED = "card-removed"
    READER_ADDED = "reader-added"
    READER_REMOVED = "reader-removed"
    SERVICE_LOST = "service-lost"
    SERVICE_RESTORED = "service-restored"


@dataclass(frozen=True)
class ReaderEvent:
    kind: EventKind
    reader: str = ""
    atr: bytes = b""
    at: float = field(default_factory=time.monotonic)

    def __str__(self) -> str:
        atr = f" ATR {self.atr.hex().upper()}" if self.atr else ""
        where = f" {self.reader!r}" if self.reader else ""
        return f"{self.kind.value}{where}{atr}"


class EventQueue:
    """A thread-safe queue of events with a blocking, filtered wait (handy for loops and tests)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[ReaderEvent] = queue.Queue()
        self.history: list[ReaderEvent] = []

    def __call__(self, event: ReaderEvent) -> None:
        self.history.append(event)
        self._queue.put(event)

    def get(self, timeout: float | None = None) -> ReaderEvent | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(
        self, kind: EventKind, reader: str | None = None, timeout: float = 5.0
    ) -> ReaderEvent | None:
        """The next event of ``kind`` (for ``reader`` if given) within ``timeout``, else None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            event = self.get(left)
            if event is None:
                return None
            if event.kind == kind and (reader is None or event.reader == reader):
                return event
