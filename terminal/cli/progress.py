"""A dependency-free progress line for long runs (stderr, redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO = sys.stderr,
        width: int = 30,
        enabled: bool = True,
    ):
        self.enabled = enabled
        self.total = max(total, 1)
        self.label = label
        self.stream = stream
        self.width = width
        self.done = 0
        self._tty = stream.isatty()
        self._last = 0.0
        self._start = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= (0.1 if self._tty else 2.0):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        rate = self.done / max(time.monotonic() - self._start, 1e-9)
        line = f"{self.label} [{bar}] {self.done}/{self.total} ({rate:,.0f}/s)"
        if self._tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
