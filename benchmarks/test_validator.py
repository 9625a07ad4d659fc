"""Issue 3: tap-to-result host-side time (bus, metro exit) with card and PSAM in process and
the journal on disk at synchronous=FULL; the journal's own cost per transaction; and, in
the same run, this disk's raw fsync latency. Target: host-side p99 under 5 ms."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from benchmarks.baseline import measure
from terminal.journal import Journal
from tests.terminal.roles.fleet import Fleet

WORKDIR = Path(__file__).resolve().parents[1] / ".benchmarks"


def _fleet(tmp_path: Path, clock) -> Fleet:  # type: ignore[no-untyped-def]
    WORKDIR.mkdir(exist_ok=True)
    path = WORKDIR / f"bench-{os.getpid()}-{time.time_ns()}.db"  # on the real disk, not tmpfs
    f = Fleet(path, clock, autocheckpoint=False)  # checkpoints run idle, as in TapLoop
    f.add_cards(200, balance=10**7)
    return f


def _record(benchmark, stats: dict[str, float], name: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info.update(
        {
            f"{name}_p50_us": round(stats["median_us"], 1),
            f"{name}_p99_us": round(stats["p99_us"], 1),
        }
    )
    print(f"\n{name}: p50 {stats['median_us'] / 1000:.2f} ms, p99 {stats['p99_us'] / 1000:.2f} ms")


def fsync_latency(rounds: int = 300) -> dict[str, float]:
    WORKDIR.mkdir(exist_ok=True)
    path = WORKDIR / f"fsync-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:

        def one() -> None:
            os.write(fd, b"x" * 64)
            os.fsync(fd)

        return measure(one, rounds=rounds, warmup=10)
    finally:
        os.close(fd)
        path.unlink()


def measure_with_idle(fn, idle, rounds: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Time ``fn`` only; ``idle`` runs untimed between calls (the checkpoint after a tap)."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
        idle()
    samples.sort()
    return {"median_us": samples[len(samples) // 2], "p99_us": samples[int(len(samples) * 0.99)]}


def test_bus_tap(benchmark, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f = _fleet(tmp_path, clock)
    i = iter(range(10**9))

    def tap() -> None:
        card = f.cards[next(i) % len(f.cards)]
        f.reader.insert(card)
        assert f.bus.tap().green
        clock.advance(seconds=120)

    stats = measure_with_idle(tap, f.journal.checkpoint, rounds=2000)
    benchmark.pedantic(tap, teardown=f.journal.checkpoint, rounds=500, iterations=1)
    _record(benchmark, stats, "bus_tap")
    _record(benchmark, fsync_latency(), "fsync")


def test_metro_exit_tap(benchmark, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f = _fleet(tmp_path, clock)
    n = iter(range(10**9))

    def enter() -> tuple[tuple[()], dict[str, object]]:
        card = f.cards[next(n) % len(f.cards)]
        f.reader.insert(card)
        assert f.entry.tap().green
        clock.advance(minutes=20)
        f.reader.insert(card)
        return (), {}

    def leave() -> None:
        r = f.exit.tap()
        assert r.green and r.fare == 400

    samples = []
    for _ in range(1000):
        enter()
        f.journal.checkpoint()
        t0 = time.perf_counter_ns()
        leave()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    stats = {"median_us": samples[len(samples) // 2], "p99_us": samples[int(len(samples) * 0.99)]}
    benchmark.pedantic(leave, setup=enter, rounds=300, iterations=1)
    _record(benchmark, stats, "metro_exit_tap")


def test_journal_cost_per_transaction(benchmark) -> None:  # type: ignore[no-untyped-def]
    WORKDIR.mkdir(exist_ok=True)
    j = Journal(WORKDIR / f"journal-{os.getpid()}-{time.time_ns()}.db", autocheckpoint=False)
    seq = iter(range(1, 10**9))
    when = datetime(2026, 11, 28, 9, 0)

    def one() -> None:
        s = next(seq)
        rid = j.record_intent(
            terminal_id=b"\x31" * 6,
            terminal_seq=s,
            issuer_id=b"\x02" * 8,
            card_serial=s.to_bytes(8, "big"),
            txn_type=9,
            amount=200,
            balance_before=1000,
            card_atc=1,
            key_version=1,
            algorithm=0,
            txn_time=when,
        )
        j.settle(rid, tac=b"TTTT", mac2=b"MMMM", mac2_verified=True)

    stats = measure_with_idle(one, j.checkpoint, rounds=1000)
    benchmark.pedantic(one, teardown=j.checkpoint, rounds=300, iterations=1)
    _record(benchmark, stats, "journal_intent_plus_settle")
    _record(benchmark, fsync_latency(), "fsync")
