"""The forwarder: drains the outbox to the clearing service, at least once, never in parallel.

A worker claims a slice of due outbox rows with a lease (PostgreSQL: ``SELECT ... FOR
UPDATE SKIP LOCKED``, so several gateway processes take disjoint slices without waiting
for each other), posts them with their idempotency keys, and records clearing's answer
for each. A crash after claiming leaves the lease to expire and another worker re-posts;
clearing recognises the keys and answers ``duplicate``, so nothing is settled twice.
Network failures put the slice back with exponential back-off and jitter.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.storage import POSTGRES, Cursor, Database, now_ms
from terminal.record import PURCHASE as RECORD
from terminal.retry import backoff_delay

log = logging.getLogger("gateway.forwarder")

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"


def _results(answer: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clearing's results for ``records``, one for each, in order, each naming its record's
    key and a status clearing has; any other answer is a failed post (ValueError), so a
    record is never marked by an answer that was not about it."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(records):
        raise ValueError("clearing answered no list of one result per record")
    for n, (res, rec) in enumerate(zip(results, records, strict=True)):
        if not isinstance(res, dict) or res.get("key") != rec["key"]:
            raise ValueError(f"clearing answered result {n} for another record than {rec['key']}")
        if res.get("status") not in (ACCEPTED, DUPLICATE, REJECTED):
            raise ValueError(f"clearing answered status {res.get('status')!r} for {rec['key']}")
    return results


@dataclass
class ForwarderStats:
    posted: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0
    last_error: str = ""
    last_success_ms: int = 0


@dataclass(frozen=True, slots=True)
class Claimed:
    outbox_id: int
    kind: str
    ref_id: int
    payload: str | None


def clearing_records(cur: Cursor, claimed: list[Claimed]) -> dict[int, dict[str, Any]]:
    """Clearing records for outbox rows, by outbox id: what the forwarder posts, and what
    reconciliation fingerprints as posted."""
    out: dict[int, dict[str, Any]] = {}
    by_kind: dict[str, dict[int, int]] = {}
    for c in claimed:
        by_kind.setdefault(c.kind, {})[c.ref_id] = c.outbox_id
    for kind, refs in by_kind.items():
        ids = list(refs)
        marks = ",".join("?" * len(ids))
        if kind == "txn":
            cur.execute(
                f"SELECT id, operator_id, {', '.join(RECORD.cleared)} FROM txn"
                f" WHERE id IN ({marks})",
                ids,
            )
            names = ("id", "operator_id", *RECORD.cleared)
            for r in cur.fetchall():
                row = dict(zip(names, r, strict=True))
                out[refs[row["id"]]] = RECORD.clearing_record(row, row["operator_id"])
        elif kind == "load":
            cur.execute(
                "SELECT id, terminal_id, operator_id, issuer_id, card_serial, online_atc,"
                " amount, balance_before, key_version, host_time, tac, reference, purpose"
                f" FROM loads WHERE id IN ({marks})",
                ids,
            )
            for r in cur.fetchall():
                out[refs[r[0]]] = {
                    "key": f"L:{r[3]}:{r[4]}:{r[5]}",
                    "kind": "load",
                    "terminal_id": r[1],
                    "operator_id": r[2],
                    "issuer_id": r[3],
                    "card_serial": r[4],
                    "online_atc": r[5],
                    "amount": r[6],
                    "balance_before": r[7],
                    "key_version": r[8],
                    "host_time": r[9],
                    "tac": r[10],
                    "reference": r[11],
                    "purpose": r[12],
                }
        else:
            # kinds added later (issuance records...) carry their clearing record as JSON
            for c in claimed:
                if c.kind == kind and c.payload:
                    out[c.outbox_id] = json.loads(c.payload)
    return out


@dataclass
class Forwarder:
    db: Database
    clearing_url: str
    gateway_id: str = "gateway"
    batch_size: int = 500
    lease_ms: int = 30_000
    poll_interval: float = 0.5
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    timeout: float = 10.0
    owner: str = field(default_factory=lambda: "fwd-" + secrets.token_hex(6))
    stats: ForwarderStats = field(default_factory=ForwarderStats)
    rng: random.Random = field(default_factory=random.Random)
    on_posted: Callable[[list[dict[str, Any]]], None] | None = None

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.clearing_url.rstrip("/"), timeout=self.timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    # -- outbox ---------------------------------------------------------------------------
    def claim(self) -> list[Claimed]:
        """Lease up to ``batch_size`` due rows for this worker."""
        now = now_ms()
        until = now + self.lease_ms
        with self.db.tx() as cur:
            if self.db.dialect == POSTGRES:
                cur.execute(
                    "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1"
                    " WHERE id IN (SELECT id FROM outbox WHERE posted_at IS NULL"
                    " AND available_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                    " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)"
                    " RETURNING id, kind, ref_id, payload",
                    (self.owner, until, now, now, self.batch_size),
                )
                rows = cur.fetchall()
            else:
                cur.execute(
                    "SELECT id, kind, ref_id, payload FROM outbox WHERE posted_at IS NULL"
                    " AND available_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                    " ORDER BY id LIMIT ?",
                    (now, now, self.batch_size),
                )
                rows = cur.fetchall()
                cur.executemany(
                    "UPDATE outbox SET lease_owner = ?, lease_until = ?,"
                    " attempts = attempts + 1 WHERE id = ?",
                    [(self.owner, until, r[0]) for r in rows],
                )
        return sorted((Claimed(*r) for r in rows), key=lambda c: c.outbox_id)

    def _complete(self, results: list[tuple[int, str, str]]) -> None:
        now = now_ms()
        with self.db.tx() as cur:
            cur.executemany(
                "UPDATE outbox SET posted_at = ?, outcome = ?, reason = ?, lease_owner = NULL,"
                " lease_until = NULL WHERE id = ? AND lease_owner = ? AND posted_at IS NULL",
                [(now, outcome, reason, oid, self.owner) for oid, outcome, reason in results],
            )

    def _release(self, claimed: list[Claimed], delay_s: float, reason: str) -> None:
        retry_at = now_ms() + int(delay_s * 1000)
        with self.db.tx() as cur:
            cur.executemany(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, available_at = ?,"
                " reason = ? WHERE id = ? AND lease_owner = ? AND posted_at IS NULL",
                [(retry_at, reason[:500], c.outbox_id, self.owner) for c in claimed],
            )

    def backoff(self) -> float:
        """Jittered exponential back-off after ``self._failures`` failures in a row."""
        return backoff_delay(self._failures, self.backoff_base, self.backoff_cap, self.rng)

    # -- one round ------------------------------------------------------------------------
    def run_once(self) -> int:
        """Claim, post and record one slice; returns how many records clearing answered."""
        claimed = self.claim()
        if not claimed:
            return 0
        with self.db.tx() as cur:
            records = clearing_records(cur, claimed)
        missing = [c for c in claimed if c.outbox_id not in records]
        if missing:
            self._complete([(c.outbox_id, REJECTED, "record not found") for c in missing])
            claimed = [c for c in claimed if c.outbox_id in records]
        body = {"gateway_id": self.gateway_id, "records": [records[c.outbox_id] for c in claimed]}
        try:
            resp = self._client.post(
                "/v1/records",
                json=body,
                headers={"Idempotency-Key": body["records"][0]["key"] + f"+{len(claimed)}"},
            )
            if resp.status_code != 200:
                raise httpx.HTTPStatusError(
                    f"clearing answered {resp.status_code}: {resp.text[:200]}",
                    request=resp.request,
                    response=resp,
                )
            results = _results(resp.json(), body["records"])
        except (httpx.HTTPError, ValueError) as exc:
            self._failures += 1
            self.stats.failures += 1
            self.stats.last_error = str(exc)[:300]
            delay = self.backoff()
            log.warning("clearing post failed (%s); retry in %.1fs", exc, delay)
            self._release(claimed, delay, f"post failed: {exc}")
            raise
        self._failures = 0
        done = []
        for c, res in zip(claimed, results, strict=True):
            status = res["status"]
            done.append((c.outbox_id, status, str(res.get("reason") or "")[:500]))
            self.stats.accepted += status == ACCEPTED
            self.stats.duplicates += status == DUPLICATE
            self.stats.rejected += status == REJECTED
        self._complete(done)
        self.stats.posted += len(done)
        self.stats.last_success_ms = now_ms()
        if self.on_posted is not None:
            self.on_posted(results)
        return len(done)

    def drain(self, max_rounds: int = 10_000) -> int:
        """Post until nothing is due (tests, the demo); returns how many were answered."""
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            if n == 0:
                break
            total += n
        return total

    # -- background thread ----------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except httpx.HTTPError:
                self._stop.wait(self.backoff())  # logged in run_once
                continue
            except Exception:
                log.exception("forwarder round failed; retrying after back-off")
                self._stop.wait(self.backoff())
                continue
            if n == 0:
                self._stop.wait(self.poll_interval)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.owner, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.close()
