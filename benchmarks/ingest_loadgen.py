"""Load generator for gateway ingest, run as its own process (the benchmark starts it).

Builds every upload body before the clock starts (batches of well-formed records with
unique terminal sequence numbers), then posts them from ``--concurrency`` threads over
keep-alive connections and prints one JSON line: transactions/s and batch-ack latency
percentiles. ``--raw-db`` skips HTTP and stores the same batches straight through the
gateway's storage code: the database's own ceiling, as a baseline. ``--pairs N`` with both
``--url`` and ``--raw-db`` runs N pairs of blocks of ``--batches`` each, one HTTP ingest block
and one raw-store block a pair, in the order AB BA AB ... (each side on its own database,
the same bodies in the same order), so the benchmark can take the share pair by pair: drift
between two whole runs minutes apart (page cache, checkpoints, another process) then lands
in both sides of a pair alike.

Each timed span is announced on stdout, ``start NAME`` before its clock starts and ``stop
NAME`` after it stops (NAME ``timed`` for a single run, ``ingest`` or ``raw`` for a block);
with ``--handshake`` the generator then waits for a line on stdin, so the benchmark can
sample the other processes' CPU at the span's edges, outside the span's own clock.

The line also carries the generator's own CPU per batch over the timed phase (getrusage:
it shares the two cores with the gateway and the database here, where real validators are
other machines) and the requests sent over each keep-alive connection by its local port,
so the benchmark can tell which gateway worker served them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import resource
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from terminal.epurse.commands import TxnType
from terminal.record import PURCHASE

# one purchase's values; each record varies the identity, the card, amount, counter and time
BASE_VALUES: dict[str, Any] = {
    "terminal_id": bytes(6),
    "terminal_seq": 0,
    "issuer_id": bytes.fromhex("02902900FFFFFFFF"),
    "card_serial": bytes(8),
    "txn_type": TxnType.EP_PURCHASE,
    "amount": 200,
    "balance_before": 10_000,
    "card_atc": 1,
    "key_version": 1,
    "algorithm": 0,
    "txn_time": datetime(2026, 11, 28, 6, 0, 0),
    "state": "settled",
    "tac": bytes.fromhex("1A2B3C4D"),
    "mac2": bytes.fromhex("5E6F7A8B"),
    "mac2_verified": True,
    "resolution": "online",
    "context": {"line": "71", "station": "0203"},
}


def make_bodies(terminal_id: str, batches: int, size: int, first_seq: int) -> list[bytes]:
    start = BASE_VALUES["txn_time"]
    bodies = []
    seq = first_seq
    for b in range(batches):
        records = []
        for _ in range(size):
            values = dict(
                BASE_VALUES,
                terminal_id=bytes.fromhex(terminal_id),
                terminal_seq=seq,
                card_serial=bytes.fromhex(f"02900000{seq % 50_000:08d}"),
                amount=100 + seq % 700,
                card_atc=seq % 65_000,
                txn_time=start + timedelta(seconds=seq % 80_000),
            )
            records.append(PURCHASE.to_wire(values))
            seq += 1
        body = {
            "batch_id": f"bench-{terminal_id}-{first_seq}-{b}",
            "terminal_id": terminal_id,
            "records": records,
        }
        bodies.append(json.dumps(body).encode())
    return bodies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_http(
    args: argparse.Namespace, bodies: list[bytes], senders: list[Send] | None = None
) -> dict[str, Any]:
    """Post ``bodies`` from ``args.concurrency`` threads; each thread opens its own
    connection, or with ``senders`` uses its one (kept open across blocks)."""
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    errors: list[str] = []
    per_port: dict[int, int] = {}
    lock = threading.Lock()

    def drain(send: Send) -> None:
        sent = 0
        port = 0
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            status, text, port = send(body)
            dt = time.perf_counter() - t0
            sent += 1
            with lock:
                if status != 200:
                    errors.append(f"{status} {text[:200]}")
                latencies.append(dt)
        if sent:
            with lock:
                per_port[port] = per_port.get(port, 0) + sent

    def worker(i: int) -> None:
        if senders is not None:
            drain(senders[i])
            return
        with poster(args) as send:
            drain(send)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"elapsed": elapsed, "latencies": latencies, "errors": errors, "per_port": per_port}


Send = Any  # (body) -> (status, text, local port of the connection)


def poster(args: argparse.Namespace) -> contextlib.AbstractContextManager[Send]:
    """One keep-alive connection to the gateway with the client ``--client`` names."""
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    post = _httpx_poster if args.client == "httpx" else _http_client_poster
    return post(args.url, args.endpoint, headers)


@contextlib.contextmanager
def _httpx_poster(url: str, endpoint: str, headers: dict[str, str]) -> Iterator[Send]:
    """httpx.Client, one keep-alive connection per thread."""
    import httpx

    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:

        def send(body: bytes) -> tuple[int, str, int]:
            resp = client.post(endpoint, content=body)
            stream = resp.extensions["network_stream"]
            port = stream.get_extra_info("client_addr")[1]
            return resp.status_code, resp.text if resp.status_code != 200 else "", port

        yield send


@contextlib.contextmanager
def _http_client_poster(url: str, endpoint: str, headers: dict[str, str]) -> Iterator[Send]:
    """The standard library's http.client, one keep-alive connection per thread: the
    lighter client, as a validator's own uploader would be (it reads the whole answer)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:

        def send(body: bytes) -> tuple[int, str, int]:
            conn.request("POST", endpoint, body=body, headers=headers)
            port = conn.sock.getsockname()[1]  # before the answer: it may close the connection
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data.decode(errors="replace") if resp.status != 200 else "", port

        yield send
    finally:
        conn.close()


class RawStore:
    """The gateway's storage code on ``url`` without HTTP; batches are validated by
    :meth:`parse` before any clock starts."""

    def __init__(self, url: str, terminal_id: str, concurrency: int) -> None:
        from gateway.auth import Terminal
        from gateway.storage import open_storage

        self.db = open_storage(url, pool_size=concurrency)
        self.terminal = Terminal(terminal_id, "bench", "pos", "", False)

    def parse(self, bodies: list[bytes]) -> list[Any]:
        from gateway.ingest import parse_batch

        return [parse_batch(b, self.terminal) for b in bodies]

    def store(self, batches: list[Any], concurrency: int) -> dict[str, Any]:
        """Store ``batches`` from ``concurrency`` threads, timed."""
        from gateway.ingest import store_batch

        work: queue.Queue[Any] = queue.Queue()
        for b in batches:
            work.put(b)
        latencies: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                store_batch(self.db, self.terminal, batch)
                with lock:
                    latencies.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        return {"elapsed": elapsed, "latencies": latencies, "errors": []}

    def close(self) -> None:
        self.db.close()


def run_raw(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    raw = RawStore(args.raw_db, args.terminal_id, args.concurrency)
    try:
        return raw.store(raw.parse(bodies), args.concurrency)
    finally:
        raw.close()


def span(args: argparse.Namespace, name: str, run: Any) -> tuple[dict[str, Any], float]:
    """Run one timed span between its ``start``/``stop`` markers: its result and the
    generator's own CPU seconds over it (getrusage)."""
    mark(args, f"start {name}")
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    result = run()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    mark(args, f"stop {name}")
    return result, cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime


def mark(args: argparse.Namespace, line: str) -> None:
    print(line, flush=True)
    if args.handshake:
        sys.stdin.readline()


def summary(
    args: argparse.Namespace,
    mode: str,
    batches: int,
    results: list[dict[str, Any]],
    cpu_s: float,
) -> dict[str, Any]:
    """The one JSON shape of a side: its spans' batches over their summed clock time."""
    elapsed = sum(r["elapsed"] for r in results)
    lat = [x for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    per_port: dict[int, int] = {}
    for r in results:
        for port, n in r.get("per_port", {}).items():
            per_port[port] = per_port.get(port, 0) + n
    return {
        "mode": mode,
        "batches": batches,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "elapsed_s": round(elapsed, 4),
        "txn_per_s": round(batches * args.batch_size / elapsed, 1),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "max_ms": round(max(lat) * 1000, 2),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "client_cpu_ms_per_batch": round(1000 * cpu_s / batches, 3),
        "requests_by_port": per_port,
    }


def run_single(args: argparse.Namespace) -> dict[str, Any]:
    bodies = make_bodies(
        args.terminal_id, args.batches + args.warmup, args.batch_size, args.first_seq
    )
    warm, timed = bodies[: args.warmup], bodies[args.warmup :]
    runner = run_raw if args.raw_db else run_http
    if warm:
        saved = args.concurrency
        args.concurrency = 1
        runner(args, warm)
        args.concurrency = saved
    result, cpu_s = span(args, "timed", lambda: runner(args, timed))
    mode = "raw-db" if args.raw_db else args.endpoint
    return summary(args, mode, len(timed), [result], cpu_s)


def run_blocks(args: argparse.Namespace) -> dict[str, Any]:
    """``--pairs`` pairs of one ingest and one raw-store block, ABBA: the same bodies go to
    both databases in the same order; bodies, parsing and connections are ready before the
    first clock, the connections stay open across blocks (as in a single run)."""
    n = args.batches
    bodies = make_bodies(
        args.terminal_id, args.warmup + args.pairs * n, args.batch_size, args.first_seq
    )
    warm, timed = bodies[: args.warmup], bodies[args.warmup :]
    raw = RawStore(args.raw_db, args.terminal_id, args.concurrency)
    with contextlib.ExitStack() as stack:
        senders = [stack.enter_context(poster(args)) for _ in range(args.concurrency)]
        parsed = raw.parse(bodies)
        for i, body in enumerate(warm):  # one at a time, over every connection
            status, text, _ = senders[i % len(senders)](body)
            assert status == 200, f"warm-up: {status} {text[:200]}"
        raw.store(parsed[: args.warmup], 1)
        parsed = parsed[args.warmup :]
        sides: dict[str, list[dict[str, Any]]] = {"ingest": [], "raw": []}
        cpu = {"ingest": 0.0, "raw": 0.0}
        blocks = []
        for pair in range(args.pairs):
            part = slice(pair * n, (pair + 1) * n)
            run = {
                "ingest": lambda part=part: run_http(args, timed[part], senders),
                "raw": lambda part=part: raw.store(parsed[part], args.concurrency),
            }
            order = ("ingest", "raw") if pair % 2 == 0 else ("raw", "ingest")
            for mode in order:
                result, cpu_s = span(args, mode, run[mode])
                sides[mode].append(result)
                cpu[mode] += cpu_s
                rate = n * args.batch_size / result["elapsed"]
                blocks.append({"pair": pair, "mode": mode, "txn_per_s": round(rate, 1)})
    raw.close()
    total = args.pairs * n
    return {
        "mode": "blocks",
        "pairs": args.pairs,
        "blocks": blocks,
        "ingest": summary(args, args.endpoint, total, sides["ingest"], cpu["ingest"]),
        "raw": summary(args, "raw-db", total, sides["raw"], cpu["raw"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8978")
    p.add_argument("--token", default="")
    p.add_argument("--terminal-id", default="310000009999")
    p.add_argument("--endpoint", default="/v1/batches")
    p.add_argument("--raw-db", help="store directly into this database URL (no HTTP)")
    p.add_argument("--batches", type=int, default=100, help="batches a run, or a block")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--first-seq", type=int, default=1)
    p.add_argument(
        "--client",
        choices=("http.client", "httpx"),
        default="http.client",
        help="the HTTP client the threads post with (docs/scaling.md, Gateway ingest)",
    )
    p.add_argument("--warmup", type=int, default=5, help="batches sent before timing")
    p.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="alternate this many pairs of ingest (--url) and raw-store (--raw-db) blocks",
    )
    p.add_argument(
        "--handshake", action="store_true", help="wait for a stdin line after each marker"
    )
    args = p.parse_args()
    if args.pairs and not args.raw_db:
        p.error("--pairs needs --raw-db (and --url)")
    result = run_blocks(args) if args.pairs else run_single(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
