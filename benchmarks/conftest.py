"""Benchmarks reuse the test fixtures (software cards, PSAM, frozen clock)."""

from tests.conftest import *  # noqa: F403
