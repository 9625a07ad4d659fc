"""A vpcd client: plugs any software card (``atr`` + ``process``) into pcscd's virtual reader.

vsmartcard-vpcd makes pcscd show ``Virtual PCD 00 00`` (TCP 35963) and ``Virtual PCD 00 01``
(TCP 35964). vpcd is the TCP server; this bridge connects as the card. Every message is a
2-byte big-endian length and a payload: one byte is a control code (0 power off, 1 power
on, 2 reset, 4 get ATR, answered with the ATR), anything longer is a command APDU,
answered with the response APDU. Closing the socket is pulling the card.

Speed: vpcd sends the length and the payload in two ``send()`` calls, so Nagle plus
delayed ACK would cost ~40 ms an APDU; TCP_NODELAY and a TCP_QUICKACK re-armed before
every ``recv`` keep it at thousands of APDUs a second.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from terminal.readers.sim import AFTER, BEFORE, at_ins

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963  # reader 0; reader n listens on VPCD_PORT + n

POWER_OFF = 0
POWER_ON = 1
RESET = 2
GET_ATR = 4

_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class SoftCard(Protocol):
    atr: bytes

    def process(self, apdu: bytes) -> bytes: ...


class VpcdError(ConnectionError):
    """The bridge could not reach vpcd (pcscd not running, or vpcd not installed)."""


def port_for(reader: int) -> int:
    """TCP port of virtual reader number ``reader`` (0 -> 35963, 1 -> 35964)."""
    if reader < 0:
        raise ValueError(f"virtual reader number must be 0 or more, not {reader}")
    return VPCD_PORT + reader


class VpcdBridge:
    """One software card in one virtual reader, served on a background thread.

    ``plug`` connects (the card appears in pcscd), ``unplug`` closes the socket (the card
    is pulled). With ``stay_plugged`` the bridge reconnects by itself when vpcd drops it
    (pcscd restarted), as a card left in a reader would be seen again.
    """

    def __init__(
        self,
        card: SoftCard,
        *,
        reader: int = 0,
        host: str = VPCD_HOST,
        port: int | None = None,
        stay_plugged: bool = False,
    ):
        self.card = card
        self.host = host
        self.port = port if port is not None else port_for(reader)
        self.stay_plugged = stay_plugged
        self.apdus = 0
        self.busy_seconds = 0.0  # time spent inside card.process, for benchmarks
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wanted = False
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._tear: Callable[[bytes], str | None] | None = None

    # -- control ---------------------------------------------------------------------------
    @property
    def plugged(self) -> bool:
        return self._connected.is_set()

    def plug(self, timeout: float = 5.0) -> None:
        """Connect to vpcd and serve the card until ``unplug``; waits for the connection."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._wanted = True
            self._connected.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"vpcd-bridge:{self.port}", daemon=True
            )
            self._thread.start()
        if not self._connected.wait(timeout):
            self.unplug()
            raise VpcdError(
                f"no vpcd listening on {self.host}:{self.port} after {timeout:.1f} s "
                "(is pcscd running with vsmartcard-vpcd?)"
            )

    def unplug(self, timeout: float = 5.0) -> None:
        """Pull the card: close the socket and stop serving."""
        with self._lock:
            self._wanted = False
            self._drop()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def tear_when(self, rule: Callable[[bytes], str | None] | None) -> None:
        """Pull the card when ``rule(apdu)`` returns BEFORE or AFTER (one shot)."""
        self._tear = rule

    def tear_at_ins(self, ins: int, when: str = BEFORE) -> None:
        """Pull the card at the next command with this INS byte."""
        self.tear_when(at_ins(ins, when))

    def __enter__(self) -> VpcdBridge:
        self.plug()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unplug()

    # -- the serving thread ----------------------------------------------------------------
    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._connected.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _connect(self) -> socket.socket | None:
        while self._wanted:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError:
                time.sleep(0.05)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        return None

    def _run(self) -> None:
        while self._wanted:
            sock = self._connect()
            if sock is None:
                return
            with self._lock:
                if not self._wanted:
                    sock.close()
                    return
                self._sock = sock
                self._connected.set()
            log.info("software card plugged into vpcd %s:%d", self.host, self.port)
            try:
                self._serve(sock)
            except OSError as exc:
                log.debug("vpcd connection %s:%d ended: %s", self.host, self.port, exc)
            with self._lock:
                if self._sock is sock:
                    self._drop()
            if not self.stay_plugged:
                self._wanted = False
            elif self._wanted:
                log.info("vpcd %s:%d dropped the card; reconnecting", self.host, self.port)

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if _TCP_QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError("vpcd closed the connection")
            buf += chunk
        return bytes(buf)

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)

    def _serve(self, sock: socket.socket) -> None:
        reset = getattr(self.card, "reset", None)
        while True:
            (length,) = struct.unpack(">H", self._recv_exact(sock, 2))
            payload = self._recv_exact(sock, length)
            if length == 1:
                code = payload[0]
                if code == GET_ATR:
                    self._send(sock, bytes(self.card.atr))
                elif code in (POWER_ON, RESET, POWER_OFF) and reset is not None:
                    reset()
                continue
            when = self._tear(payload) if self._tear is not None else None
            if when == BEFORE:
                self._tear = None
                self._wanted = False
                raise ConnectionAbortedError("card pulled before the command")
            started = time.perf_counter()
            response = self.card.process(payload)
            self.busy_seconds += time.perf_counter() - started
            self.apdus += 1
            if when == AFTER:
                self._tear = None
                self._wanted = False
                raise ConnectionAbortedError("card pulled after acting on the command")
            self._send(sock, response)


def plug_many(cards: list[Any], *, first_reader: int = 0, **options: Any) -> list[VpcdBridge]:
    """Plug each card into consecutive virtual readers (card, then SAM, ...)."""
    bridges = [VpcdBridge(c, reader=first_reader + i, **options) for i, c in enumerate(cards)]
    for b in bridges:
        b.plug()
    return bridges
