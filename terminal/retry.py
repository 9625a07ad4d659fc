"""The one back-off rule for everything that retries over a network: exponential, capped,
jittered over the upper half so a fleet coming back after an outage spreads out."""

from __future__ import annotations

import random


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` failures in a row."""
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return rng.uniform(ceiling / 2, ceiling)
