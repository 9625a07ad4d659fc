"""The validator's run loop: wait for a card, tap, wait for it to leave, repeat - forever.
Ride codes from scanners (``present``, from a ``ScanPump`` thread) are served on the same
loop, between cards, through ``Validator.scan``.

Any single card's failure is a red result, never the end of the loop; a reader fault is
reported and the loop waits and tries again. The journal is the one thing it cannot do
without: in idle time the loop checks that the journal file is still the one it opened
(every idle moment) and that it is undamaged (every ``verify_every`` seconds, when torn
debits whose card did not come back within ``torn_window`` are also made suspect), and a
journal that is removed, replaced, damaged or fails a write puts the validator out of
service: the loop stops taking cards and ``fault`` says why.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from terminal.apdu.errors import TransportError, YikatongError
from terminal.journal.journal import Journal, JournalError
from terminal.readers.base import Reader
from terminal.readers.scanner import Scan, ScanError
from terminal.roles.validator import TapOutcome, TapResult, Validator

log = logging.getLogger(__name__)


class TapGc:
    """The tap loop's garbage-collection policy: no automatic collection during a tap, the
    young generations collected in idle time, and everything alive after start-up frozen
    out of the collector's scans (``gc.freeze``), so a collection never walks the
    configuration, keys, tariffs and code. A full collection of a large heap would
    otherwise land inside a tap at a random moment (docs/scaling.md, "The tap path")."""

    def __init__(self) -> None:
        self.frozen = False

    def start(self) -> None:
        """After start-up: collect once, then freeze what is left (it lives for the process)."""
        gc.collect()
        gc.freeze()
        self.frozen = True

    @contextlib.contextmanager
    def tap(self) -> Iterator[None]:
        """Automatic collection off for the duration of one tap (left as it was after)."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was_enabled:
                gc.enable()

    def idle(self) -> None:
        """In idle time: collect the young generations (what the taps left behind)."""
        gc.collect(1)


PRIORITIES = ("normal", "high", "realtime")
HIGH_NICE = -10  # "high": ahead of every normal process on the CPU at each wake-up
REALTIME = 10  # "realtime": SCHED_FIFO priority, above every normal process, below the kernel's


class PlacementRefused(YikatongError):
    """The tap loop could not be given the CPU or priority its configuration asks for."""


@dataclass(frozen=True)
class TapPlacement:
    """Where and how urgently the tap loop's thread runs ([runtime] tap_cpu, tap_priority).
    A tap waits for the disk three times; each time it wakes, a process that shares its CPU
    can hold it for a whole time slice (several ms), which is what made taps slow under a CPU
    hog (docs/scaling.md, "The tap path"). Its own CPU or a priority above normal removes
    that wait."""

    cpu: int | None = None
    priority: str = "normal"

    def apply(self) -> None:
        """Pin and prioritise the calling thread (the tap loop's); threads it starts later
        inherit both. Refused loudly: a validator configured for it must not run without."""
        try:
            if self.cpu is not None:
                allowed = os.sched_getaffinity(0)
                if self.cpu not in allowed:
                    raise PlacementRefused(
                        f"[runtime] tap_cpu = {self.cpu}: this process may use CPUs "
                        f"{', '.join(map(str, sorted(allowed)))} only"
                    )
                os.sched_setaffinity(0, {self.cpu})
            if self.priority == "high":
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HIGH_NICE)
            elif self.priority == "realtime":
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME))
        except PermissionError:
            raise PlacementRefused(
                f"[runtime] tap_priority = {self.priority!r} needs CAP_SYS_NICE (systemd: "
                "AmbientCapabilities=CAP_SYS_NICE, or Nice=/CPUSchedulingPolicy= in the unit)"
            ) from None
        except OSError as exc:
            raise PlacementRefused(f"[runtime] could not be applied ({exc.strerror})") from None


# a torn debit whose card has not come back this long is made suspect ([journal] torn_window_hours)
TORN_WINDOW = timedelta(hours=24)


class JournalWatch:
    """Idle-time checks of a journal: its file identity every time; every ``every`` seconds
    its integrity, and its torn debits whose card has not come back within ``torn_window``
    by the device's clock ``now`` made suspect, so they are uploaded rather than left open
    for good (``Journal.suspect_unreturned``). ``check`` raises the JournalError that takes a
    device out of service."""

    def __init__(
        self,
        journal: Journal,
        every: float,
        *,
        now: Callable[[], datetime],
        torn_window: timedelta = TORN_WINDOW,
    ):
        self.journal = journal
        self.every = every
        self.now = now
        self.torn_window = torn_window
        self._verified = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if now - self._verified >= self.every:
            self._verified = now
            self.journal.verify()
            for row in self.journal.suspect_unreturned(self.now(), self.torn_window):
                log.warning(
                    "journal row %d (terminal %s seq %d, %d fen) made suspect: %s",
                    row.id,
                    row.terminal_id,
                    row.terminal_seq,
                    row.amount,
                    row.resolution,
                )
        else:
            self.journal.check_identity()


class TapLoop:
    def __init__(
        self,
        validator: Validator,
        reader: Reader,
        on_result: Callable[[TapResult], None],
        *,
        poll: float = 0.5,
        removal_timeout: float = 10.0,
        verify_every: float = 10.0,
        placement: TapPlacement | None = None,
        torn_window: timedelta = TORN_WINDOW,
    ):
        self.validator = validator
        self.placement = placement or TapPlacement()
        self.reader = reader
        self.on_result = on_result
        self.poll = poll
        self.removal_timeout = removal_timeout
        self.watch = JournalWatch(
            validator.journal, verify_every, now=validator.session.now, torn_window=torn_window
        )
        self.stop_event = threading.Event()
        self.taps = 0
        self.fault: str | None = None  # why the validator went out of service
        self._tapped = threading.Condition()
        self.gc = TapGc()
        self.codes: queue.SimpleQueue[Scan] = queue.SimpleQueue()

    def present(self, scan: Scan) -> None:
        """A scanned code (or why a frame carried none), served at the loop's next turn."""
        self.codes.put(scan)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self, max_taps: int | None = None) -> int:
        """Serve taps until stopped, out of service (``fault``) or ``max_taps`` are done;
        returns the number served."""
        self.placement.apply()
        if not self.gc.frozen:
            self.gc.start()
        while not self.stop_event.is_set() and (max_taps is None or self.taps < max_taps):
            if not self.codes.empty():
                if not self._scan(self.codes.get()):
                    break
                continue
            try:
                if not self.reader.wait_for_card(self.poll):
                    self._idle(after_tap=False)
                    continue
            except TransportError as exc:
                log.warning("reader %s: %s; retrying", self.reader.name, exc)
                self.stop_event.wait(self.poll)
                continue
            try:
                with self.gc.tap():
                    result = self.validator.tap()
            except JournalError as exc:
                self._out_of_service(str(exc))
                break
            if not self._served(result):
                break
            with contextlib.suppress(TransportError):
                self.reader.wait_for_removal(self.removal_timeout)
        return self.taps

    def _scan(self, scan: Scan) -> bool:
        """Serve one scanned code like a tap; a frame that carried none is a red result
        with its reason. Whether the loop may go on."""
        if isinstance(scan, ScanError):
            result = TapResult(
                TapOutcome.CODE_NOT_READ, f"code not read: {scan.detail}", reason=scan.reason
            )
        else:
            try:
                with self.gc.tap():
                    result = self.validator.scan(scan)
            except JournalError as exc:
                self._out_of_service(str(exc))
                return False
        return self._served(result)

    def _served(self, result: TapResult) -> bool:
        self.on_result(result)
        with self._tapped:
            self.taps += 1
            self._tapped.notify_all()
        return self._idle(after_tap=True)

    def _idle(self, *, after_tap: bool) -> bool:
        """Idle work while no card is being served: checkpoint after a tap, the journal's
        file identity every time, its integrity and its unreturned torn debits every
        ``verify_every`` seconds."""
        try:
            if after_tap:
                self.validator.journal.checkpoint()
                self.gc.idle()
            self.watch.check()
        except JournalError as exc:
            self._out_of_service(str(exc))
            return False
        return True

    def _out_of_service(self, reason: str) -> None:
        log.info("out of service: %s", reason)
        self.fault = reason
        self.stop_event.set()
        with self._tapped:
            self._tapped.notify_all()

    def wait_for_taps(self, n: int, timeout: float | None = None) -> bool:
        """Whether ``n`` taps were served (False also when the loop stopped first)."""
        with self._tapped:
            return self._tapped.wait_for(
                lambda: self.taps >= n or self.stop_event.is_set(), timeout
            ) and (self.taps >= n)
