"""QR scanner modules on a serial line (pyserial): frames in, ride-code bytes out.

A scanner sends each code it reads as one frame: the code's bytes or their base64, ended
by a line end (``line``) or led by a two-byte big-endian length (``length``). Raw bytes
need length framing, because a code's bytes may hold a line end. ``FrameDecoder`` is the
sans-I/O half (bytes in, codes or ``ScanError`` out); ``SerialScanner`` reads a port;
``ScanPump`` hands what a source reads to the tap loop from a thread.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from terminal.apdu.errors import YikatongError

log = logging.getLogger(__name__)

DATA = ("base64", "raw")
FRAMINGS = ("line", "length")
MAX_FRAME = 2048  # bytes of one frame: a code is at most 364 bytes, 488 in base64
FRAME_GAP = 0.5  # seconds of silence that end a frame cut short


class ScanError(YikatongError):
    """A frame that carries no code; ``reason`` names the fault, the message says what."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Scan = bytes | ScanError  # what a code source delivers: a code's bytes, or why not


@dataclass(frozen=True)
class ScannerSettings:
    """A serial scanner as configured: its port (a pyserial URL or device), speed, what it
    sends and how it frames it."""

    port: str
    baud: int = 9600
    data: str = "base64"
    framing: str = "line"

    def __post_init__(self) -> None:
        if self.data not in DATA:
            raise ValueError(f"scanner data must be one of {', '.join(DATA)}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"scanner framing must be one of {', '.join(FRAMINGS)}")
        if self.data == "raw" and self.framing == "line":
            raise ValueError("raw scanner data needs length framing (a code may hold a line end)")


class FrameDecoder:
    """Frames out of a byte stream, sans I/O: ``feed`` the bytes read, ``expire`` after a
    silence; each returns the codes and refusals completed."""

    def __init__(self, data: str = "base64", framing: str = "line"):
        ScannerSettings("-", data=data, framing=framing)  # the one check of the pair
        self.data = data
        self.framing = framing
        self._buf = bytearray()
        self._skipping = False  # line framing: dropping the rest of an overlong line

    def feed(self, chunk: bytes) -> list[Scan]:
        self._buf += chunk
        return self._lines() if self.framing == "line" else self._lengths()

    def expire(self) -> list[Scan]:
        """The line went quiet: a partial frame will not be completed."""
        if not self._buf:
            return []
        cut = len(self._buf)
        self._buf.clear()
        self._skipping = False
        return [ScanError("garbled", f"frame cut short after {cut} bytes")]

    def _lines(self) -> list[Scan]:
        out: list[Scan] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_FRAME and not self._skipping:
                    self._buf.clear()
                    self._skipping = True
                    out.append(ScanError("garbled", f"line longer than {MAX_FRAME} bytes"))
                elif self._skipping:
                    self._buf.clear()
                return out
            line = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if line:
                out.append(self._decode(line))

    def _lengths(self) -> list[Scan]:
        out: list[Scan] = []
        while len(self._buf) >= 2:
            size = int.from_bytes(self._buf[:2], "big")
            if not 0 < size <= MAX_FRAME:
                out.append(ScanError("garbled", f"frame length {size} is not 1..{MAX_FRAME}"))
                self._buf.clear()  # no way to find the next frame in this chunk
                return out
            if len(self._buf) < 2 + size:
                return out
            body = bytes(self._buf[2 : 2 + size])
            del self._buf[: 2 + size]
            out.append(self._decode(body))
        return out

    def _decode(self, body: bytes) -> Scan:
        if self.data == "raw":
            return body
        try:
            return base64.b64decode(body.strip(), validate=True)
        except (binascii.Error, ValueError):
            return ScanError("garbled", f"frame is not base64 ({len(body)} bytes)")


class CodeSource(Protocol):
    """Anything that yields scanned codes: a serial scanner, an image folder."""

    name: str

    def read(self, timeout: float) -> list[Scan]:
        """What arrived within ``timeout`` seconds (often nothing)."""
        ...

    def close(self) -> None: ...


class SerialScanner:
    """A QR scanner module on a serial port (pyserial: a device, a pty or a URL)."""

    def __init__(self, settings: ScannerSettings, port: Any = None):
        self.settings = settings
        self.name = f"scanner {settings.port}"
        if port is None:
            try:
                import serial
            except ImportError:
                raise YikatongError(
                    "a serial QR scanner needs pyserial: pip install 'yikatong[readers]'"
                ) from None
            try:
                port = serial.serial_for_url(settings.port, baudrate=settings.baud, timeout=0.05)
            except (serial.SerialException, ValueError) as exc:
                raise YikatongError(f"{self.name}: cannot open ({exc})") from None
        self.port = port
        self.decoder = FrameDecoder(settings.data, settings.framing)
        self._last = time.monotonic()

    def read(self, timeout: float) -> list[Scan]:
        deadline = time.monotonic() + timeout
        out: list[Scan] = []
        while not out and time.monotonic() < deadline:
            chunk = self.port.read(max(1, self.port.in_waiting))
            now = time.monotonic()
            if chunk:
                self._last = now
                out += self.decoder.feed(chunk)
            elif now - self._last > FRAME_GAP:
                out += self.decoder.expire()
        return out

    def close(self) -> None:
        self.port.close()


class ScanPump:
    """Reads a code source in a thread and hands each scan to ``deliver`` (the tap loop's
    ``present``) until ``stop``; a failing source is logged and read again."""

    def __init__(self, source: CodeSource, deliver: Callable[[Scan], None], poll: float = 0.2):
        self.source = source
        self.deliver = deliver
        self.poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=source.name, daemon=True)

    def start(self) -> ScanPump:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                scans = self.source.read(self.poll)
            except (OSError, YikatongError) as exc:
                log.warning("%s: %s; retrying", self.source.name, exc)
                self._stop.wait(self.poll)
                continue
            for scan in scans:
                self.deliver(scan)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
