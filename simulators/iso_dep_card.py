"""The card side of ISO/IEC 14443-4 (ISO-DEP) for any software card (``atr`` + ``process``).

``IsoDepCard`` is the protocol alone, sans-I/O: ``activate`` answers RATS (Type A) or
ATTRIB (Type B); ``handle`` takes one block from the reader and returns the block to send
back. It handles I-blocks with chaining both ways, R(ACK), R(NAK) (presence checks and
retransmission) and S(DESELECT). The ATS carries a high FWI, because a software card
behind a socket may answer late. ``UdpCardEmulator`` puts it on the listen side of
nfcpy's UDP driver; the PN532 emulator carries the same blocks over a UART.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

log = logging.getLogger(__name__)

FSD_BY_INDEX = (16, 24, 32, 40, 48, 64, 96, 128, 256)
DEFAULT_FWI = 12  # 4096/fc * 2**12 = 1.24 s frame waiting time
DESELECT = 0xC2


class SoftCard(Protocol):
    atr: bytes

    def process(self, apdu: bytes) -> bytes: ...


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of a PC/SC-contactless style ATR (3B 8n 80 01 T1..Tn TCK)."""
    if len(atr) >= 5 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01":
        n = atr[1] & 0x0F
        return atr[4 : 4 + n]
    return b""


class IsoDepCard:
    """ISO-DEP block protocol on the card side (no CID, no NAD)."""

    def __init__(self, card: SoftCard, *, fwi: int = DEFAULT_FWI, max_frame: int = 256):
        self.card = card
        self.fwi = fwi
        self.max_frame = max_frame  # what the transport can carry in one frame
        self.fsd = 256
        self.active = False
        self._command = bytearray()
        self._pending = b""  # rest of a chained response
        self._last = b""  # the last block sent, for R(NAK) retransmission

    def ats(self) -> bytes:
        """TL T0 TA TB TC + historical bytes: FSCI 8 (256), 106 kbit/s only, FWI, no CID."""
        hist = historical_bytes(self.card.atr)
        body = bytes([0x78, 0x80, (self.fwi << 4) | 0x00, 0x00]) + hist
        return bytes([len(body) + 1]) + body

    def sensb_res(self, pupi: bytes = b"\x0c\x0a\x0f\x0e") -> bytes:
        """ATQB: PUPI, application data, protocol info (FSCI 8, ISO 14443-4, FWI)."""
        return b"\x50" + pupi + b"\x00\x00\x00\x00" + bytes([0x00, 0x81, (self.fwi << 4) | 0x00])

    def activate(self, command: bytes) -> bytes:
        """Answer RATS (E0 xx) with the ATS, or ATTRIB (1D ...) with MBLI/CID 00."""
        self._reset()
        if command[:1] == b"\xe0" and len(command) >= 2:
            self.fsd = FSD_BY_INDEX[min(command[1] >> 4, 8)]
            self.active = True
            return self.ats()
        if command[:1] == b"\x1d" and len(command) >= 9:
            self.fsd = FSD_BY_INDEX[min(command[6] & 0x0F, 8)]
            self.active = True
            return b"\x00"
        raise ValueError(f"not an ISO-DEP activation command: {command.hex()}")

    def _reset(self) -> None:
        self._command.clear()
        self._pending = b""
        self._last = b""
        reset = getattr(self.card, "reset", None)
        if reset is not None:
            reset()

    def _inf_size(self) -> int:
        return min(self.fsd, self.max_frame) - 3  # PCB and the two CRC bytes

    def _send(self, block: bytes) -> bytes:
        self._last = block
        return block

    def _next_chunk(self, number: int) -> bytes:
        size = self._inf_size()
        chunk, self._pending = self._pending[:size], self._pending[size:]
        pcb = (0x12 if self._pending else 0x02) | number
        return self._send(bytes([pcb]) + chunk)

    def handle(self, block: bytes) -> bytes | None:
        """One reader block in, the card's block out (None after DESELECT)."""
        pcb = block[0]
        number = pcb & 0x01
        if pcb & 0xE2 == 0x02:  # I-block
            self._command += block[1:]
            if pcb & 0x10:  # the reader chains: acknowledge
                return self._send(bytes([0xA2 | number]))
            command, self._command = bytes(self._command), bytearray()
            self._pending = self.card.process(command)
            return self._next_chunk(number)
        if pcb & 0xF6 == 0xA2:  # R(ACK): the reader wants our next chained block
            if self._pending:
                return self._next_chunk(number)
            return self._send(bytes([0xA2 | number]))
        if pcb & 0xF6 == 0xB2:  # R(NAK): presence check, or "send that again"
            if self._last and self._last[0] & 0x01 == number and self._last[0] & 0xE2 == 0x02:
                return self._last
            return bytes([0xA2 | number])
        if pcb & 0xF7 == DESELECT:
            self.active = False
            return bytes([DESELECT])
        log.debug("ignoring block %s", block.hex())
        return None


class UdpCardEmulator:
    """A software card on the listen side of nfcpy's UDP driver (``udp:HOST:PORT``).

    Runs on a thread: waits for activation by a reader (Type A with ``kind="A"``, Type B
    with ``kind="B"``), then answers ISO-DEP blocks until DESELECT or RF off, and listens
    again. ``remove`` takes the card out of the field (it stops answering).
    """

    def __init__(
        self,
        card: SoftCard,
        *,
        port: int = 54321,
        host: str = "localhost",
        kind: str = "A",
        uid: bytes = b"\x08\x59\x4b\x54",
        fwi: int = DEFAULT_FWI,
    ):
        if kind not in ("A", "B"):
            raise ValueError("kind must be 'A' or 'B'")
        self.iso = IsoDepCard(card, fwi=fwi, max_frame=290)
        self.path = f"udp:{host}:{port}"
        self.kind = kind
        self.uid = uid
        self.activations = 0
        self._stop = threading.Event()
        self._present = threading.Event()
        self._present.set()
        self._thread: threading.Thread | None = None
        self._clf: Any = None

    def start(self) -> UdpCardEmulator:
        import nfc

        self._clf = nfc.ContactlessFrontend(self.path)
        self._thread = threading.Thread(target=self._run, name="udp-card", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._clf is not None:
            self._clf.close()

    def remove(self) -> None:
        """Take the card out of the field: it answers nothing until ``insert``."""
        self._present.clear()

    def insert(self) -> None:
        self._present.set()

    def __enter__(self) -> UdpCardEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _target(self) -> Any:
        import nfc.clf

        if self.kind == "A":
            return nfc.clf.LocalTarget(
                "106A", sens_res=b"\x04\x00", sdd_res=self.uid, sel_res=b"\x20"
            )
        return nfc.clf.LocalTarget("106B", sensb_res=self.iso.sensb_res())

    def _run(self) -> None:
        import nfc.clf

        while not self._stop.is_set():
            if not self._present.wait(0.1):
                continue
            target = self._clf.listen(self._target(), 0.5)
            if target is None or not target.tt4_cmd or not self._present.is_set():
                continue
            self.activations += 1
            try:
                response: bytes | None = self.iso.activate(bytes(target.tt4_cmd))
            except ValueError as exc:
                log.debug("%s", exc)
                continue
            while response is not None and not self._stop.is_set():
                try:
                    command = self._clf.exchange(bytearray(response), 0.5)
                except nfc.clf.TimeoutError:
                    response = None
                    while not self._stop.is_set() and self._present.is_set():
                        try:
                            command = self._clf.exchange(None, 0.5)
                            break
                        except nfc.clf.TimeoutError:
                            continue
                    else:
                        break
                except nfc.clf.CommunicationError:  # RF off: the reader went away
                    break
                if not self._present.is_set():
                    break  # out of the field: the reader's frame goes unanswered
                if command is None:
                    break
                response = self.iso.handle(bytes(command))
