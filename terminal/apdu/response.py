"""Response APDUs: data plus the two status bytes."""

from __future__ import annotations

from dataclasses import dataclass

from terminal.apdu.errors import MalformedResponse
from terminal.apdu.frozen import quick_init
from terminal.apdu.status import SW

_OK_SW1, _OK_SW2 = SW.OK >> 8, SW.OK & 0xFF


@quick_init
@dataclass(frozen=True, slots=True)
class ResponseAPDU:
    data: bytes
    sw1: int
    sw2: int

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw1 == _OK_SW1 and self.sw2 == _OK_SW2

    def encode(self) -> bytes:
        return self.data + bytes((self.sw1, self.sw2))

    __bytes__ = encode

    @classmethod
    def decode(cls, raw: bytes) -> ResponseAPDU:
        raw = bytes(raw)
        if len(raw) < 2:
            raise MalformedResponse(f"response of {len(raw)} bytes has no status word", raw=raw)
        return cls(raw[:-2], raw[-2], raw[-1])

    @classmethod
    def from_sw(cls, sw: int, data: bytes = b"") -> ResponseAPDU:
        return cls(bytes(data), sw >> 8, sw & 0xFF)

    def __str__(self) -> str:
        return self.encode().hex().upper()
