"""Benchmarks reuse the test fixtures (software cards, PSAM, frozen clock) and end with the
table of the issue's goals, each MET or MISSED."""

from typing import Any

from benchmarks.goals import table
from tests.conftest import *  # noqa: F403


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = table()
    if lines:
        terminalreporter.section("goals (same run, side by side)")
        for line in lines:
            terminalreporter.write_line(line)
