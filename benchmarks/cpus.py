"""CPU placement for benchmarks: which CPUs this process may use, the one to leave to the
host, and pinning every thread of a process to one CPU (so processes that stand in for
hardware can be kept off the host's core)."""

from __future__ import annotations

import os
from pathlib import Path


def allowed() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def other(cpu: int) -> int:
    """An allowed CPU other than ``cpu`` (``cpu`` itself on a one-CPU machine)."""
    rest = [c for c in allowed() if c != cpu]
    return rest[0] if rest else cpu


def pin(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of ``pid`` to ``cpus``; threads it starts later inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            continue


def current(pid: int | str = "self") -> int:
    """The CPU ``pid`` last ran on (field 39 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[36])
