"""Where a batch's time goes inside the gateway, under the ingest benchmark's load.

``python -m benchmarks.ingest_phases --db URL`` runs `ykt gateway serve` with perf_counter
stamps wrapped around the request path (benchmark-only: the product's code and log are
untouched), drives it with ``benchmarks.ingest_loadgen`` (2 clients, batches of 500), then
stores the same batches raw, timing the storage call there too, and prints the median and
p90 of each phase in ms (docs/scaling.md, Gateway ingest).

Stamps per request (each worker appends one JSON line per request to ``--out``):
  start   the middleware gets the request (headers parsed)
  gate0/1 the token check: awaited from the loop / run in the thread
  body0/1 first body message / last body message read
  run     the route hands its work to the thread pool
  parse0/1, store0/1  parse_batch and store_batch in the thread
  tx0/1/2 checking a connection out / the last statement done / the commit done
  ack0/1  the ack encoded (main: in the loop, after the hop back; now: in the thread);
          sent: the response body handed to the server
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_now = time.perf_counter
STAMPS: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "stamps", default=None
)


def stamp(name: str) -> None:
    got = STAMPS.get()
    if got is not None and name not in got:
        got[name] = _now()


def _wrap_sync(module: Any, name: str, before: str, after: str) -> None:
    inner = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        stamp(before)
        try:
            return inner(*args, **kwargs)
        finally:
            stamp(after)

    setattr(module, name, timed)


def install(out: Path) -> None:
    """Wrap the request path's parts with stamps (before the app is built and forked)."""
    from gateway import auth, edges, ingest
    from gateway.api import deps
    from gateway.api import ingest as route
    from gateway.storage import db as storage

    _wrap_sync(ingest, "parse_batch", "parse0", "parse1")
    _wrap_sync(ingest, "store_batch", "store0", "store1")
    _wrap_sync(route, "ack_json", "ack0", "ack1")
    _wrap_sync(auth, "authenticate", "gate_thread0", "gate_thread1")

    gate = deps.gate

    async def timed_gate(*args: Any) -> Any:
        stamp("gate0")
        try:
            return await gate(*args)
        finally:
            stamp("gate1")

    deps.gate = timed_gate

    read_body = edges.read_body

    async def timed_read(receive: Any, limit: int) -> bytes:
        async def first() -> Any:
            message = await receive()
            stamp("body0")
            got = STAMPS.get()
            if got is not None:
                got["chunks"] = got.get("chunks", 0) + 1
            return message

        body = await read_body(first, limit)
        stamp("body1")
        return body

    edges.read_body = timed_read

    run = route.run_in_threadpool

    async def timed_run(*args: Any, **kwargs: Any) -> Any:
        stamp("run")
        return await run(*args, **kwargs)

    route.run_in_threadpool = timed_run

    for cls in (storage.PostgresDatabase, storage.SqliteDatabase):
        tx = cls.tx

        def make(tx: Any) -> Any:
            @contextlib.contextmanager
            def timed_tx(self: Any) -> Iterator[Any]:
                stamp("tx0")
                with tx(self) as cur:
                    stamp("tx_in")
                    yield cur
                    stamp("tx1")
                stamp("tx2")

            return timed_tx

        cls.tx = make(tx)

    call = edges.BodyLimit.__call__

    async def timed_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/batches":
            await call(self, scope, receive, send)
            return
        got: dict[str, float] = {"start": _now()}
        token = STAMPS.set(got)

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body":
                stamp("sent")

        try:
            await call(self, scope, receive, timed_send)
        finally:
            STAMPS.reset(token)
        with open(out / f"phases-{os.getpid()}.jsonl", "a") as f:
            f.write(json.dumps(got) + "\n")

    edges.BodyLimit.__call__ = timed_call


# (label, from stamp, to stamp)
PHASES = (
    ("token check awaited (thread hop + lookup)", "gate0", "gate1"),
    ("  of it the lookup in the thread", "gate_thread0", "gate_thread1"),
    ("body: token check done to last byte read", "gate1", "body1"),
    ("route entered to thread started", "run", "parse0"),
    ("parse_batch", "parse0", "parse1"),
    ("storage call (store_batch)", "store0", "store1"),
    ("  connection checkout", "tx0", "tx_in"),
    ("  statements", "tx_in", "tx1"),
    ("  commit", "tx1", "tx2"),
    ("store done to ack encode", "store1", "ack0"),
    ("ack encode", "ack0", "ack1"),
    ("ack encoded to body sent (hop back, write)", "ack1", "sent"),
    ("request in the gateway (start to sent)", "start", "sent"),
)


def table(rows: list[dict[str, float]]) -> str:
    lines = [f"{'phase':<44s} {'p50 ms':>8s} {'p90 ms':>8s}"]
    for label, a, b in PHASES:
        ds = sorted((r[b] - r[a]) * 1000 for r in rows if a in r and b in r)
        if ds:
            p90 = ds[int(0.9 * (len(ds) - 1))]
            lines.append(f"{label:<44s} {statistics.median(ds):>8.3f} {p90:>8.3f}")
    chunks = [r.get("chunks", 0) for r in rows]
    lines.append(f"{'body messages per request (median)':<44s} {statistics.median(chunks):>8.0f}")
    return "\n".join(lines)


def serve(argv: list[str], out: Path) -> None:
    install(out)
    from terminal.cli.main import main

    sys.exit(main(["gateway", "serve", *argv]))


def run(backend: str, batches: int, concurrency: int) -> None:
    from gateway.auth import register_terminal
    from gateway.storage import open_storage
    from tests.servers import ROOT, PostgresCluster, free_port, wait_http

    out = Path(tempfile.mkdtemp(prefix="ingest-phases-"))
    pg = PostgresCluster().start(fsync=True) if backend == "postgres" else None
    url = pg.new_database() if pg else f"sqlite:///{out / 'gw.db'}"
    raw_url = pg.new_database() if pg else f"sqlite:///{out / 'raw.db'}"
    try:
        store = open_storage(url)
        token = register_terminal(store, "310000009999", "bench")
        store.close()
        open_storage(raw_url).close()
        port = free_port()
        cmd = [sys.executable, "-m", "benchmarks.ingest_phases", "--serve", str(out)]
        cmd += ["--db", url, "--port", str(port), "--pool", "4"]
        with open(out / "gateway.log", "ab") as log:
            gw = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", 30, gw)
            gen = [sys.executable, "-m", "benchmarks.ingest_loadgen", "--batch-size", "500"]
            gen += ["--batches", str(batches), "--concurrency", str(concurrency)]
            res = subprocess.run(
                [*gen, "--url", f"http://127.0.0.1:{port}", "--token", token],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
        finally:
            gw.terminate()
            gw.wait(10)
        raw = subprocess.run(
            [*gen, "--raw-db", raw_url], cwd=ROOT, capture_output=True, text=True, check=True
        )
    finally:
        if pg:
            pg.stop()
    result = json.loads(res.stdout.splitlines()[-1])
    raw_result = json.loads(raw.stdout.splitlines()[-1])
    rows = [json.loads(x) for p in out.glob("phases-*.jsonl") for x in p.read_text().splitlines()]
    rows = sorted(rows, key=lambda r: r["start"])[5:]  # after the warm-up batches
    print(
        f"{backend}: ingest {result['txn_per_s']:.0f} txn/s, ack p50 {result['p50_ms']} ms;"
        f" raw {raw_result['txn_per_s']:.0f} txn/s, store_batch p50 {raw_result['p50_ms']} ms;"
        f" share {100 * result['txn_per_s'] / raw_result['txn_per_s']:.1f} %;"
        f" {len(rows)} requests; load {os.getloadavg()[0]:.2f}"
    )
    print(table(rows))


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[3:], Path(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    run(args.backend, args.batches, args.concurrency)


if __name__ == "__main__":
    main()
