"""Same-run baselines: time a reference callable next to the benchmarked one and report ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def measure(fn: Callable[[], Any], *, rounds: int = 2000, warmup: int = 50) -> dict[str, float]:
    """Median, p99 and mean of ``fn`` in microseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return {
        "median_us": statistics.median(samples),
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "mean_us": statistics.fmean(samples),
    }


def report(benchmark: Any, name: str, baseline: dict[str, float]) -> None:
    """Put the baseline and the ratio of the benchmark's median to it into extra_info and print."""
    median_us = benchmark.stats.stats.median * 1e6
    benchmark.extra_info[f"{name}_median_us"] = round(baseline["median_us"], 2)
    benchmark.extra_info["median_us"] = round(median_us, 2)
    benchmark.extra_info[f"ratio_to_{name}"] = round(median_us / baseline["median_us"], 3)
    print(
        f"\n{benchmark.name}: median {median_us:.1f} us; {name} median "
        f"{baseline['median_us']:.1f} us; ratio {median_us / baseline['median_us']:.2f}"
    )
