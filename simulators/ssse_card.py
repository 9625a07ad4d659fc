"""A software social security application (SSSE): EF05 and EF06 record files, PIN."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from terminal.apdu import tlv
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW, wrong_pin
from terminal.ssse.records import DF_SSSE, FID_HOLDER_INFO

PIN_TRIES = 3


@dataclass
class SsseState:
    files: dict[str, list[str]]  # "EF05" -> records (hex), as personalised
    pin: str = "123456"
    pin_tries: int = PIN_TRIES
    holder_pin_required: bool = False
    listed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class SsseApplication:
    kind = "ssse"

    def __init__(self, state: SsseState):
        self.state = state
        self._selected = False
        self._ef: int | None = None
        self._pin_ok = False

    @property
    def df_name(self) -> bytes:
        return DF_SSSE

    def directory_entry(self, interface: str) -> tlv.Tlv | None:
        return None

    def deselect(self) -> None:
        self._selected = False
        self._ef = None
        self._pin_ok = False

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "state": asdict(self.state)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SsseApplication:
        return cls(SsseState(**data["state"]))

    def process(self, apdu: bytes) -> bytes:
        try:
            cmd = CommandAPDU.decode(apdu)
        except MalformedApdu:
            return SW.WRONG_LENGTH.to_bytes(2, "big")
        data, sw = self._handle(cmd)
        return data + sw.to_bytes(2, "big")

    def _handle(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        if cmd.ins == IsoIns.SELECT and cmd.p1 == 0x04:
            if cmd.data != DF_SSSE:
                return b"", SW.FILE_NOT_FOUND
            self.deselect()
            self._selected = True
            fci = tlv.build(0x6F, [tlv.build(0x84, DF_SSSE)]).encode()
            return fci, SW.OK
        if not self._selected:
            return b"", SW.CONDITIONS
        if cmd.ins == IsoIns.SELECT and cmd.p1 in (0x00, 0x02):
            if len(cmd.data) != 2 or f"{cmd.data.hex().upper()}" not in self.state.files:
                return b"", SW.FILE_NOT_FOUND
            self._ef = int.from_bytes(cmd.data, "big")
            return b"", SW.OK
        if cmd.ins == IsoIns.READ_RECORD:
            if cmd.p2 != 0x04 or self._ef is None:
                return b"", SW.WRONG_P1P2
            if self._ef == FID_HOLDER_INFO and self.state.holder_pin_required and not self._pin_ok:
                return b"", SW.SECURITY_STATUS
            records = self.state.files[f"{self._ef:04X}"]
            if not 1 <= cmd.p1 <= len(records):
                return b"", SW.RECORD_NOT_FOUND
            return bytes.fromhex(records[cmd.p1 - 1]), SW.OK
        if cmd.ins == IsoIns.VERIFY:
            return self._verify(cmd)
        return b"", SW.INS_NOT_SUPPORTED

    def _verify(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        st = self.state
        if st.pin_tries == 0:
            return b"", SW.PIN_BLOCKED
        pin = st.pin if len(st.pin) % 2 == 0 else st.pin + "F"
        if secrets.compare_digest(cmd.data, bytes.fromhex(pin)):
            st.pin_tries = PIN_TRIES
            self._pin_ok = True
            return b"", SW.OK
        st.pin_tries -= 1
        return b"", SW.PIN_BLOCKED if st.pin_tries == 0 else wrong_pin(st.pin_tries)
