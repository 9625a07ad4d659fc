"""The trace file format shared by ``--trace`` (record) and the replay reader.

One exchange per line, ``<command hex> : <response hex>``; ``ATR: <hex>`` for the ATR;
``#`` starts a comment; blank lines are ignored. Hex may contain spaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from terminal.apdu.errors import YikatongError


class TraceFormatError(YikatongError, ValueError):
    """A trace line that is neither an exchange, an ATR, a comment nor blank."""


@dataclass
class Trace:
    atr: bytes = b""
    exchanges: list[tuple[bytes, bytes]] = field(default_factory=list)


def _hex(text: str, lineno: int) -> bytes:
    try:
        return bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise TraceFormatError(f"line {lineno}: not hex: {text.strip()!r}") from None


def parse_trace(text: str) -> Trace:
    trace = Trace()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.upper().startswith("ATR:"):
            trace.atr = _hex(line[4:], lineno)
            continue
        if ":" not in line:
            raise TraceFormatError(f"line {lineno}: expected '<command> : <response>'")
        command, response = line.split(":", 1)
        cmd, rsp = _hex(command, lineno), _hex(response, lineno)
        if len(cmd) < 4 or len(rsp) < 2:
            raise TraceFormatError(f"line {lineno}: command needs 4+ bytes, response 2+")
        trace.exchanges.append((cmd, rsp))
    return trace


def load_trace(path: str | Path) -> Trace:
    return parse_trace(Path(path).read_text(encoding="utf-8"))


class TraceWriter:
    """Appends exchanges to a trace file as they happen (flushed per line)."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    @classmethod
    def open(cls, path: str | Path) -> TraceWriter:
        return cls(open(path, "a", encoding="utf-8"))

    def comment(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self._stream.write(f"# {line}\n")
        self._stream.flush()

    def atr(self, atr: bytes) -> None:
        self._stream.write(f"ATR: {atr.hex().upper()}\n")
        self._stream.flush()

    def exchange(self, command: bytes, response: bytes) -> None:
        self._stream.write(f"{command.hex().upper()} : {response.hex().upper()}\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()
