"""CPU placement for benchmarks that put a load on "the other core": the CPUs this process
may use, pinning a process to one of them, and the CPU that is not a given one."""

from __future__ import annotations

import os


def allowed() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def pin(pid: int, cpu: int) -> None:
    """Run ``pid`` (0: this process) on ``cpu`` only."""
    os.sched_setaffinity(pid, {cpu})


def other(cpu: int) -> int:
    """An allowed CPU that is not ``cpu`` (the last such one); ``cpu`` itself when it is the
    only one."""
    rest = [c for c in allowed() if c != cpu]
    return rest[-1] if rest else cpu


def current(pid: int | str = "self") -> int:
    """The CPU ``pid`` last ran on (field 39 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[36])
