"""Replay backend: answers from a recorded trace, so a field recording becomes a test."""

from __future__ import annotations

from pathlib import Path

from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu
from terminal.apdu.status import SW
from terminal.readers.spec import ReaderSpecError
from terminal.readers.trace import Trace, load_trace

NOT_SUPPORTED = SW.INS_NOT_SUPPORTED.to_bytes(2, "big")


class ReplayReader:
    """Lines are used in order: a command takes the first unused line equal to it (or equal
    but for a trailing Le byte); once all lines for that command are used, the last of them
    answers again; a command with no line gets 6D00."""

    def __init__(self, trace: Trace | str | Path, name: str | None = None):
        if not isinstance(trace, Trace):
            name = name or f"replay:{trace}"
            trace = load_trace(trace)
        self.trace = trace
        self.name = name or "replay"
        self._used = [False] * len(trace.exchanges)
        self._connected = False

    def connect(self) -> bytes:
        self._connected = True
        return self.trace.atr

    @property
    def atr(self) -> bytes:
        return self.trace.atr

    @staticmethod
    def _matches(recorded: bytes, sent: bytes) -> bool:
        """Equal, or equal apart from a trailing short Le byte (present, absent or different)."""
        if recorded == sent:
            return True
        if abs(len(recorded) - len(sent)) > 1:
            return False
        try:
            a, b = CommandAPDU.decode(recorded), CommandAPDU.decode(sent)
        except MalformedApdu:
            return False
        return not a.extended and not b.extended and a.header == b.header and a.data == b.data

    def transmit(self, apdu: bytes) -> bytes:
        apdu = bytes(apdu)
        last_match: int | None = None
        for i, (command, response) in enumerate(self.trace.exchanges):
            if self._matches(command, apdu):
                if not self._used[i]:
                    self._used[i] = True
                    return response
                last_match = i
        if last_match is not None:
            return self.trace.exchanges[last_match][1]
        return NOT_SUPPORTED

    def disconnect(self) -> None:
        self._connected = False

    def card_present(self) -> bool:
        return True

    def wait_for_card(self, timeout: float | None = None) -> bool:
        return True

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        return False


def from_spec(rest: str) -> ReplayReader:
    """``replay:FILE``."""
    if not rest:
        raise ReaderSpecError("replay needs a trace file: replay:FILE")
    return ReplayReader(rest)
