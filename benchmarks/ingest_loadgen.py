"""Load generator for gateway ingest, run as its own process (the benchmark starts it).

Builds every upload body before the clock starts (batches of well-formed records with
unique terminal sequence numbers), then posts them from ``--concurrency`` threads over
keep-alive connections and prints one JSON line: transactions/s and batch-ack latency
percentiles. ``--raw-db`` skips HTTP and stores the same batches straight through the
gateway's storage code: the database's own ceiling, as a baseline.

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


def run_http(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    errors: list[str] = []
    per_port: dict[int, int] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    post = _httpx_poster if args.client == "httpx" else _http_client_poster

    def worker() -> None:
        with post(args.url, args.endpoint, headers) as send:
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
            with lock:
                per_port[port] = per_port.get(port, 0) + sent

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"elapsed": elapsed, "latencies": latencies, "errors": errors, "per_port": per_port}


Send = Any  # (body) -> (status, text, local port of the connection)


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
            resp = conn.getresponse()
            data = resp.read()
            port = conn.sock.getsockname()[1]
            return resp.status, data.decode(errors="replace") if resp.status != 200 else "", port

        yield send
    finally:
        conn.close()


def run_raw(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    from gateway.auth import Terminal
    from gateway.ingest import parse_batch, store_batch
    from gateway.storage import open_storage

    db = open_storage(args.raw_db, pool_size=args.concurrency)
    terminal = Terminal(args.terminal_id, "bench", "pos", "", False)
    batches = [parse_batch(b, terminal) for b in bodies]  # validation outside the timing
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
            store_batch(db, terminal, batch)
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    db.close()
    return {"elapsed": elapsed, "latencies": latencies, "errors": []}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8978")
    p.add_argument("--token", default="")
    p.add_argument("--terminal-id", default="310000009999")
    p.add_argument("--endpoint", default="/v1/batches")
    p.add_argument("--raw-db", help="store directly into this database URL (no HTTP)")
    p.add_argument("--batches", type=int, default=100)
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
    args = p.parse_args()
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
    print("timing", flush=True)  # the benchmark samples the other processes' CPU from here
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    result = runner(args, timed)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    lat = result["latencies"]
    txns = len(timed) * args.batch_size
    print(
        json.dumps(
            {
                "mode": "raw-db" if args.raw_db else args.endpoint,
                "batches": len(timed),
                "batch_size": args.batch_size,
                "concurrency": args.concurrency,
                "elapsed_s": round(result["elapsed"], 4),
                "txn_per_s": round(txns / result["elapsed"], 1),
                "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
                "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
                "max_ms": round(max(lat) * 1000, 2),
                "errors": len(result["errors"]),
                "first_error": result["errors"][0] if result["errors"] else None,
                "client_cpu_ms_per_batch": round(1000 * cpu_s / len(timed), 3),
                "requests_by_port": result.get("per_port", {}),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
