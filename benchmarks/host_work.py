"""A load-independent measure of the host's work in one purchase: the Python calls, C calls
and bytecode instructions run between its APDUs, counted with the exchanges replayed
through readers that answer from the recording (no I/O, no card, no timing noise)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any

from terminal.epurse import flows
from terminal.roles.session import TerminalSession
from terminal.sam.psam import SamInfo

Exchanges = list[tuple[str, bytes, bytes]]  # (target, command, response) as recorded


class RecordedReader:
    """Answers each recorded command with its recorded response. ``transmit`` is a dict
    lookup (C code), so the reader adds no Python call or instruction to the count, and a
    command that differs from the recording is a KeyError."""

    def __init__(self, name: str, exchanges: Exchanges):
        self.name = name
        answers = {command: response for target, command, response in exchanges if target == name}
        self.transmit: Callable[[bytes], bytes] = answers.__getitem__


def count(fn: Callable[[], Any]) -> dict[str, int]:
    """Python calls, C calls and bytecode instructions one ``fn()`` runs (its frame too)."""
    counts = {"calls": 0, "c_calls": 0, "instructions": 0}

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            counts["calls"] += 1
        elif event == "c_call":
            counts["c_calls"] += 1

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            counts["instructions"] += 1
        return trace

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return counts


def recorded_purchase(
    exchanges: Exchanges, sam_info: SamInfo, when: datetime, amount: int
) -> Callable[[], None]:
    """One select + purchase through ``TerminalSession`` (session, channels, flows, command
    builders, response parsers) over the recording, as the PC/SC benchmark's (b) runs it."""
    session = TerminalSession(
        RecordedReader("card", exchanges),  # type: ignore[arg-type]
        RecordedReader("sam", exchanges),  # type: ignore[arg-type]
        clock=lambda: when,
    )
    session.sam_info = sam_info

    def purchase() -> None:
        info = session.run(flows.select())
        session.run(flows.purchase(info, session.sam, amount, session.now()))

    purchase()  # the first one builds the layouts' fast forms and the command caches
    return purchase


def host_work_per_purchase(
    exchanges: Exchanges, sam_info: SamInfo, when: datetime, amount: int
) -> dict[str, int]:
    """The counts for one ``recorded_purchase``."""
    return count(recorded_purchase(exchanges, sam_info, when, amount))
