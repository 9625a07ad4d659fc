"""Prometheus text metrics: ingest rate, outbox depth, clearing lag, forwarder outcomes.

Counters of this process live in ``IngestCounters``; depth, lag and outcomes are read
from the database at scrape time, so every gateway process reports the shared truth.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from gateway.carried_late import late_count
from gateway.conflicts import held_count
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
        conflicts = held_count(cur)
        late = late_count(cur)
        cur.execute("SELECT state, COUNT(*) FROM loads GROUP BY state")
        loads = dict(cur.fetchall())
    out: dict[str, float] = {
        "depth": int(depth),
        "lag_seconds": 0.0 if oldest is None else max(0.0, (now - int(oldest)) / 1000),
        "hotlist_version": int(hotlist_version),
        "conflicts_held": conflicts,
        "late_after_carry": late,
    }
    for k, v in outcomes.items():
        out[f"outcome:{k}"] = int(v)
    for k, v in loads.items():
        out[f"loads:{k}"] = int(v)
    return out


def _metric(name: str, kind: str, about: str, value: object) -> list[str]:
    """One metric in the text format: its HELP and TYPE lines and its sample; a dict value
    is one sample a key, labelled ``label="key"`` (``value`` is then ``(label, dict)``)."""
    lines = [f"# HELP {name} {about}", f"# TYPE {name} {kind}"]
    if isinstance(value, tuple):
        label, samples = value
        lines += [f'{name}{{{label}="{k}"}} {v}' for k, v in sorted(samples.items())]
    else:
        lines.append(f"{name} {value}")
    return lines


def _by(state: dict[str, float], prefix: str) -> dict[str, int]:
    """The counts of ``state`` whose keys start with ``prefix``, keyed by the rest."""
    return {k[len(prefix) :]: int(v) for k, v in state.items() if k.startswith(prefix)}


def render(counters: IngestCounters, db: Database, forwarder_failures: int = 0) -> str:
    state = outbox_state(db)
    lines = [
        *_metric(
            "ykt_gateway_ingested_transactions_total",
            "counter",
            "Transactions received, by outcome.",
            ("status", counters.transactions),
        ),
        *_metric(
            "ykt_gateway_batches_total",
            "counter",
            "Upload batches, accepted or refused.",
            ("result", counters.batches),
        ),
        *_metric(
            "ykt_gateway_ingest_rate",
            "gauge",
            "Transactions per second over the last minute.",
            f"{counters.rate():.3f}",
        ),
        *_metric(
            "ykt_gateway_outbox_depth",
            "gauge",
            "Records waiting to be posted to clearing.",
            int(state["depth"]),
        ),
        *_metric(
            "ykt_gateway_clearing_lag_seconds",
            "gauge",
            "Age of the oldest record not yet posted.",
            f"{state['lag_seconds']:.3f}",
        ),
        *_metric(
            "ykt_gateway_outbox_posted",
            "gauge",
            "Records posted to clearing, by clearing's answer.",
            ("outcome", _by(state, "outcome:")),
        ),
        *_metric(
            "ykt_gateway_loads", "gauge", "Online loads by state.", ("state", _by(state, "loads:"))
        ),
        *_metric(
            "ykt_gateway_hotlist_version",
            "gauge",
            "Latest hotlist version.",
            int(state["hotlist_version"]),
        ),
        *_metric(
            "ykt_gateway_conflicts_held",
            "gauge",
            "Records held aside: other content under an identity already held.",
            int(state["conflicts_held"]),
        ),
        *_metric(
            "ykt_gateway_late_after_carry",
            "gauge",
            "Purchases of replaced cards uploaded after their balance was carried.",
            int(state["late_after_carry"]),
        ),
        *_metric(
            "ykt_gateway_forwarder_failures_total",
            "counter",
            "Failed posts to clearing (this process).",
            forwarder_failures,
        ),
    ]
    return "\n".join(lines) + "\n"
