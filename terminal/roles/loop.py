"""The validator's run loop: wait for a card, tap, wait for it to leave, repeat - forever.

Any single card's failure is a red result, never the end of the loop; a reader fault is
reported and the loop waits and tries again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from terminal.apdu.errors import TransportError
from terminal.readers.base import Reader
from terminal.roles.validator import TapResult, Validator

log = logging.getLogger(__name__)


class TapLoop:
    def __init__(
        self,
        validator: Validator,
        reader: Reader,
        on_result: Callable[[TapResult], None],
        *,
        poll: float = 0.5,
        removal_timeout: float = 10.0,
    ):
        self.validator = validator
        self.reader = reader
        self.on_result = on_result
        self.poll = poll
        self.removal_timeout = removal_timeout
        self.stop_event = threading.Event()
        self.taps = 0
        self._tapped = threading.Condition()

    def stop(self) -> None:
        self.stop_event.set()

    def run(self, max_taps: int | None = None) -> int:
        """Serve taps until stopped (or ``max_taps`` are done); returns the number served."""
        while not self.stop_event.is_set() and (max_taps is None or self.taps < max_taps):
            try:
                if not self.reader.wait_for_card(self.poll):
                    continue
            except TransportError as exc:
                log.warning("reader %s: %s; retrying", self.reader.name, exc)
                self.stop_event.wait(self.poll)
                continue
            result = self.validator.tap()
            self.on_result(result)
            with self._tapped:
                self.taps += 1
                self._tapped.notify_all()
            self.validator.journal.checkpoint()  # idle work while the rider walks on
            with contextlib.suppress(TransportError):
                self.reader.wait_for_removal(self.removal_timeout)
        return self.taps

    def wait_for_taps(self, n: int, timeout: float | None = None) -> bool:
        with self._tapped:
            return self._tapped.wait_for(lambda: self.taps >= n, timeout)
