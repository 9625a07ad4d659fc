"""An NXP PN532 on a UART, emulated on a pty pair, with a software card in its field.

The host side (nfcpy's ``tty:PATH:pn532`` driver, or any PN532 host library) talks the
PN532 host interface of NXP UM0701: normal frames ``00 00 FF LEN LCS TFI data DCS 00``,
extended frames ``00 00 FF FF FF LENM LENL LCS ...`` for long data, ACK ``00 00 FF 00 FF
00`` after every command, error frame ``00 00 FF 01 FF 7F 81 00`` for syntax errors. TFI
is D4 host to chip and D5 back, the answer code being the command code + 1.

Answered: Diagnose (line test echo), GetFirmwareVersion (PN532 v1.6), GetGeneralStatus,
ReadRegister/WriteRegister (a register file; CIU_FIFOData reads 26h after a poll that
found nothing, as the chip's FIFO still holds the SENS_REQ), SetParameters,
SAMConfiguration, SetSerialBaudrate, PowerDown, RFConfiguration, InListPassiveTarget
(106 kbit/s Type A), InCommunicateThru (raw frames: RATS, ISO-DEP blocks),
InDataExchange (the chip's own ISO-DEP), InDeselect, InRelease.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import tty
from typing import Any

from simulators.iso_dep_card import IsoDepCard, SoftCard

log = logging.getLogger(__name__)

ACK = bytes.fromhex("0000FF00FF00")
SYNTAX_ERROR = bytes.fromhex("0000FF01FF7F8100")
FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # IC PN532, version 1.6, ISO A/B + FeliCa
FIFO_DATA = 0x6339
EMPTY_POLL_DELAY = 0.02  # a real chip spends about this on a poll that finds no card

STATUS_OK = 0x00
STATUS_TIMEOUT = 0x01  # "the target has not answered"
STATUS_MORE = 0x40  # MI bit: more data follows (InDataExchange)


def build_frame(payload: bytes) -> bytes:
    """A PN532 frame around ``payload`` (TFI + data): normal, or extended when long."""
    n = len(payload)
    if n < 255:
        head = bytes([0x00, 0x00, 0xFF, n, (0x100 - n) & 0xFF])
    else:
        hi, lo = n >> 8, n & 0xFF
        head = bytes([0x00, 0x00, 0xFF, 0xFF, 0xFF, hi, lo, (0x100 - hi - lo) & 0xFF])
    return head + payload + bytes([(0x100 - sum(payload)) & 0xFF, 0x00])


class FrameError(ValueError):
    """A host frame with a bad length or data checksum."""


def parse_frames(buffer: bytearray) -> list[bytes | None]:
    """Take complete frames off the front of ``buffer``: payloads, or None for an ACK frame.

    Bytes before the start code (preamble, long preamble, HSU wake-up 55h) are skipped;
    an incomplete frame stays in the buffer.
    """
    frames: list[bytes | None] = []
    while True:
        start = buffer.find(b"\x00\xff")
        if start < 0 or len(buffer) < start + 4:
            return frames
        i = start + 2
        length, lcs = buffer[i], buffer[i + 1]
        if length == 0x00 and lcs == 0xFF:  # ACK from the host: cancels the last command
            del buffer[: i + 3]
            frames.append(None)
            continue
        if length == 0xFF and lcs == 0xFF:  # extended frame
            if len(buffer) < i + 5:
                return frames
            hi, lo, lcs = buffer[i + 2], buffer[i + 3], buffer[i + 4]
            if (hi + lo + lcs) & 0xFF:
                del buffer[: i + 5]
                raise FrameError("extended frame length checksum")
            length, body = hi << 8 | lo, i + 5
        else:
            if (length + lcs) & 0xFF:
                del buffer[: i + 2]
                raise FrameError("frame length checksum")
            body = i + 2
        if len(buffer) < body + length + 2:
            return frames
        payload = bytes(buffer[body : body + length])
        dcs = buffer[body + length]
        del buffer[: body + length + 2]
        if (sum(payload) + dcs) & 0xFF:
            raise FrameError("frame data checksum")
        frames.append(payload)


class Pn532Emulator:
    """A PN532 behind a pty; ``port`` is the host's end (e.g. /dev/pts/5).

    ``insert(card)`` puts a software card in the field, ``remove()`` takes it out (the
    next frame to it times out, as on the air).
    """

    def __init__(self, card: SoftCard | None = None, *, uid: bytes = b"\x08\x53\x4e\x01"):
        self.uid = uid
        self.registers: dict[int, int] = {}
        self.commands: list[int] = []  # command codes received, in order
        self._iso: IsoDepCard | None = IsoDepCard(card) if card is not None else None
        self._listed = False
        self._out = b""  # rest of a long InDataExchange answer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)

    @property
    def path(self) -> str:
        """The nfcpy / yikatong device path: ``tty:/dev/pts/N:pn532``."""
        return f"tty:{self.port}:pn532"

    def insert(self, card: SoftCard) -> None:
        self._iso = IsoDepCard(card)
        self._listed = False

    def remove(self) -> None:
        self._iso = None
        self._listed = False

    # -- serving ---------------------------------------------------------------------------
    def start(self) -> Pn532Emulator:
        self._thread = threading.Thread(target=self._run, name="pn532", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Pn532Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                buffer += os.read(self._master, 4096)
            except OSError:
                return
            try:
                frames = parse_frames(buffer)
            except FrameError as exc:
                log.debug("bad host frame: %s", exc)
                os.write(self._master, SYNTAX_ERROR)
                continue
            for payload in frames:
                if payload is None:
                    continue  # host ACK: nothing is pending in this emulator
                os.write(self._master, ACK)
                answer = self.answer(payload)
                os.write(self._master, answer)

    def answer(self, payload: bytes) -> bytes:
        """The response frame for one host payload (TFI D4, command, data)."""
        if len(payload) < 2 or payload[0] != 0xD4:
            return SYNTAX_ERROR
        code, data = payload[1], payload[2:]
        self.commands.append(code)
        handler = _HANDLERS.get(code)
        if handler is None:
            return SYNTAX_ERROR
        return build_frame(bytes([0xD5, code + 1]) + handler(self, data))

    # -- commands --------------------------------------------------------------------------
    def _diagnose(self, data: bytes) -> bytes:
        if data[:1] == b"\x00":  # communication line test: echo
            return data
        return b"\x00"

    def _firmware(self, _data: bytes) -> bytes:
        return FIRMWARE

    def _general_status(self, _data: bytes) -> bytes:
        return bytes([0x00, 0x01 if self._listed else 0x00, 0x01 if self._listed else 0x00])

    def _read_register(self, data: bytes) -> bytes:
        out = bytearray()
        for i in range(0, len(data) - 1, 2):
            address = data[i] << 8 | data[i + 1]
            if address == FIFO_DATA and not self._listed:
                out.append(0x26)
            else:
                out.append(self.registers.get(address, 0x00))
        return bytes(out)

    def _write_register(self, data: bytes) -> bytes:
        for i in range(0, len(data) - 2, 3):
            self.registers[data[i] << 8 | data[i + 1]] = data[i + 2]
        return b""

    def _empty(self, _data: bytes) -> bytes:
        return b""

    def _status_ok(self, _data: bytes) -> bytes:
        return bytes([STATUS_OK])

    def _release(self, _data: bytes) -> bytes:
        self._listed = False
        return bytes([STATUS_OK])

    def _rf_configuration(self, data: bytes) -> bytes:
        if data[:2] == b"\x01\x02":  # RF field off: a card in the field resets
            self._listed = False
        return b""

    def _in_list_passive_target(self, data: bytes) -> bytes:
        brty = data[1] if len(data) > 1 else 0
        iso = self._iso
        if brty != 0 or iso is None:
            time.sleep(EMPTY_POLL_DELAY)
            return b"\x00"
        self._listed = True
        iso.active = False
        # NbTg, Tg, SENS_RES (as the chip sends it), SEL_RES, NFCID1 length, NFCID1
        return bytes([0x01, 0x01, 0x00, 0x04, 0x20, len(self.uid)]) + self.uid

    def _in_communicate_thru(self, data: bytes) -> bytes:
        iso = self._iso
        if iso is None or not self._listed:
            return bytes([STATUS_TIMEOUT])
        try:
            answer = iso.activate(data) if data[:1] == b"\xe0" else iso.handle(data)
        except ValueError:
            return bytes([STATUS_TIMEOUT])
        if answer is None:
            return bytes([STATUS_TIMEOUT])
        return bytes([STATUS_OK]) + answer

    def _in_data_exchange(self, data: bytes) -> bytes:
        """The chip runs ISO-DEP itself: data is a whole APDU (after Tg), the answer too."""
        iso = self._iso
        if iso is None or not self._listed:
            return bytes([STATUS_TIMEOUT])
        if self._out:
            chunk, self._out = self._out[:252], self._out[252:]
            return bytes([STATUS_MORE if self._out else STATUS_OK]) + chunk
        if not iso.active:
            iso.activate(b"\xe0\x80")
        response = iso.card.process(bytes(data[1:]))
        chunk, self._out = response[:252], response[252:]
        return bytes([STATUS_MORE if self._out else STATUS_OK]) + chunk


_HANDLERS: dict[int, Any] = {
    0x00: Pn532Emulator._diagnose,
    0x02: Pn532Emulator._firmware,
    0x04: Pn532Emulator._general_status,
    0x06: Pn532Emulator._read_register,
    0x08: Pn532Emulator._write_register,
    0x10: Pn532Emulator._empty,  # SetSerialBaudrate: the host ACKs, then changes speed
    0x12: Pn532Emulator._empty,  # SetParameters
    0x14: Pn532Emulator._empty,  # SAMConfiguration
    0x16: Pn532Emulator._status_ok,  # PowerDown
    0x32: Pn532Emulator._rf_configuration,
    0x40: Pn532Emulator._in_data_exchange,
    0x42: Pn532Emulator._in_communicate_thru,
    0x44: Pn532Emulator._release,  # InDeselect
    0x4A: Pn532Emulator._in_list_passive_target,
    0x52: Pn532Emulator._release,  # InRelease
}
