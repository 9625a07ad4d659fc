"""Store-and-forward from the journal to the gateway.

Rows leave in upload order, in batches bounded by count and by the age of the oldest
waiting row. A row is marked uploaded only after the gateway acknowledged it (stored or
duplicate: the gateway holds this record), so a crash or an outage at any point only
means the same rows are sent again, which the gateway ignores. A ``conflict`` (the gateway
holds other content under the row's identity, a sequence number used twice) is parked.
Failures back off exponentially with jitter, so a fleet coming back after an outage
does not hammer the gateway in step. Nothing about the schedule needs to survive a
restart: the journal is the queue.

A batch whose content the gateway refuses (400, 409, 413, 422: sending it again cannot
help) is split in halves until the refused rows stand alone; those are parked in the
journal with the gateway's reason (kept, no longer sent, counted in ``stats.parked``)
and the rows after them go on. Network errors and 5xx are retried with back-off.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from terminal.journal import EcJournalRow, Journal, JournalError, JournalRow
from terminal.journal.journal import QrJournalRow
from terminal.retry import backoff_delay
from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable

log = logging.getLogger("terminal.uplink")

Row = JournalRow | EcJournalRow | QrJournalRow


CONTENT_REFUSALS = (400, 409, 413, 422)


def refuses_content(exc: GatewayRefused) -> bool:
    """The gateway refused what was sent (not who sent it, and not a race worth retrying)."""
    return exc.status in CONTENT_REFUSALS and not exc.retry_later


@dataclass
class UplinkStats:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    failures: int = 0
    refusals: int = 0
    parked: int = 0  # rows the gateway refused, kept aside in the journal
    last_error: str = ""
    last_parked: str = ""  # the gateway's reason for the last row parked


@dataclass
class Uplink:
    """Upload one journal through per-terminal gateway clients (PSAM terminal id -> client)."""

    journal: Journal
    clients: Mapping[str, GatewayClient]
    batch_size: int = 500
    max_age: timedelta = timedelta(seconds=60)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    clock: Callable[[], datetime] = datetime.now
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    stats: UplinkStats = field(default_factory=UplinkStats)

    def __post_init__(self) -> None:
        self.failures = 0  # consecutive
        self._stop = threading.Event()

    # -- what to send ---------------------------------------------------------------------
    def _waiting(self) -> list[Row]:
        """The waiting rows of the kind whose oldest row is first in upload order."""
        kinds: list[list[Row]] = [
            list(self.journal.export(limit=self.batch_size)),
            list(self.journal.export_ec(limit=self.batch_size)),
            list(self.journal.export_qr(limit=self.batch_size)),
        ]
        kinds = [rows for rows in kinds if rows]
        return min(kinds, key=lambda rows: rows[0].upload_seq or 0) if kinds else []

    def next_batch(self) -> list[Row]:
        """The oldest waiting rows of one kind and one terminal id, at most ``batch_size``."""
        rows = self._waiting()
        if not rows:
            return []
        first = rows[0].terminal_id
        batch = []
        for row in rows:
            if row.terminal_id != first:
                break
            batch.append(row)
        return batch

    def due(self) -> bool:
        """A full batch is waiting, or the oldest waiting row is older than ``max_age``."""
        rows = self._waiting()
        if not rows:
            return False
        if len(rows) >= self.batch_size:
            return True
        return self.clock() - rows[0].txn_time >= self.max_age

    @staticmethod
    def batch_id(rows: list[Row]) -> str:
        """Stable for the same rows, so a retry is recognised as the same batch."""
        h = hashlib.sha256(rows[0].terminal_id.encode())
        for row in rows:
            h.update(f",{row.upload_seq}".encode())
        return f"{rows[0].terminal_id}-{rows[0].upload_seq}-{len(rows)}-{h.hexdigest()[:16]}"

    def backoff(self) -> float:
        """Seconds to wait after ``self.failures`` failures in a row: exponential, jittered."""
        return backoff_delay(self.failures, self.backoff_base, self.backoff_cap, self.rng)

    # -- one upload -----------------------------------------------------------------------
    def send_batch(self) -> int:
        """Upload the next batch; returns how many rows left the queue, acknowledged or
        parked (0: none waiting). Raises GatewayUnavailable, or GatewayRefused for a refusal
        of the terminal rather than of the rows (credentials, role); nothing is marked then."""
        rows = self.next_batch()
        if not rows:
            return 0
        terminal_id = rows[0].terminal_id
        client = self.clients.get(terminal_id)
        if client is None:
            raise GatewayRefused(0, "no_credentials", f"no gateway credentials for {terminal_id}")
        return self._send(client, rows)

    def _send(self, client: GatewayClient, rows: list[Row]) -> int:
        terminal_id = rows[0].terminal_id
        kind = rows[0].kind
        seq_name = kind.identity[-1]
        by_seq = {row.seq: row.upload_seq for row in rows}
        try:
            ack = client.upload(
                self.batch_id(rows),
                terminal_id,
                [row.upload_record() for row in rows],
                kind.name,
            )
        except GatewayUnavailable as exc:
            self.failures += 1
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            raise
        except GatewayRefused as exc:
            if refuses_content(exc):
                if len(rows) > 1:  # find the refused rows: the others still go
                    half = len(rows) // 2
                    return self._send(client, rows[:half]) + self._send(client, rows[half:])
                return self._park(rows[0], exc)
            self.failures += 1
            self.stats.refusals += 1
            self.stats.last_error = str(exc)
            log.error("gateway refused batch of %d rows from %s: %s", len(rows), terminal_id, exc)
            raise
        acked, conflicted, stored = [], [], []
        for seq, status in self._acks(ack, self.batch_id(rows), terminal_id, seq_name).items():
            if seq in by_seq and status in ("stored", "duplicate"):
                acked.append(by_seq[seq])
                if status == "stored":
                    stored.append(seq)
            elif seq in by_seq and status == "conflict":
                conflicted.append(by_seq[seq])
        if len(acked) + len(conflicted) != len(rows):
            self.failures += 1
            self.stats.failures += 1
            raise GatewayUnavailable(
                f"acknowledgement covers {len(acked) + len(conflicted)} of {len(rows)} rows;"
                " will resend"
            )
        self.journal.mark_uploaded(acked)
        for row in rows:
            if row.upload_seq in conflicted:
                self._park_conflict(row)
        self.failures = 0
        self.stats.batches += 1
        self.stats.stored += len(stored)
        self.stats.duplicates += len(acked) - len(stored)
        return len(rows)

    def _acks(
        self, ack: object, batch_id: str, terminal_id: str, seq_name: str
    ) -> dict[int, object]:
        """Sequence -> status from an answer that is this batch's acknowledgement; anything
        else (another batch's or terminal's, a record answered twice, not an acknowledgement
        at all) marks nothing."""
        items = ack.get("acks") if isinstance(ack, dict) else None
        why = ""
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and type(i.get(seq_name)) is int for i in items
        ):
            why = "the answer is not an acknowledgement"
        elif len({i[seq_name] for i in items}) != len(items):
            why = "the answer acknowledges a record twice"
        elif ack.get("terminal_id") != terminal_id:
            why = f"the answer acknowledges terminal {str(ack.get('terminal_id'))[:40]}"
        elif ack.get("batch_id") != batch_id:
            why = f"the answer acknowledges batch {str(ack.get('batch_id'))[:80]}"
        if why:
            self.failures += 1
            self.stats.failures += 1
            self.stats.last_error = f"{why}, not {terminal_id}'s batch {batch_id}; will resend"
            raise GatewayUnavailable(self.stats.last_error)
        return {i[seq_name]: i.get("status") for i in items}

    def _park_conflict(self, row: Row) -> None:
        """The gateway holds other content under this row's identity: the row (money a card
        paid) is not stored there, so it is parked, not marked sent. The usual cause is a
        sequence number used twice, by a journal and PSAM restored from a backup."""
        self.stats.conflicts += 1
        self._park(
            row,
            GatewayRefused(
                409,
                "conflict",
                f"the gateway holds other content for {row.terminal_id} seq {row.seq}: the"
                " sequence number was reused (journal or PSAM restored from a backup?)",
            ),
        )

    def _park(self, row: Row, exc: GatewayRefused) -> int:
        reason = f"{exc.status} {exc.code}: {exc.reason}"
        assert row.upload_seq is not None
        self.journal.mark_parked([row.upload_seq], reason)
        self.stats.parked += 1
        self.stats.refusals += 1
        self.stats.last_parked = self.stats.last_error = reason
        log.error(
            "gateway refused %s %s %s; parked in the journal, not resent: %s",
            row.terminal_id,
            row.kind.name,
            row.seq,
            reason,
        )
        return 1

    def drain(self, *, max_batches: int = 1_000_000) -> int:
        """Send batches until nothing waits (parked rows stay behind); raises on the first
        failure. Returns how many rows left the queue, acknowledged or parked."""
        total = 0
        for _ in range(max_batches):
            n = self.send_batch()
            if n == 0:
                break
            total += n
        return total

    # -- the loop a terminal runs ---------------------------------------------------------
    def step(self, *, force: bool = False) -> float:
        """One scheduling step: upload what is due; returns how long to wait before the next."""
        if not force and not self.due():
            return min(1.0, self.max_age.total_seconds())
        try:
            self.drain()
        except (GatewayUnavailable, GatewayRefused) as exc:
            delay = self.backoff()
            log.info("upload failed (%s); next try in %.1fs", exc, delay)
            return delay
        return 0.0 if self.due() else min(1.0, self.max_age.total_seconds())

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Upload forever (or until ``until()`` or ``stop()``), sleeping between steps."""
        while not self._stop.is_set() and not (until is not None and until()):
            self.sleep(self.step())

    def stop(self) -> None:
        self._stop.set()


class UploadWorker:
    """An ``Uplink`` run in a background thread: uploads what is due, backs off (capped)
    while the gateway is down, and on ``close`` sends what still waits within a bounded
    time. Nothing is lost by stopping at any point: the journal is the queue."""

    def __init__(self, uplink: Uplink):
        self.uplink = uplink
        self.last_upload: datetime | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one sender at a time (the thread or a flush)
        self._thread: threading.Thread | None = None

    def start(self) -> UploadWorker:
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                before = self.uplink.stats.batches
                try:
                    delay = self.uplink.step()
                except JournalError as exc:  # the terminal goes out of service over it
                    log.error("upload stopped: %s", exc)
                    return
                if self.uplink.stats.batches != before:
                    self.last_upload = datetime.now()
            self._stop.wait(delay)

    def flush(self, timeout: float) -> int:
        """Send what waits, for at most ``timeout`` seconds (each request is bounded by the
        client's own timeout); the rows still waiting afterwards."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return self.uplink.journal.pending_upload()
        try:
            while time.monotonic() < deadline:
                try:
                    if self.uplink.send_batch() == 0:
                        break
                    self.last_upload = datetime.now()
                except (GatewayUnavailable, GatewayRefused) as exc:
                    log.warning("upload before exit failed: %s", exc)
                    break
        finally:
            self._lock.release()
        return self.uplink.journal.pending_upload()

    def close(self, flush_timeout: float) -> int:
        """Stop the thread, then flush, all within ``flush_timeout`` (plus at most one
        request in flight); the rows still waiting."""
        deadline = time.monotonic() + flush_timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(flush_timeout)
        return self.flush(deadline - time.monotonic())
