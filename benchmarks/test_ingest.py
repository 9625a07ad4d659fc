"""Ingest throughput: batches of 500 transactions from a load generator in a second process.

The pytest-benchmark time of each case is the whole load-generator run (process start and
body building included); the figures that matter are in the printed table and in
``extra_info``. The gateway runs as shipped, `ykt gateway serve` (one worker process per CPU;
$YKT_BENCH_GATEWAY_WORKERS sets another count, for A/B runs), on a throwaway PostgreSQL
(fsync on) and on a SQLite file (WAL, synchronous FULL). Same-run baselines:
  - HTTP no-op: the same bodies posted to an endpoint that only reads and parses them;
  - raw store: the same batches stored straight through the gateway's storage code from
    the load generator's process (no HTTP, validation done before the clock starts), in
    blocks interleaved with the 2-client ingest's (6 pairs, ABBA, each on its own database):
    the share is the median of the pairs' ratios, so drift between two runs stays out of it.
Target (issue 4): >= 20,000 transactions/s on PostgreSQL with p99 batch ack < 100 ms on
this 2-core machine, where the load generator and the database share the two cores.
Goals (issue 15): ingest with 2 clients >= 60 % of the raw store's rate on PostgreSQL and
SQLite, p99 batch ack < 100 ms with 4 clients; and two gateway processes against one
PostgreSQL, their combined rate printed (the scaling model in docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.goals import goal
from gateway.auth import register_terminal
from gateway.storage import open_storage
from tests.servers import ROOT, PostgresCluster, ServerProcess, free_port, wait_http

BATCHES = 200
BATCH = 500
PAIRS = 6  # the share: pairs of one ingest and one raw-store block, interleaved ABBA
BLOCK = 40  # batches a block
RESULTS: list[dict[str, Any]] = []


def tmp_dir() -> Path:
    return Path(tempfile.gettempdir())


def fsync_ms(where: Path, n: int = 200) -> float:
    """Median fsync latency: what every durable commit pays at least once."""
    import os
    import statistics
    import time

    path = where / f"fsync-probe-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    samples = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(samples) * 1000


def loadgen(*args: str, watch: Watch | None = None) -> dict[str, Any]:
    """Run the load generator to its end; with ``watch``, the CPU each side spent in its timed
    spans (sampled at each span's edges while the generator waits) and which gateway worker
    held each of its connections. A blocks run (``--pairs``) has its sides under "ingest"
    and "raw"; the raw side's CPU is PostgreSQL's alone (the gateway idles meanwhile)."""
    cmd = [sys.executable, "-m", "benchmarks.ingest_loadgen", "--batch-size", str(BATCH), *args]
    cmd.append("--handshake")
    if os.environ.get("YKT_BENCH_CLIENT"):  # http.client (default) or httpx, for A/B runs
        cmd += ["--client", os.environ["YKT_BENCH_CLIENT"]]
    ticks: dict[str, dict[str, int]] = {}  # per span name, per process: CPU ticks
    opened: dict[str, int] = {}
    owners: dict[int, int] = {}
    done = threading.Event()
    sampler = threading.Thread(target=_sample_owners, args=(watch, owners, done), daemon=True)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT
        )
        assert proc.stdout is not None and proc.stdin is not None
        lines = []
        for line in proc.stdout:  # "start NAME" / "stop NAME" around each span, then the result
            word, _, name = line.strip().partition(" ")
            if word in ("start", "stop"):
                if watch and word == "start":
                    opened = watch.cpu()
                    if not sampler.is_alive():
                        sampler.start()
                elif watch:
                    spent = ticks.setdefault(name, {})
                    for k, v in watch.cpu().items():
                        spent[k] = spent.get(k, 0) + v - opened.get(k, v)
                proc.stdin.write("go\n")
                proc.stdin.flush()
            lines.append(line)
        proc.wait(600)
        done.set()
        if sampler.is_alive():
            sampler.join()
        err.seek(0)
        assert proc.returncode == 0, err.read()[-2000:]
    result = json.loads(lines[-1])
    if not watch:
        return result
    blocks = result.get("mode") == "blocks"
    sides = {"ingest": result["ingest"], "raw": result["raw"]} if blocks else {"timed": result}
    for name, side in sides.items():
        spent = ticks[name]
        if name == "raw":
            spent = {k: v for k, v in spent.items() if k == "postgres"}
        per_batch = {k: v / CLK_TCK * 1000 / side["batches"] for k, v in spent.items()}
        side["cpu_ms_per_batch"] = {k: round(v, 2) for k, v in per_batch.items()}
        served: dict[str, int] = {}
        for port, n in side.get("requests_by_port", {}).items():
            pid = owners.get(int(port), 0)
            served[str(pid)] = served.get(str(pid), 0) + n
        if served:
            side["requests_by_worker"] = served
    return result


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3 onward)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _tree_ticks(root: int) -> int:
    """CPU ticks of a process and its children, live or already reaped (cutime/cstime)."""
    try:
        f = _stat(root)
    except OSError:
        return 0
    total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            c = _stat(int(entry.name))
        except OSError:
            continue
        if int(c[1]) == root:
            total += int(c[11]) + int(c[12])
    return total


def _children(root: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == root:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return sorted(pids)


@dataclass
class Watch:
    """The processes whose CPU a run is charged with: the gateway (its parent and workers)
    and PostgreSQL's postmaster with its backends (the load generator reports its own)."""

    gateway: int | None = None
    gateway_port: int = 0
    postmaster: int | None = None

    def workers(self) -> list[int]:
        if self.gateway is None:
            return []
        return _children(self.gateway) or [self.gateway]

    def cpu(self) -> dict[str, int]:
        ticks: dict[str, int] = {}
        if self.gateway is not None:
            ticks["gateway"] = _tree_ticks(self.gateway)
            for i, pid in enumerate(self.workers()):
                f = _stat(pid)
                ticks[f"worker{i}"] = int(f[11]) + int(f[12])
        if self.postmaster is not None:
            ticks["postgres"] = _tree_ticks(self.postmaster)
        return ticks


def _sample_owners(watch: Watch | None, owners: dict[int, int], done: threading.Event) -> None:
    """Which worker holds each client port: the worker's socket inodes against /proc/net/tcp."""
    if watch is None:
        return
    while not done.wait(0.05):
        by_inode: dict[str, int] = {}
        for pid in watch.workers():
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        link = os.readlink(fd)
                        if link.startswith("socket:["):
                            by_inode[link[8:-1]] = pid
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    f = line.split()
                    local, remote, state, inode = f[1], f[2], f[3], f[9]
                    port = int(local.rsplit(":", 1)[1], 16)
                    if state == "01" and port == watch.gateway_port and inode in by_inode:
                        owners[int(remote.rsplit(":", 1)[1], 16)] = by_inode[inode]


def cpu_line(label: str, result: dict[str, Any]) -> None:
    """One line per side: CPU ms per 500-record batch, and requests per gateway worker."""
    cpu = result.get("cpu_ms_per_batch", {})
    parts = [f"loadgen {result['client_cpu_ms_per_batch']:.2f}"]
    parts += [f"{k} {v:.2f}" for k, v in cpu.items()]
    served = result.get("requests_by_worker")
    tail = f"; requests by worker pid {served}" if served else ""
    print(f"\nCPU ms per batch, {label}: {', '.join(parts)}{tail}")


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start(fsync=True)
    yield cluster
    cluster.stop()


def gateway_on(
    url: str, tmp: Path, terminal_id: str = "310000009999", name: str = "gateway"
) -> tuple[ServerProcess, str]:
    db = open_storage(url)
    token = register_terminal(db, terminal_id, "bench")
    db.close()
    port = free_port()
    args = ["gateway", "serve", "--db", url, "--port", str(port), "--pool", "4"]
    if os.environ.get("YKT_BENCH_GATEWAY_WORKERS"):
        args += ["--workers", os.environ["YKT_BENCH_GATEWAY_WORKERS"]]
    return ServerProcess(args, port, tmp / f"{name}.log").start(), token


def noop_server(tmp: Path) -> NoopServer:
    """The no-op baseline on its own app (benchmarks/noop_server.py), in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.noop_server", "--port", str(port)],
        cwd=ROOT,
        stdout=open(tmp / "noop.log", "ab"),  # noqa: SIM115 - the child holds it
        stderr=subprocess.STDOUT,
    )
    server = NoopServer(proc, f"http://127.0.0.1:{port}")
    wait_http(server.url + "/health", 30, proc)
    return server


@dataclass
class NoopServer:
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def stored(url: str) -> int:
    db = open_storage(url)
    with db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM txn")
        n = int(cur.fetchone()[0])
    db.close()
    return n


def record(benchmark: Any, label: str, result: dict[str, Any]) -> None:
    result["label"] = label
    RESULTS.append(result)
    benchmark.extra_info.update(result)
    assert result["errors"] == 0, result["first_error"]


def postmaster(cluster: PostgresCluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def share_pairs(blocks: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(ingest rate, raw rate, ingest / raw) of each pair of blocks, in pair order."""
    rates: dict[int, dict[str, float]] = {}
    for b in blocks:
        rates.setdefault(b["pair"], {})[b["mode"]] = b["txn_per_s"]
    return [(r["ingest"], r["raw"], r["ingest"] / r["raw"]) for _, r in sorted(rates.items())]


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_ingest_throughput(benchmark, backend, pg, tmp_path):
    url = pg.new_database() if backend == "postgres" else f"sqlite:///{tmp_path / 'gw.db'}"
    raw_url = pg.new_database() if backend == "postgres" else f"sqlite:///{tmp_path / 'raw.db'}"
    open_storage(raw_url).close()
    gw, token = gateway_on(url, tmp_path)
    assert gw.proc is not None
    pm = postmaster(pg) if backend == "postgres" else None
    watch = Watch(gw.proc.pid, gw.port, pm)
    common = ["--url", gw.url, "--token", token]
    noop = noop_server(tmp_path)
    try:
        record(
            benchmark,
            f"{backend}: HTTP no-op baseline, 2 clients",
            loadgen(
                "--url",
                noop.url,
                "--token",
                "unused",
                "--batches",
                str(BATCHES),
                "--endpoint",
                "/v1/noop",
                "--concurrency",
                "2",
                watch=Watch(noop.proc.pid, int(noop.url.rsplit(":", 1)[1])),
            ),
        )

        def blocks() -> dict[str, Any]:
            return loadgen(
                *common, "--raw-db", raw_url, "--pairs", str(PAIRS), "--batches", str(BLOCK),
                "--concurrency", "2", "--first-seq", "1", watch=watch,
            )  # fmt: skip

        run = benchmark.pedantic(blocks, rounds=1, iterations=1)
        result, raw = run["ingest"], run["raw"]
        record(benchmark, f"{backend}: ingest, 2 clients", result)
        record(benchmark, f"{backend}: raw store baseline (no HTTP), 2 threads", raw)
        four = loadgen(
            *common, "--batches", str(BATCHES), "--concurrency", "4", "--first-seq", "1000001",
            watch=watch,
        )  # fmt: skip
        record(benchmark, f"{backend}: ingest, 4 clients", four)
    finally:
        noop.stop()
        gw.stop()
    blocked = (PAIRS * BLOCK + 5) * BATCH  # the blocks run and its 5 warm-up batches
    assert stored(url) == blocked + (BATCHES + 5) * BATCH  # and the 4-client run's
    assert stored(raw_url) == blocked
    for r in RESULTS[-4:]:
        cpu_line(r["label"], r)
    pairs = share_pairs(run["blocks"])
    ratios = [ratio for _, _, ratio in pairs]
    share = 100 * statistics.median(ratios)
    spread = f"{100 * min(ratios):.1f}-{100 * max(ratios):.1f} %"
    whole = 100 * result["txn_per_s"] / raw["txn_per_s"]
    print(f"\n{backend}: share of the raw store in {PAIRS} pairs of {BLOCK} batches (ABBA)")
    for k, (ingest_rate, raw_rate, ratio) in enumerate(pairs):
        order = "ingest, raw" if k % 2 == 0 else "raw, ingest"
        print(
            f"  pair {k + 1} ({order}): ingest {ingest_rate:>9.0f}  raw {raw_rate:>9.0f} txn/s"
            f"  share {100 * ratio:5.1f} %"
        )
    print(f"  median {share:.1f} %, pairs {spread}; load {os.getloadavg()[0]:.2f}")
    print(
        f"  whole run (all ingest blocks vs all raw blocks): {whole:.1f} % "
        f"({result['txn_per_s']:.0f} vs {raw['txn_per_s']:.0f} txn/s)"
    )
    benchmark.extra_info["share_pairs"] = [round(100 * r, 1) for r in ratios]
    benchmark.extra_info["share_median"] = round(share, 1)
    benchmark.extra_info["share_whole_run"] = round(whole, 1)
    goal(
        f"ingest {backend}: share of the raw store's rate",
        share,
        60,
        "%",
        below=False,
        note=f"median of {PAIRS} interleaved pairs, {spread}; whole run {whole:.1f} %",
    )
    goal(f"ingest {backend}: p99 batch ack, 4 clients", four["p99_ms"], 100, "ms")


def test_small_batches_one_gateway(benchmark, pg, tmp_path):
    """Requests per second one gateway process serves when validators upload often (the
    province model in docs/scaling.md is bound by requests, not rows): batches of 20."""
    url = pg.new_database()
    gw, token = gateway_on(url, tmp_path, name="gateway-small")
    try:
        result = benchmark.pedantic(
            lambda: loadgen(
                "--url", gw.url, "--token", token, "--batches", "1500", "--batch-size", "20",
                "--concurrency", "4",
            ),
            rounds=1,
            iterations=1,
        )  # fmt: skip
    finally:
        gw.stop()
    record(benchmark, "postgres: ingest, batches of 20, 4 clients", result)
    print(f"\nbatches of 20: {result['txn_per_s'] / 20:.0f} requests/s from one gateway process")


def test_two_gateways_one_postgres(benchmark, pg, tmp_path):
    """Two gateway processes against one PostgreSQL, a load generator on each at once: the
    combined rate is what a second process adds (docs/scaling.md)."""
    url = pg.new_database()
    gateways = [gateway_on(url, tmp_path, f"31000000999{i}", f"gateway{i}") for i in range(2)]
    try:

        def both() -> list[dict[str, Any]]:
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.ingest_loadgen",
                        "--batch-size",
                        str(BATCH),
                        "--url",
                        gw.url,
                        "--token",
                        token,
                        "--terminal-id",
                        f"31000000999{i}",
                        "--batches",
                        str(BATCHES),
                        "--concurrency",
                        "2",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                for i, (gw, token) in enumerate(gateways)
            ]
            outs = [p.communicate(timeout=600) for p in procs]
            for p, (_, err) in zip(procs, outs, strict=True):
                assert p.returncode == 0, err[-2000:]
            return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

        results = benchmark.pedantic(both, rounds=1, iterations=1)
    finally:
        for gw, _ in gateways:
            gw.stop()
    for i, r in enumerate(results):
        record(benchmark, f"postgres: gateway {i + 1} of 2, 2 clients", r)
    combined = {
        "txn_per_s": sum(r["txn_per_s"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "max_ms": max(r["max_ms"] for r in results),
        "errors": 0,
        "first_error": None,
    }
    record(benchmark, "postgres: two gateway processes, combined", combined)
    assert stored(url) == 2 * (BATCHES + 5) * BATCH


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Print the table after the runs (make bench shows it; also in extra_info)."""
    yield
    print(f"\nfsync of one 4 KiB write on this disk, same run: {fsync_ms(tmp_dir()):.3f} ms")
    print("\n\nIngest benchmark: batches of 500, load generator in its own process")
    print(f"{'scenario':<48s} {'txn/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for r in RESULTS:
        print(
            f"{r['label']:<48s} {r['txn_per_s']:>9.0f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}"
        )
    pg_ingest = [r for r in RESULTS if r["label"] == "postgres: ingest, 2 clients"]
    if pg_ingest:
        r = pg_ingest[0]
        met = r["txn_per_s"] >= 20_000 and r["p99_ms"] < 100
        print(f"target >= 20000 txn/s and p99 < 100 ms on PostgreSQL: {'MET' if met else 'MISSED'}")
