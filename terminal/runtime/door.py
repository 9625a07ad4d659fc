"""A door reader at work: serve cards at its point, keep the allow list and hotlist in step
and upload events in the background, report status, stop cleanly.

Shared by ``ykt validator --mode door`` and ``ykt run`` with role ``door``. The door decides
offline from its local store; the background sync brings the hotlist and allow list up to
the gateway's versions and sends the events not yet acknowledged, every
``hotlist.sync_interval`` seconds (a gateway that is down is retried at the next round).
A stop lets the tap in progress finish, then sends what waits within ``flush_timeout``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from terminal.apdu.errors import TransportError
from terminal.campus.door import Decision, sync_access, upload_events
from terminal.runtime.assembly import DoorDevice, StartRefused
from terminal.runtime.status import StatusServer
from terminal.uplink.hotlist import HotlistSync
from terminal.words import door_line, door_words

log = logging.getLogger(__name__)


class DoorSync(HotlistSync):
    """The hotlist and allow list synced, and the events uploaded, in one round."""

    def __init__(self, device: DoorDevice):
        assert device.client is not None
        super().__init__(device.client, device.door.hotlist, device.config.hotlist_sync)
        self.device = device
        self.terminal_id = device.door.session.sam.terminal_id_hex
        self.uploaded = 0

    name = "door"

    def round(self) -> None:
        door = self.device.door
        sync_access(self.client, door.access, door.hotlist)
        self.uploaded += upload_events(self.client, door.journal, self.terminal_id)

    def flush(self, timeout: float) -> int:
        """Send what waits until acknowledged or ``timeout`` seconds passed; events left."""
        deadline = time.monotonic() + timeout
        while self.device.door.journal.count(uploaded=False):
            if self.sync_once() or time.monotonic() >= deadline:
                break
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return self.device.door.journal.count(uploaded=False)


@dataclass
class DoorResult:
    granted: int
    refused: int
    waiting: int  # events still waiting for upload after the final flush


class DoorService:
    """One door reader run as a service: a card in the field is presented at the point."""

    def __init__(
        self,
        device: DoorDevice,
        on_decision: Callable[[Decision], None],
        *,
        stop_after_taps: bool = True,
        on_start: Callable[[], None] | None = None,
    ):
        self.device = device
        self.on_decision = on_decision
        self.stop_after_taps = stop_after_taps
        self.on_start = on_start
        self.sync = DoorSync(device) if device.client is not None else None
        self.stop_event = threading.Event()
        self.granted = self.refused = 0
        self.taps = 0
        self._tapped = threading.Condition()
        self.status: StatusServer | None = None
        self.started = datetime.now()
        self.terminal_id = device.door.session.sam.terminal_id_hex

    def stop(self) -> None:
        """Stop after the tap in progress (safe from a signal handler: sets an event)."""
        self.stop_event.set()
        with self._tapped:
            self._tapped.notify_all()

    def _serve(self) -> None:
        reader = self.device.reader
        while not self.stop_event.is_set():
            try:
                if not reader.wait_for_card(0.2):
                    continue
            except TransportError as exc:
                log.warning("reader %s: %s; retrying", reader.name, exc)
                self.stop_event.wait(0.2)
                continue
            decision = self.device.door.present(self.device.point)
            if decision.granted:
                self.granted += 1
            else:
                self.refused += 1
            self.on_decision(decision)
            with self._tapped:
                self.taps += 1
                self._tapped.notify_all()
            with contextlib.suppress(TransportError):
                reader.wait_for_removal(10.0)

    def _feed(self) -> None:
        """Tap the software cards in random order, ``taps`` times."""
        config, reader = self.device.config, self.device.card_reader
        rng = random.Random(config.seed)
        for i in range(config.taps or 0):
            if self.stop_event.wait(config.tap_interval if i else 0):
                return
            with self._tapped:
                before = self.taps
            reader.insert(rng.choice(self.device.cards))  # type: ignore[attr-defined]
            with self._tapped:
                self._tapped.wait_for(lambda n=before: self.taps > n or self.stop_event.is_set())
            reader.remove()  # type: ignore[attr-defined]
        if self.stop_after_taps:
            self.stop()

    def run(self) -> DoorResult:
        config = self.device.config
        if config.status_port:
            try:
                self.status = StatusServer(self, config.status_port).start()
            except OSError as exc:
                self.device.close()
                raise StartRefused(
                    f"{config.source}: status port {config.status_port}: {exc.strerror or exc}"
                ) from None
        if self.sync is not None:
            self.sync.start()
        if self.on_start is not None:
            self.on_start()
        feeder = None
        if self.device.cards and config.taps:
            feeder = threading.Thread(target=self._feed, name="sim-taps", daemon=True)
            feeder.start()
        try:
            self._serve()
        finally:
            self.stop()
            if feeder is not None:
                feeder.join(5)
            if self.status is not None:
                self.status.stop()
            waiting = self.device.door.journal.count(uploaded=False)
            if self.sync is not None:
                self.sync.stop()
                waiting = self.sync.flush(config.flush_timeout)
            self.device.close()
        return DoorResult(self.granted, self.refused, waiting)

    # -- status ---------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        door = self.device.door
        return {
            "status": "ok",
            "terminal_id": self.terminal_id,
            "role": "door",
            "point": self.device.point,
            "journal_ok": True,
            "hotlist_version": door.hotlist.version,
            "access_version": door.access.version,
            "waiting_upload": door.journal.count(uploaded=False),
            "last_sync": (
                self.sync.last_sync.isoformat(timespec="seconds")
                if self.sync is not None and self.sync.last_sync is not None
                else None
            ),
            "sync_error": self.sync.last_error if self.sync is not None else "",
            "started": self.started.isoformat(timespec="seconds"),
            "taps": self.taps,
            "granted": self.granted,
            "refused": self.refused,
        }

    def metrics(self) -> str:
        h = self.health()
        values = {
            "ykt_up": 1,
            "ykt_door_taps_total": h["taps"],
            "ykt_door_granted_total": h["granted"],
            "ykt_door_refused_total": h["refused"],
            "ykt_door_events_waiting": h["waiting_upload"],
            "ykt_hotlist_version": h["hotlist_version"],
            "ykt_access_version": h["access_version"],
        }
        label = json.dumps(self.terminal_id)
        return "".join(f"{k}{{terminal={label}}} {v}\n" for k, v in values.items())


def decision_line(terminal_id: str, decision: Decision) -> str:
    """One JSON line per decision (what a log collector indexes): ``reason`` in English,
    ``text`` the operator's sentence in the terminal's language."""
    return json.dumps(
        {
            "time": datetime.now().isoformat(timespec="milliseconds"),
            "terminal_id": terminal_id,
            "point": decision.point,
            "granted": decision.granted,
            "reason": decision.reason,
            "person": decision.person_no,
            "card": decision.card_serial,
            "event_seq": decision.event_seq,
            "text": door_words(decision),
        },
        ensure_ascii=False,
    )


def decision_text(decision: Decision) -> str:
    """The operator's line for a decision (``ykt validator --mode door``), in the terminal's
    language."""
    return door_line(decision)
