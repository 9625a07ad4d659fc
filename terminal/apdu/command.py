"""ISO 7816-4 command APDUs: cases 1-4, short and extended length, encode and decode."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from terminal.apdu.errors import MalformedApdu
from terminal.apdu.frozen import quick_init, unchecked_new

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX = 65535
EXTENDED_MAX_LE = 65536


@quick_init
@dataclass(frozen=True, slots=True)
class CommandAPDU:
    """A command APDU. ``le`` is the expected length (None = case 1/3, 256/65536 = "all")."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            wide = (self.cla | self.ins | self.p1 | self.p2) >> 8  # 0 when all four are bytes
        except TypeError:
            wide = 1
        if wide:
            for name in ("cla", "ins", "p1", "p2"):
                value = getattr(self, name)
                if not 0 <= value <= 0xFF:
                    raise MalformedApdu(f"{name} must be a byte, got {value!r}")
        if type(self.data) is not bytes:
            if not isinstance(self.data, bytes | bytearray):
                raise MalformedApdu("data must be bytes")
            object.__setattr__(self, "data", bytes(self.data))
        le = self.le
        if not self.extended and len(self.data) <= SHORT_MAX_LC and (le is None or 0 < le <= 256):
            return  # a short command: nothing below applies
        if len(self.data) > EXTENDED_MAX:
            raise MalformedApdu(f"data of {len(self.data)} bytes exceeds 65535")
        if self.le is not None and not 0 < self.le <= EXTENDED_MAX_LE:
            raise MalformedApdu(f"Le must be 1..65536 (256 means 'up to 256'), got {self.le}")
        needs_extended = len(self.data) > SHORT_MAX_LC or (
            self.le is not None and self.le > SHORT_MAX_LE
        )
        if needs_extended and not self.extended:
            object.__setattr__(self, "extended", True)
        if self.extended and not self.data and self.le is None:
            object.__setattr__(self, "extended", False)  # case 1 has no length fields

    @property
    def case(self) -> int:
        """ISO 7816-3 case number: 1 no data/no Le, 2 Le only, 3 data only, 4 both."""
        if self.data:
            return 4 if self.le is not None else 3
        return 2 if self.le is not None else 1

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def with_le(self, le: int | None) -> CommandAPDU:
        """The same command re-issued with another Le (used for 6Cxx)."""
        return CommandAPDU(self.cla, self.ins, self.p1, self.p2, self.data, le, self.extended)

    def encode(self) -> bytes:
        """The command's bytes, encoded at the first call and kept (the command is immutable,
        and SELECT or INITIALIZE at one fare is the same object every tap)."""
        wire = self._wire
        if wire is None:
            wire = self._encode()
            _set_wire(self, wire)
        return wire

    def _encode(self) -> bytes:
        data, le = self.data, self.le
        if not self.extended:  # short: header, Lc and data, Le in one bytes object each
            if data:
                head = bytes((self.cla, self.ins, self.p1, self.p2, len(data)))
                return head + data if le is None else head + data + bytes((le % 256,))
            if le is None:
                return bytes((self.cla, self.ins, self.p1, self.p2))
            return bytes((self.cla, self.ins, self.p1, self.p2, le % 256))
        out = bytearray(self.header)
        if data:
            out += b"\x00" + len(data).to_bytes(2, "big") + data
            if le is not None:
                out += (le % 65536).to_bytes(2, "big")
        elif le is not None:
            out += b"\x00" + (le % 65536).to_bytes(2, "big")
        return bytes(out)

    __bytes__ = encode

    @classmethod
    def decode(cls, raw: bytes) -> CommandAPDU:
        """Parse an encoded command, rejecting any body that fits no ISO 7816-4 case."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise MalformedApdu(f"command of {len(raw)} bytes is shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0 or n < 3:
            lc = body[0]
            if lc == 0:
                raise MalformedApdu("short Lc of 0 is not allowed")
            if n == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], le=body[-1] or 256)
            raise MalformedApdu(f"short Lc={lc} does not match a body of {n} bytes")
        if n == 3:
            le = int.from_bytes(body[1:3], "big") or 65536
            return cls(cla, ins, p1, p2, le=le, extended=True)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise MalformedApdu("extended Lc of 0 is not allowed")
        if n == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:], extended=True)
        if n == 5 + lc:
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, body[3 : 3 + lc], le=le, extended=True)
        raise MalformedApdu(f"extended Lc={lc} does not match a body of {n} bytes")

    def __str__(self) -> str:
        return self.encode().hex().upper()


_set_wire = CommandAPDU._wire.__set__  # type: ignore[attr-defined]
_filled: Callable[..., CommandAPDU] = unchecked_new(  # type: ignore[assignment]
    CommandAPDU, "cla", "ins", "p1", "p2", "data", "le", "extended", "_wire"
)


class CommandTemplate:
    """A short command whose header, Lc (when fixed) and Le are checked and encoded once;
    ``fill(data)`` makes the command with its bytes ready, by concatenation: the per-tap
    commands (INITIALIZE, INIT SAM, DEBIT, CREDIT SAM) are built this way. Data of another
    length or type goes through CommandAPDU's own checks (and is refused there or by Lc)."""

    __slots__ = ("_head", "_tail", "cla", "ins", "lc", "le", "p1", "p2")

    def __init__(self, cla: int, ins: int, p1: int, p2: int, *, lc: int | None, le: int | None):
        CommandAPDU(cla, ins, p1, p2, bytes(lc or 1), le)  # the header and Le, checked once
        if lc is not None and not 0 < lc <= SHORT_MAX_LC:
            raise MalformedApdu(f"a template's Lc must be 1..255, got {lc}")
        if le is not None and le > SHORT_MAX_LE:
            raise MalformedApdu(f"a template's Le must be 1..256, got {le}")
        self.cla, self.ins, self.p1, self.p2, self.lc, self.le = cla, ins, p1, p2, lc, le
        head = (cla, ins, p1, p2) if lc is None else (cla, ins, p1, p2, lc)
        self._head = bytes(head)
        self._tail = b"" if le is None else bytes((le % 256,))

    def fill(self, data: bytes) -> CommandAPDU:
        """The command with ``data``; MalformedApdu when its length is not the template's Lc."""
        n, lc = len(data), self.lc
        if type(data) is bytes:
            if n == lc:
                wire = self._head + data + self._tail
            elif lc is None and 0 < n <= SHORT_MAX_LC:
                wire = self._head + bytes((n,)) + data + self._tail
            else:
                wire = b""
            if wire:
                return _filled(self.cla, self.ins, self.p1, self.p2, data, self.le, False, wire)
        if lc is not None and n != lc:
            raise MalformedApdu(f"{self} takes {lc} bytes of data, got {n}")
        return CommandAPDU(self.cla, self.ins, self.p1, self.p2, data, self.le)

    def __str__(self) -> str:
        return bytes((self.cla, self.ins, self.p1, self.p2)).hex().upper()


F = TypeVar("F", bound=Callable[..., CommandAPDU])


def template(fn: F) -> F:
    """A command that depends only on its arguments is built once and reused (a
    CommandAPDU is immutable): SELECT, READ, GET BALANCE and INITIALIZE at one fare repeat
    every tap. Unhashable arguments (a bytearray) are built afresh."""
    cached = functools.lru_cache(maxsize=256)(fn)

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> CommandAPDU:
        try:
            return cached(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)

    return command  # type: ignore[return-value]
