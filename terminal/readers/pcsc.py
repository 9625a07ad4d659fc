"""PC/SC backend: any reader pcscd (pcsc-lite) knows, through pyscard's low-level API.

Each reader keeps two PC/SC contexts: one for connecting and transmitting, one for
watching (``SCardGetStatusChange``), so a thread blocked waiting for a card never holds
up an exchange, and ``cancel`` (``SCardCancel``) can wake it. Waits block in pcscd
itself; nothing here sleeps and polls while pcscd is up. When pcscd goes away, calls fail
with ``ReaderUnavailable``; the next call re-establishes the context, logs it, and
reports ``SERVICE_LOST`` / ``SERVICE_RESTORED`` to ``on_event``. 61xx/6Cxx stay in the
APDU layer: ``transmit`` moves bytes only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from terminal.apdu.errors import (
    CardRemoved,
    NoCard,
    ReaderTimeout,
    ReaderUnavailable,
    TransportError,
)
from terminal.readers.events import EventKind, ReaderEvent
from terminal.readers.spec import ReaderSpecError

try:
    from smartcard import scard
except ImportError as exc:  # pragma: no cover - pyscard is in the readers extra
    raise ReaderUnavailable(
        "the PC/SC backend needs pyscard: pip install 'yikatong[readers]'"
    ) from exc

log = logging.getLogger(__name__)

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
SERVICE_RETRY = 0.1  # seconds between attempts to reach pcscd while it is down
LONG_WAIT_MS = 3_600_000  # one status-change call for "wait forever"

_U32 = 0xFFFFFFFF
SUCCESS = 0
# pcsc-lite answers these when the daemon died under a call (F_COMM_ERROR: the socket to
# pcscd broke; W_SECURITY_VIOLATION: a context of the previous daemon was used).
SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE & _U32,
    scard.SCARD_E_SERVICE_STOPPED & _U32,
    scard.SCARD_E_INVALID_HANDLE & _U32,
    scard.SCARD_F_COMM_ERROR & _U32,
    scard.SCARD_W_SECURITY_VIOLATION & _U32,
}
READER_GONE = {
    scard.SCARD_E_UNKNOWN_READER & _U32,
    scard.SCARD_E_READER_UNAVAILABLE & _U32,
    scard.SCARD_E_NO_READERS_AVAILABLE & _U32,
}
CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD & _U32,
    scard.SCARD_W_RESET_CARD & _U32,
    scard.SCARD_W_UNPOWERED_CARD & _U32,
    scard.SCARD_E_COMM_DATA_LOST & _U32,
}
NO_CARD = {
    scard.SCARD_E_NO_SMARTCARD & _U32,
    scard.SCARD_W_UNRESPONSIVE_CARD & _U32,
}
TIMEOUT = scard.SCARD_E_TIMEOUT & _U32
CANCELLED = scard.SCARD_E_CANCELLED & _U32
NOT_TRANSACTED = scard.SCARD_E_NOT_TRANSACTED & _U32

UNKNOWN = scard.SCARD_STATE_UNKNOWN

T0 = scard.SCARD_PROTOCOL_T0
T1 = scard.SCARD_PROTOCOL_T1


def _message(rc: int) -> str:
    return f"{scard.SCardGetErrorMessage(rc).strip().rstrip('.')} (0x{rc & _U32:08X})"


def error_for(rc: int, doing: str, reader: str) -> TransportError:
    """The typed transport exception for a PC/SC return code."""
    rc &= _U32
    text = f"{doing} on {reader!r}: {_message(rc)}"
    if rc in CARD_GONE:
        return CardRemoved(text)
    if rc in NO_CARD:
        return NoCard(text)
    if rc in SERVICE_GONE:
        return ReaderUnavailable(f"{text}; is pcscd running?")
    if rc in READER_GONE:
        return ReaderUnavailable(f"{text}; was the reader unplugged?")
    if rc == TIMEOUT:
        return ReaderTimeout(text)
    return TransportError(text)


class _Context:
    """One PC/SC context, re-established on demand after pcscd went away."""

    def __init__(self, purpose: str, on_event: Callable[[ReaderEvent], None] | None):
        self.purpose = purpose
        self.handle: int | None = None
        self.lost = False
        self._on_event = on_event

    def get(self) -> int:
        if self.handle is None:
            rc, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if rc != SUCCESS:
                raise ReaderUnavailable(f"PC/SC service unavailable: {_message(rc)}")
            self.handle = handle
            if self.lost:
                self.lost = False
                log.warning("PC/SC %s context re-established: pcscd is back", self.purpose)
                if self._on_event is not None:
                    self._on_event(ReaderEvent(EventKind.SERVICE_RESTORED))
        return self.handle

    def drop(self, *, lost: bool) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            scard.SCardReleaseContext(handle)
        if lost and not self.lost:
            self.lost = True
            log.warning("PC/SC %s context lost: pcscd stopped or restarted", self.purpose)
            if self._on_event is not None:
                self._on_event(ReaderEvent(EventKind.SERVICE_LOST))


def _list(context: int) -> tuple[int, list[str]]:
    rc, readers = scard.SCardListReaders(context, [])
    rc &= _U32
    if rc == scard.SCARD_E_NO_READERS_AVAILABLE & _U32:
        return SUCCESS, []
    return rc, list(readers) if rc == SUCCESS else []


def list_readers(context: int | None = None) -> list[str]:
    """Names of the readers pcscd knows now ([] when none); ReaderUnavailable without pcscd."""
    own = context is None
    if own:
        rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rc != SUCCESS:
            raise ReaderUnavailable(f"PC/SC service unavailable: {_message(rc)}")
    try:
        rc, readers = _list(context)
        if rc != SUCCESS:
            raise error_for(rc, "listing readers", "pcscd")
        return readers
    finally:
        if own:
            scard.SCardReleaseContext(context)


def match_reader(wanted: str, readers: list[str]) -> str | None:
    """Exact name, else a reader index ("0"), else the one name containing ``wanted``."""
    if not readers:
        return None
    if not wanted:
        return readers[0]
    if wanted in readers:
        return wanted
    if wanted.isdigit():
        index = int(wanted)
        return readers[index] if index < len(readers) else None
    hits = [r for r in readers if wanted.lower() in r.lower()]
    if len(hits) > 1:
        raise ReaderUnavailable(f"{wanted!r} matches several readers: {', '.join(hits)}")
    return hits[0] if hits else None


def _card_in(state: int) -> bool:
    return bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_MUTE


class PcscReader:
    """One PC/SC reader slot. SHARED access by default, EXCLUSIVE on request; T=0 or T=1."""

    def __init__(
        self,
        reader: str = "",
        *,
        exclusive: bool = False,
        protocols: int = T0 | T1,
        on_event: Callable[[ReaderEvent], None] | None = None,
    ):
        self.wanted = reader
        self.reader_name: str | None = None
        self.exclusive = exclusive
        self.protocols = protocols
        self.on_event = on_event
        self._ctx = _Context("transmit", on_event)
        self._watch = _Context("watch", None)
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._waiters = 0
        self._card: int | None = None
        self._connections = 0
        self.connection = 0  # number of the live connection (0: none); a new one = card reset
        self._pci = scard.SCARD_PCI_T1
        self._protocol = 0
        self._atr = b""

    @property
    def name(self) -> str:
        return f"pcsc:{self.reader_name or self.wanted}"

    @property
    def protocol(self) -> str:
        """The protocol of the current connection: "T=0", "T=1" or ""."""
        return {T0: "T=0", T1: "T=1"}.get(self._protocol, "")

    # -- connection ------------------------------------------------------------------------
    def connect(self) -> bytes:
        """Connect to the card (or keep a live connection) and return its ATR."""
        with self._lock:
            if self._card is not None:
                rc, *_ = scard.SCardStatus(self._card)
                if rc == SUCCESS:
                    return self._atr
                self._forget_card()
            share = scard.SCARD_SHARE_EXCLUSIVE if self.exclusive else scard.SCARD_SHARE_SHARED
            for _attempt in (1, 2):  # a context that died with pcscd is replaced once
                context = self._ctx.get()
                rc, readers = _list(context)
                if rc == SUCCESS:
                    name = match_reader(self.wanted, readers)
                    if name is None:
                        raise ReaderUnavailable(
                            f"no PC/SC reader {self.wanted!r}; pcscd lists "
                            f"{', '.join(readers) or 'none'}"
                        )
                    self.reader_name = name
                    rc, card, protocol = scard.SCardConnect(context, name, share, self.protocols)
                if rc & _U32 not in SERVICE_GONE:
                    break
                self._ctx.drop(lost=True)
            if rc != SUCCESS:
                raise error_for(rc, "connecting", self.reader_name or self.wanted)
            rc, _name, _state, _proto, atr = scard.SCardStatus(card)
            if rc != SUCCESS:
                scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
                raise error_for(rc, "reading the ATR", self.reader_name or self.wanted)
            self._card, self._protocol, self._atr = card, protocol, bytes(atr)
            self._connections += 1
            self.connection = self._connections
            self._pci = scard.SCARD_PCI_T0 if protocol == T0 else scard.SCARD_PCI_T1
            log.debug("connected to %s (%s), ATR %s", self.name, self.protocol, self._atr.hex())
            return self._atr

    @property
    def atr(self) -> bytes:
        if self._card is None:
            raise NoCard(f"not connected to a card in {self.name}")
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        card = self._card
        if card is None:
            self.connect()
            card = self._card
        rc, response = scard.SCardTransmit(card, self._pci, list(apdu))
        if rc != SUCCESS:
            raise self._transmit_failed(rc, apdu)
        if len(response) < 2:
            self._forget_card()
            raise CardRemoved(
                f"no answer to {bytes(apdu[:4]).hex().upper()} from {self.name}: "
                "the card left the field mid-exchange"
            )
        return bytes(response)

    def _transmit_failed(self, rc: int, apdu: bytes) -> TransportError:
        rc &= _U32
        doing = f"sending {bytes(apdu[:4]).hex().upper()}"
        reader = self.reader_name or self.wanted
        if rc in SERVICE_GONE:
            self._forget_card()
            self._ctx.drop(lost=True)
        elif rc == NOT_TRANSACTED and not self.card_present():
            self._forget_card()
            return CardRemoved(f"{doing} on {reader!r}: the card left the field mid-exchange")
        elif rc in CARD_GONE | NO_CARD | READER_GONE:
            self._forget_card()
        return error_for(rc, doing, reader)

    def _forget_card(self) -> None:
        card, self._card = self._card, None
        self.connection = 0
        self._atr = b""
        self._protocol = 0
        if card is not None:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def disconnect(self, *, reset: bool = False) -> None:
        with self._lock:
            card, self._card = self._card, None
            self._atr = b""
            self.connection = 0
            if card is not None:
                how = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
                scard.SCardDisconnect(card, how)

    def close(self) -> None:
        """Disconnect and release both contexts."""
        self.disconnect()
        self._ctx.drop(lost=False)
        self._watch.drop(lost=False)

    # -- presence and events ---------------------------------------------------------------
    def _watch_state(self, timeout_ms: int, current: int) -> tuple[int, int]:
        """One SCardGetStatusChange on the watch context: (rc, new state of our reader).

        A missing reader reads as SCARD_STATE_UNKNOWN at once; once known missing, the call
        blocks on the PnP notification until the set of readers changes.
        """
        context = self._watch.get()
        rc, readers = _list(context)
        if rc != SUCCESS:
            return rc, current
        name = match_reader(self.wanted, readers)
        if name is None:
            if current != UNKNOWN:
                return SUCCESS, UNKNOWN
            states = [(PNP_NOTIFICATION, len(readers) << 16)]
            rc, _ = scard.SCardGetStatusChange(context, timeout_ms, states)
            return rc & _U32, UNKNOWN
        if current == UNKNOWN or (self.reader_name is not None and name != self.reader_name):
            current = scard.SCARD_STATE_UNAWARE
        self.reader_name = name
        rc, states = scard.SCardGetStatusChange(context, timeout_ms, [(name, current)])
        if rc != SUCCESS:
            return rc & _U32, current
        return SUCCESS, states[0][1]

    def _wait(self, want_card: bool, timeout: float | None) -> bool:
        with self._lock:
            self._waiters += 1
        try:
            return self._wait_loop(want_card, timeout)
        finally:
            with self._lock:
                self._waiters -= 1

    def _wait_loop(self, want_card: bool, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        current = scard.SCARD_STATE_UNAWARE
        while True:
            if self._cancel.is_set():
                return False
            left_ms = LONG_WAIT_MS
            if deadline is not None:
                left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if current == scard.SCARD_STATE_UNAWARE:
                left_ms = 0  # first look: report the state as it is now
            try:
                rc, state = self._watch_state(left_ms, current)
            except ReaderUnavailable:  # pcscd is down: no context can be made yet
                rc, state = next(iter(SERVICE_GONE)), current
            if rc == SUCCESS:
                if state == UNKNOWN:
                    if not want_card:
                        return True
                    current = UNKNOWN
                elif _card_in(state) == want_card:
                    return True
                else:
                    current = state & ~scard.SCARD_STATE_CHANGED
                    continue
            elif rc in SERVICE_GONE:
                self._watch.drop(lost=True)
                current = scard.SCARD_STATE_UNAWARE
                if deadline is None or time.monotonic() < deadline:
                    time.sleep(SERVICE_RETRY)
            elif rc == CANCELLED:
                return False
            elif rc in READER_GONE:
                current = scard.SCARD_STATE_UNAWARE
            elif rc != TIMEOUT:
                raise error_for(rc, "waiting for a card change", self.name)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def card_present(self) -> bool:
        try:
            rc, state = self._watch_state(0, scard.SCARD_STATE_UNAWARE)
        except ReaderUnavailable:
            return False
        return rc == SUCCESS and state != UNKNOWN and _card_in(state)

    def wait_for_card(self, timeout: float | None = None) -> bool:
        """Block until a card is in the reader (the reader may appear meanwhile)."""
        return self._wait(True, timeout)

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        return self._wait(False, timeout)

    def cancel(self, timeout: float = 1.0) -> None:
        """Wake threads waiting in ``wait_for_card``/``wait_for_removal`` (they return False).

        SCardCancel only wakes a call already blocked, so it is repeated until every waiter
        has noticed; with no waiter this does nothing.
        """
        with self._lock:
            if not self._waiters:
                return
            self._cancel.set()
        deadline = time.monotonic() + timeout
        while self._waiters and time.monotonic() < deadline:
            handle = self._watch.handle
            if handle is not None:
                scard.SCardCancel(handle)
            time.sleep(0.01)
        self._cancel.clear()

    def __enter__(self) -> PcscReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcscMonitor:
    """Card and reader events for every PC/SC reader, on a thread with its own context.

    Reports CARD_INSERTED/REMOVED, READER_ADDED/REMOVED (through the PnP notification
    reader) and SERVICE_LOST/RESTORED to ``callback``. ``stop`` cancels the blocking call.
    """

    def __init__(self, callback: Callable[[ReaderEvent], None]):
        self.callback = callback
        self._stop = threading.Event()
        self._ctx = _Context("monitor", callback)
        self._thread: threading.Thread | None = None
        self._known: dict[str, int] = {}
        self.started = threading.Event()

    def start(self) -> PcscMonitor:
        self._thread = threading.Thread(target=self._run, name="pcsc-monitor", daemon=True)
        self._thread.start()
        self.started.wait(5.0)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread. SCardCancel only wakes a call already blocked, so it is repeated
        until the thread has left (it may have been between two calls)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread is not None and self._thread.is_alive():
            handle = self._ctx.handle
            if handle is not None:
                scard.SCardCancel(handle)
            self._thread.join(0.05)
            if time.monotonic() > deadline:
                break

    def __enter__(self) -> PcscMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _emit(self, kind: EventKind, reader: str = "", atr: bytes = b"") -> None:
        try:
            self.callback(ReaderEvent(kind, reader, atr))
        except Exception:  # a broken callback must not kill the monitor
            log.exception("PC/SC event callback failed")

    def _lost(self) -> None:
        for reader, state in self._known.items():
            if _card_in(state):
                self._emit(EventKind.CARD_REMOVED, reader)
        self._known.clear()
        self._ctx.drop(lost=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    context = self._ctx.get()
                    self._cycle(context)
                except TransportError as exc:  # pcscd gone or confused: start afresh
                    log.debug("PC/SC monitor: %s", exc)
                    if self._ctx.handle is not None:
                        self._lost()
                    self.started.set()
                    self._stop.wait(SERVICE_RETRY)
        finally:
            self._ctx.drop(lost=False)

    def _cycle(self, context: int) -> None:
        readers = list_readers(context)
        for gone in [r for r in self._known if r not in readers]:
            if _card_in(self._known.pop(gone)):
                self._emit(EventKind.CARD_REMOVED, gone)
            self._emit(EventKind.READER_REMOVED, gone)
        states = [(r, self._known.get(r, scard.SCARD_STATE_UNAWARE)) for r in readers]
        states.append((PNP_NOTIFICATION, len(readers) << 16))
        first = any(r not in self._known for r in readers)
        rc, new = scard.SCardGetStatusChange(context, 0 if first else LONG_WAIT_MS, states)
        self.started.set()
        rc &= _U32
        if rc in SERVICE_GONE:
            self._lost()
            return
        if rc in (TIMEOUT, CANCELLED) or rc in READER_GONE:
            return
        if rc != SUCCESS:
            raise error_for(rc, "watching readers", "pcscd")
        for reader, state, atr in new:
            if reader == PNP_NOTIFICATION:
                continue
            before = self._known.get(reader)
            self._known[reader] = state & ~scard.SCARD_STATE_CHANGED
            if before is None:
                self._emit(EventKind.READER_ADDED, reader)
                before = scard.SCARD_STATE_EMPTY
            if _card_in(state) and not _card_in(before):
                self._emit(EventKind.CARD_INSERTED, reader, bytes(atr))
            elif not _card_in(state) and _card_in(before):
                self._emit(EventKind.CARD_REMOVED, reader)


def from_spec(rest: str) -> PcscReader:
    """``pcsc:NAME`` (exact name, index, or a unique part of it); ``;exclusive``, ``;t0``,
    ``;t1`` may follow, e.g. ``pcsc:Virtual PCD 00 01;exclusive``."""
    name, *options = rest.split(";")
    exclusive = False
    protocols = T0 | T1
    for option in (o.strip().lower() for o in options):
        if option == "exclusive":
            exclusive = True
        elif option == "shared":
            exclusive = False
        elif option in ("t0", "t=0"):
            protocols = T0
        elif option in ("t1", "t=1"):
            protocols = T1
        else:
            raise ReaderSpecError(
                f"unknown pcsc option {option!r}: use exclusive, shared, t0 or t1"
            )
    return PcscReader(name.strip(), exclusive=exclusive, protocols=protocols)
