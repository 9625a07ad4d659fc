"""NFC backend: ISO-DEP (ISO/IEC 14443-4) Type 4A/4B cards on nfcpy's readers.

USB readers (ACR122U, RC-S380, PN533: ``nfc:usb``), PN532 modules on a UART
(``nfc:tty:/dev/ttyUSB0:pn532``; nfcpy's own ``tty:USB0:pn532`` names work too) and nfcpy's
UDP test driver (``nfc:udp:HOST:PORT``). Discovery runs nfcpy's blocking connect loop
with a ``terminate`` callback, so ``cancel`` stops a wait and the next ``wait_for_card``
re-arms it. Presence is an ISO-DEP R(NAK) check, as nfcpy does; the RF link offers no
other way, so ``wait_for_removal`` repeats it every ``PRESENCE_INTERVAL`` seconds.
The ATR is built from the ATS (Type A) or ATQB (Type B) as PC/SC part 3 does.
"""

from __future__ import annotations

import importlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from terminal.apdu.errors import CardRemoved, NoCard, ReaderUnavailable
from terminal.readers.events import EventKind, ReaderEvent
from terminal.readers.spec import ReaderSpecError

try:
    import nfc
    import nfc.clf
    import nfc.tag
    import nfc.tag.tt4
except ImportError as exc:  # pragma: no cover - nfcpy is in the readers extra
    raise ReaderUnavailable("the NFC backend needs nfcpy: pip install 'yikatong[readers]'") from exc

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = 0.1  # seconds between presence checks (nfcpy's own loop uses 0.1 s)
TTY_DRIVERS = ("pn532", "arygon")


def atr_for_type_a(ats: bytes) -> bytes:
    """PC/SC part 3 ATR of an ISO 14443-4 Type A card: 3B 8n 80 01 + ATS historical bytes."""
    historical = b""
    if len(ats) >= 2:
        t0 = ats[1]
        start = 2 + bin(t0 & 0x70).count("1")  # skip TA, TB, TC when present
        historical = ats[start : ats[0]][:15]
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    return b"\x3b" + body + bytes([_xor(body)])


def atr_for_type_b(sensb_res: bytes, attrib_res: bytes = b"") -> bytes:
    """PC/SC part 3 ATR of a Type B card: application data, protocol info, MBLI from ATTRIB."""
    mbli = (attrib_res[0] & 0xF0) if attrib_res else 0
    body = b"\x88\x80\x01" + sensb_res[5:9] + sensb_res[9:12] + bytes([mbli])
    return b"\x3b" + body + bytes([_xor(body)])


def _xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def _iso_dep(target: Any) -> bool:
    """Only ISO 14443-4 cards: SEL_RES bit 6 (Type A), protocol type bit 1 (Type B)."""
    if getattr(target, "sel_res", None):
        return bool(target.sel_res[0] & 0x20)
    sensb = getattr(target, "sensb_res", None)
    return bool(sensb) and len(sensb) >= 11 and bool(sensb[10] & 0x01)


def open_frontend(path: str) -> Any:
    """An opened nfcpy ContactlessFrontend for ``path`` (nfcpy syntax, or tty:/dev/...:driver);
    a device that cannot be opened is ``ReaderUnavailable`` naming the ``nfc:`` spec."""
    spec = f"nfc:{path}"
    frontend = nfc.ContactlessFrontend()
    if path.startswith("tty:/"):
        _, device_path, *driver = path.split(":")
        name = driver[0] if driver else "pn532"
        if name not in TTY_DRIVERS:
            raise ReaderSpecError(
                f"unknown serial NFC driver {name!r}; use {', '.join(TTY_DRIVERS)}"
            )
        from nfc.clf import transport

        try:
            tty = transport.TTY(device_path)
        except (OSError, ValueError) as exc:  # pyserial's SerialException is an OSError
            raise ReaderUnavailable(f"{spec}: {getattr(exc, 'strerror', None) or exc}") from exc
        try:
            device = importlib.import_module(f"nfc.clf.{name}").init(tty)
        except OSError as exc:
            tty.close()
            raise ReaderUnavailable(f"{spec}: no {name} answering on {device_path}: {exc}") from exc
        device._path = device_path
        frontend.device = device
        return frontend
    try:
        opened = frontend.open(path)
    except OSError as exc:
        raise ReaderUnavailable(f"{spec}: cannot open the NFC device: {exc}") from exc
    except ValueError as exc:
        raise ReaderUnavailable(f"{spec}: {_udp_port_problem(path) or exc}") from exc
    if not opened:
        raise ReaderUnavailable(f"{spec}: no NFC device found there")
    return frontend


def _udp_port_problem(path: str) -> str:
    """Why nfcpy's UDP driver refused ``udp:HOST:PORT`` ("" when it was not that): it reads
    the port back through getnameinfo, which names ports of /etc/services (9 is "discard")."""
    parts = path.split(":")
    if parts[0] != "udp" or len(parts) < 3 or not parts[2].isdigit():
        return ""
    service = socket.getnameinfo(("127.0.0.1", int(parts[2])), socket.NI_NUMERICHOST)[1]
    if service.isdigit():
        return ""
    return (
        f"port {parts[2]} is the {service!r} service's, which nfcpy's UDP driver cannot use; "
        "choose a port without a service name (nfcpy's default is 54321)"
    )


class NfcReader:
    """One NFC antenna driven by nfcpy, holding at most one activated ISO-DEP card."""

    def __init__(
        self,
        path: str,
        *,
        targets: tuple[str, ...] = ("106A", "106B"),
        on_event: Callable[[ReaderEvent], None] | None = None,
    ):
        self.path = path
        self.name = f"nfc:{path}"
        self.targets = targets
        self.on_event = on_event
        self._clf: Any = None
        self._tag: Any = None
        self._atr = b""
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._waiters = 0
        self._activation: list[tuple[bytes, bytes]] = []

    # -- device and discovery --------------------------------------------------------------
    def _frontend(self) -> Any:
        if self._clf is None:
            self._clf = open_frontend(self.path)
        return self._clf

    def _emit(self, kind: EventKind) -> None:
        if self.on_event is not None:
            self.on_event(ReaderEvent(kind, self.name, self._atr))

    def _discover(self, timeout: float | None) -> bool:
        """Run nfcpy's connect loop until an ISO-DEP card is activated, cancel, or timeout."""
        clf = self._frontend()
        deadline = None if timeout is None else time.monotonic() + timeout
        activation: list[tuple[bytes, bytes]] = []

        def on_discover(target: Any) -> bool:
            if not _iso_dep(target):
                return False
            activation.clear()
            plain = type(clf).exchange.__get__(clf)

            def recording(data: Any, timeout: float) -> Any:
                response = plain(data, timeout)
                activation.append((bytes(data), bytes(response or b"")))
                return response

            clf.exchange = recording  # records RATS/ATTRIB answers during activation
            return True

        rounds = 0

        def terminate() -> bool:  # asked before each polling round; the first always runs
            nonlocal rounds
            rounds += 1
            if self._cancel.is_set():
                return True
            return rounds > 1 and deadline is not None and time.monotonic() > deadline

        options = {
            "targets": list(self.targets),
            "on-discover": on_discover,
            "on-connect": lambda tag: False,  # hand the tag over instead of nfcpy's wait loop
            "iterations": 1,
            "interval": 0.01,
            "beep-on-connect": False,
        }
        try:
            with self._lock:
                result = clf.connect(rdwr=options, terminate=terminate)
        finally:
            clf.__dict__.pop("exchange", None)
        if result is False:
            raise ReaderUnavailable(f"{self.name}: the NFC device failed (see nfcpy's log)")
        if not isinstance(result, nfc.tag.tt4.Type4Tag):
            return False
        self._tag = result
        self._atr = self._build_atr(result, activation)
        log.debug("ISO-DEP card on %s, ATR %s", self.name, self._atr.hex())
        self._emit(EventKind.CARD_INSERTED)
        return True

    @staticmethod
    def _build_atr(tag: Any, activation: list[tuple[bytes, bytes]]) -> bytes:
        target = tag.target
        first = activation[0] if activation else (b"", b"")
        if target.brty.endswith("B"):
            return atr_for_type_b(bytes(target.sensb_res), first[1])
        return atr_for_type_a(first[1])

    # -- Reader protocol -------------------------------------------------------------------
    def connect(self) -> bytes:
        """The activated card's ATR; discovers one (a single polling round) when none is."""
        if self._tag is None and not self._discover(0):
            raise NoCard(f"no ISO-DEP card in the field of {self.name}")
        return self._atr

    @property
    def atr(self) -> bytes:
        if self._tag is None:
            raise NoCard(f"no card activated on {self.name}")
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        tag = self._tag
        if tag is None:
            self.connect()
            tag = self._tag
        try:
            with self._lock:
                response = tag.transceive(bytearray(apdu))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            self._lost()
            raise CardRemoved(
                f"{bytes(apdu[:4]).hex().upper()} on {self.name}: the card left the field ({exc})"
            ) from exc
        except OSError as exc:
            self._lost()
            self._clf = None
            raise ReaderUnavailable(f"{self.name}: the NFC device failed: {exc}") from exc
        if response is None or len(response) < 2:
            self._lost()
            raise CardRemoved(f"no answer to {bytes(apdu[:4]).hex().upper()} on {self.name}")
        return bytes(response)

    def _lost(self) -> None:
        if self._tag is not None:
            self._tag = None
            self._emit(EventKind.CARD_REMOVED)
            self._atr = b""

    def disconnect(self) -> None:
        """DESELECT the card (best effort) and forget it; the next connect polls again."""
        tag, self._tag = self._tag, None
        self._atr = b""
        if tag is not None:
            try:
                with self._lock:
                    self._frontend().exchange(bytearray(b"\xc2"), 0.1)
            except (nfc.clf.CommunicationError, OSError) as exc:
                log.debug("DESELECT on %s: %s", self.name, exc)

    def close(self) -> None:
        self.cancel()
        self._tag = None
        clf, self._clf = self._clf, None
        if clf is not None:
            with self._lock:
                clf.close()

    def card_present(self) -> bool:
        """Whether the activated card still answers (False when none is activated: finding
        a new card takes a polling round, which is ``wait_for_card``'s job)."""
        tag = self._tag
        if tag is None:
            return False
        with self._lock:
            present = bool(tag.is_present)
        if not present:
            self._lost()
        return present

    def _counted(self, fn: Callable[[], bool]) -> bool:
        with self._lock:
            self._waiters += 1
        try:
            return fn()
        finally:
            with self._lock:
                self._waiters -= 1
                if not self._waiters:
                    self._cancel.clear()

    def wait_for_card(self, timeout: float | None = None) -> bool:
        if self._tag is not None and self.card_present():
            return True
        return self._counted(lambda: self._discover(timeout))

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        def wait() -> bool:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.card_present():
                if self._cancel.is_set():
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(PRESENCE_INTERVAL)
            return True

        return self._counted(wait)

    def cancel(self) -> None:
        """Stop a ``wait_for_card``/``wait_for_removal`` in progress (it returns False)."""
        if self._waiters:
            self._cancel.set()


def list_devices() -> list[tuple[str, str]]:
    """(spec, description) of NFC USB readers nfcpy knows and of serial ports (not probed)."""
    found: list[tuple[str, str]] = []
    try:
        from nfc.clf import device as nfc_device
        from nfc.clf import transport

        for vid, pid, bus, dev in transport.USB.find("usb") or []:
            driver = nfc_device.usb_device_map.get((vid, pid))
            if driver is not None:
                found.append(
                    (f"nfc:usb:{int(bus):03d}:{int(dev):03d}", f"{driver} USB {vid:04x}:{pid:04x}")
                )
    except (OSError, ImportError) as exc:
        log.debug("USB scan failed: %s", exc)
    try:
        from serial.tools import list_ports

        for port in list_ports.comports():
            found.append(
                (
                    f"nfc:tty:{port.device}:pn532",
                    f"serial port ({port.description}); a PN532 module there would answer",
                )
            )
    except ImportError as exc:
        log.debug("serial scan failed: %s", exc)
    return found


def from_spec(rest: str) -> NfcReader:
    """``nfc:usb``, ``nfc:usb:BUS:DEV``, ``nfc:tty:PATH:pn532``, ``nfc:udp:HOST:PORT``."""
    kind = rest.split(":", 1)[0]
    if kind not in ("usb", "tty", "com", "udp"):
        raise ReaderSpecError(
            f"unknown NFC device {rest!r}: use nfc:usb, nfc:tty:PATH:pn532 or nfc:udp:HOST:PORT"
        )
    if kind == "tty" and rest.count(":") < 1:
        raise ReaderSpecError("nfc:tty needs a port: nfc:tty:/dev/ttyUSB0:pn532")
    if kind == "udp" and rest.count(":") == 2:
        port = rest.rsplit(":", 1)[1]
        if not port.isdigit():
            raise ReaderSpecError(f"nfc:udp port must be a number, not {port!r}")
        if not 0 < int(port) < 65536:
            raise ReaderSpecError(f"nfc:udp port must be 1 to 65535, not {port!r}")
    return NfcReader(rest)


__all__ = ["NfcReader", "atr_for_type_a", "atr_for_type_b", "from_spec", "list_devices"]
