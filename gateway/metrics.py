"""Prometheus text metrics: ingest rate, outbox depth, clearing lag, forwarder outcomes.

Counters of this process live in ``IngestCounters``; depth, lag and outcomes are read
from the database at scrape time, so every gateway process reports the shared truth.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from gateway.storage import Database, now_ms

RATE_WINDOW_S = 60.0


class IngestCounters:
    """Per-process ingest counters and a sliding one-minute rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transactions: dict[str, int] = {"stored": 0, "duplicate": 0, "conflict": 0}
        self.batches: dict[str, int] = {"accepted": 0, "refused": 0}
        self._recent: deque[tuple[float, int]] = deque()

    def batch(self, counts: dict[str, int]) -> None:
        now = time.monotonic()
        with self._lock:
            self.batches["accepted"] += 1
            for k, v in counts.items():
                self.transactions[k] = self.transactions.get(k, 0) + v
            self._recent.append((now, sum(counts.values())))
            self._trim(now)

    def refused(self) -> None:
        with self._lock:
            self.batches["refused"] += 1

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()

    def rate(self) -> float:
        """Transactions per second received over the last minute."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return sum(n for _, n in self._recent) / RATE_WINDOW_S


def outbox_state(db: Database) -> dict[str, float]:
    """Depth, oldest pending age (clearing lag) and outcome counts, from the database."""
    now = now_ms()
    with db.tx() as cur:
        cur.execute("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE posted_at IS NULL")
        depth, oldest = cur.fetchone()
        cur.execute(
            "SELECT outcome, COUNT(*) FROM outbox WHERE posted_at IS NOT NULL GROUP BY outcome"
        )
        outcomes = dict(cur.fetchall())
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM hotlist_changes")
        hotlist_version = cur.fetchone()[0]
        cur.execute("SELECT state, COUNT(*) FROM loads GROUP BY state")
        loads = dict(cur.fetchall())
    out: dict[str, float] = {
        "depth": int(depth),
        "lag_seconds": 0.0 if oldest is None else max(0.0, (now - int(oldest)) / 1000),
        "hotlist_version": int(hotlist_version),
    }
    for k, v in outcomes.items():
        out[f"outcome:{k}"] = int(v)
    for k, v in loads.items():
        out[f"loads:{k}"] = int(v)
    return out


def render(counters: IngestCounters, db: Database, forwarder_failures: int = 0) -> str:
    state = outbox_state(db)
    lines = [
        "# HELP ykt_gateway_ingested_transactions_total Transactions received, by outcome.",
        "# TYPE ykt_gateway_ingested_transactions_total counter",
    ]
    for k, v in sorted(counters.transactions.items()):
        lines.append(f'ykt_gateway_ingested_transactions_total{{status="{k}"}} {v}')
    lines += [
        "# HELP ykt_gateway_batches_total Upload batches, accepted or refused.",
        "# TYPE ykt_gateway_batches_total counter",
    ]
    for k, v in sorted(counters.batches.items()):
        lines.append(f'ykt_gateway_batches_total{{result="{k}"}} {v}')
    lines += [
        "# HELP ykt_gateway_ingest_rate Transactions per second over the last minute.",
        "# TYPE ykt_gateway_ingest_rate gauge",
        f"ykt_gateway_ingest_rate {counters.rate():.3f}",
        "# HELP ykt_gateway_outbox_depth Records waiting to be posted to clearing.",
        "# TYPE ykt_gateway_outbox_depth gauge",
        f"ykt_gateway_outbox_depth {int(state['depth'])}",
        "# HELP ykt_gateway_clearing_lag_seconds Age of the oldest record not yet posted.",
        "# TYPE ykt_gateway_clearing_lag_seconds gauge",
        f"ykt_gateway_clearing_lag_seconds {state['lag_seconds']:.3f}",
        "# HELP ykt_gateway_outbox_posted Records posted to clearing, by clearing's answer.",
        "# TYPE ykt_gateway_outbox_posted gauge",
    ]
    for key, v in sorted(state.items()):
        if key.startswith("outcome:"):
            lines.append(f'ykt_gateway_outbox_posted{{outcome="{key[8:]}"}} {int(v)}')
    lines += [
        "# HELP ykt_gateway_loads Online loads by state.",
        "# TYPE ykt_gateway_loads gauge",
    ]
    for key, v in sorted(state.items()):
        if key.startswith("loads:"):
            lines.append(f'ykt_gateway_loads{{state="{key[6:]}"}} {int(v)}')
    lines += [
        "# HELP ykt_gateway_hotlist_version Latest hotlist version.",
        "# TYPE ykt_gateway_hotlist_version gauge",
        f"ykt_gateway_hotlist_version {int(state['hotlist_version'])}",
        "# HELP ykt_gateway_forwarder_failures_total Failed posts to clearing (this process).",
        "# TYPE ykt_gateway_forwarder_failures_total counter",
        f"ykt_gateway_forwarder_failures_total {forwarder_failures}",
    ]
    return "\n".join(lines) + "\n"
