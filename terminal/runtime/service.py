"""A validator device at work: serve cards, upload and sync in the background, report status,
stop cleanly.

``Service.run`` serves taps with the ``TapLoop`` until ``stop()`` (SIGTERM in ``ykt run``),
the configured number of simulated taps (``ykt validator``), or the journal failing. A stop
lets the tap in progress finish; then the hotlist sync stops, what waits is uploaded within
``flush_timeout`` and the files are closed. Nothing is lost by any stop, even SIGKILL: the
journal is the queue and the next start carries on from it.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from terminal.readers.scanner import ScanPump
from terminal.roles.loop import TapLoop
from terminal.roles.validator import TapResult
from terminal.runtime.assembly import StartRefused, Terminal
from terminal.runtime.status import Action, Reporter, StatusServer
from terminal.words import tap_words


@dataclass
class ServiceResult:
    green: int
    red: int
    fault: str | None  # why the device went out of service (None: it stopped normally)
    waiting: int  # rows still waiting for upload after the final flush


class Service:
    """One assembled validator run as a service."""

    def __init__(
        self,
        terminal: Terminal,
        on_result: Callable[[TapResult], None],
        *,
        stop_after_taps: bool = True,
        tap_interval: float = 0.0,
        on_start: Callable[[], None] | None = None,
    ):
        """``stop_after_taps``: with simulated taps, stop when they are done (else serve on
        until ``stop()``); ``tap_interval``: seconds between simulated taps; ``on_start``:
        called once background work has started (the hotlist synced) before the first tap."""
        self.terminal = terminal
        self.on_result = on_result
        self.stop_after_taps = stop_after_taps
        self.tap_interval = tap_interval
        self.on_start = on_start
        self.green = 0
        self.red = 0
        self.started = datetime.now()
        self.loop = TapLoop(
            terminal.role,
            terminal.reader,
            self._result,
            poll=0.2,
            verify_every=terminal.config.journal_check,
            placement=terminal.config.tap,
            torn_window=terminal.config.torn_window,
        )
        self.status: StatusServer | None = None
        self.terminal_id = terminal.session.sam.terminal_id_hex  # read once, on this thread

    def _result(self, result: TapResult) -> None:
        if result.green:
            self.green += 1
        else:
            self.red += 1
        self.on_result(result)

    def stop(self) -> None:
        """Stop after the tap in progress (safe from a signal handler: sets an event)."""
        self.loop.stop()

    def _feed(self) -> None:
        """Tap the software cards in random order, ``taps`` times."""
        config = self.terminal.config
        reader = self.terminal.card_reader
        rng = random.Random(config.seed)
        for i in range(config.taps or 0):
            if self.loop.stop_event.wait(self.tap_interval if i else 0):
                return
            before = self.loop.taps  # read before the card goes in: the loop may be quick
            reader.insert(rng.choice(self.terminal.cards))  # type: ignore[attr-defined]
            served = self.loop.wait_for_taps(before + 1)
            reader.remove()  # type: ignore[attr-defined]
            if not served:
                return
        if self.stop_after_taps:
            self.loop.stop()

    def run(self) -> ServiceResult:
        terminal = self.terminal
        config = terminal.config
        self.status = start_status(terminal, self)
        terminal.start_background()
        if self.on_start is not None:
            self.on_start()
        pumps = [ScanPump(s, self.loop.present).start() for s in terminal.code_sources]
        feeder = None
        if terminal.cards and config.taps:
            feeder = threading.Thread(target=self._feed, name="sim-taps", daemon=True)
            feeder.start()
        try:
            self.loop.run()
        finally:
            self.loop.stop()
            if feeder is not None:
                feeder.join(5)
            for pump in pumps:
                pump.stop()
            if self.status is not None:
                self.status.stop()
            waiting = terminal.close()
        return ServiceResult(self.green, self.red, self.loop.fault, waiting)

    # -- status ---------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        """What /health answers: the device's journal and upload state, and the taps."""
        doc = device_health(self.terminal, self.terminal_id, self.loop.fault, self.started)
        doc.update(taps=self.loop.taps, green=self.green, red=self.red)
        return doc

    def metrics(self) -> str:
        """/metrics in the Prometheus text format."""
        h = self.health()
        return prometheus(
            self.terminal,
            h,
            {
                "ykt_taps_total": h["taps"],
                "ykt_taps_green_total": h["green"],
                "ykt_taps_red_total": h["red"],
            },
        )


def start_status(
    terminal: Terminal, reporter: Reporter, actions: dict[str, Action] | None = None
) -> StatusServer | None:
    """The status server on ``[status] port`` (None when off); a port that cannot be
    bound closes the device and refuses the start (StartRefused)."""
    config = terminal.config
    if not config.status_port:
        return None
    try:
        return StatusServer(reporter, config.status_port, actions=actions).start()
    except OSError as exc:
        terminal.close(flush_timeout=0)
        raise StartRefused(
            f"{config.source}: status port {config.status_port}: {exc.strerror or exc}"
        ) from None


def device_health(
    terminal: Terminal, terminal_id: str, fault: str | None, started: datetime
) -> dict[str, object]:
    """The /health fields every role has: is the journal usable, what is open, waiting,
    parked, when the last upload went and why the last one failed."""
    journal = terminal.journal
    fault = fault or journal.failure
    doc: dict[str, object] = {
        "status": "ok" if fault is None else "out_of_service",
        "terminal_id": terminal_id,
        "role": terminal.config.role,
        "journal_ok": fault is None,
        "hotlist_version": terminal.hotlist.version,
        "started": started.isoformat(timespec="seconds"),
    }
    if fault is not None:
        doc["reason"] = fault
        return doc
    uploader = terminal.uploader
    doc.update(
        open_rows=len(journal.open_rows()),
        waiting_upload=journal.pending_upload(),
        parked=len(journal.parked()),
        last_upload=(
            uploader.last_upload.isoformat(timespec="seconds")
            if uploader is not None and uploader.last_upload is not None
            else None
        ),
        upload_error=uploader.uplink.stats.last_error if uploader is not None else "",
    )
    return doc


def prometheus(terminal: Terminal, health: dict[str, object], role: dict[str, object]) -> str:
    """/metrics in the Prometheus text format: the device's gauges and the role's counters."""
    stats = terminal.uploader.uplink.stats if terminal.uploader else None
    values = {
        "ykt_up": 1 if health["journal_ok"] else 0,
        **role,
        "ykt_journal_open_rows": health.get("open_rows", 0),
        "ykt_upload_waiting_rows": health.get("waiting_upload", 0),
        "ykt_upload_parked_rows": health.get("parked", 0),
        "ykt_upload_batches_total": stats.batches if stats else 0,
        "ykt_upload_failures_total": stats.failures if stats else 0,
        "ykt_hotlist_version": health["hotlist_version"],
    }
    label = json.dumps(str(health["terminal_id"]))
    return "".join(f"{k}{{terminal={label}}} {v}\n" for k, v in values.items())


def log_line(terminal_id: str, result: TapResult, mode: str | None = None) -> str:
    """One structured JSON line per transaction (what a log collector indexes): technical
    fields, and ``text`` the operator's sentence in the terminal's language."""
    row = result.row
    return json.dumps(
        {
            "time": datetime.now().isoformat(timespec="milliseconds"),
            "terminal_id": terminal_id,
            "green": result.green,
            "outcome": str(result.outcome),
            "message": result.message,
            "card": result.card_number,
            "fare": result.fare,
            "balance": result.balance,
            "ms": round(result.elapsed_ms, 1),
            "seq": row.terminal_seq if row is not None else None,
            "state": row.state if row is not None else None,
            "sw": f"{result.sw:04X}" if result.sw is not None else None,
            "text": tap_words(result, mode),
        },
        ensure_ascii=False,
    )
