"""Shared construct pieces: BCD date/time adapters and strict parse/build helpers.

Every byte layout in the project is a construct ``Struct`` declared once in its
package's ``layouts`` module; these helpers turn construct's errors into the project's
typed ``MalformedResponse`` so bad bytes never surface as an IndexError.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import construct as cs

from terminal.apdu.bcd import (
    BcdError,
    decode_date,
    decode_datetime,
    decode_time,
    encode_date,
    encode_datetime,
    encode_time,
)
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedResponse


class _BcdDate(cs.Adapter):
    def _decode(self, obj: bytes, context: Any, path: str) -> date | None:
        return decode_date(obj)

    def _encode(self, obj: date | None, context: Any, path: str) -> bytes:
        return bytes(4) if obj is None else encode_date(obj)


class _BcdTime(cs.Adapter):
    def _decode(self, obj: bytes, context: Any, path: str) -> time:
        return decode_time(obj)

    def _encode(self, obj: time, context: Any, path: str) -> bytes:
        return encode_time(obj)


class _BcdDateTime(cs.Adapter):
    def _decode(self, obj: bytes, context: Any, path: str) -> datetime | None:
        return decode_datetime(obj)

    def _encode(self, obj: datetime | None, context: Any, path: str) -> bytes:
        return bytes(7) if obj is None else encode_datetime(obj)


BcdDate = _BcdDate(cs.Bytes(4))
BcdTime = _BcdTime(cs.Bytes(3))
BcdDateTime = _BcdDateTime(cs.Bytes(7))
Amount = cs.Int32ub  # fen, unsigned 4 bytes


_COMPILED: dict[int, tuple[cs.Construct, cs.Construct, int | None]] = {}


def _fast(layout: cs.Construct) -> tuple[cs.Construct, int | None]:
    """construct's compiled form of a layout (3-5x faster) and its fixed size, made once."""
    entry = _COMPILED.get(id(layout))
    if entry is None or entry[0] is not layout:
        try:
            compiled = layout.compile()
        except NotImplementedError:
            compiled = layout
        try:
            size = layout.sizeof()
        except cs.SizeofError:
            size = None
        entry = _COMPILED[id(layout)] = (layout, compiled, size)
    return entry[1], entry[2]


def parse(layout: cs.Construct, data: bytes, what: str, command: CommandAPDU | None = None) -> Any:
    """Parse ``data`` that must fill ``layout`` exactly; a MalformedResponse otherwise."""
    compiled, size = _fast(layout)
    if size is not None and len(data) != size:
        raise MalformedResponse(
            f"{what}: expected {size} bytes, got {len(data)}", raw=bytes(data), command=command
        )
    try:
        return compiled.parse(data)
    except (cs.ConstructError, BcdError) as exc:
        raise MalformedResponse(f"{what}: {exc}", raw=bytes(data), command=command) from None


def parse_present(layout: cs.Struct, data: bytes, what: str) -> dict[str, Any]:
    """The fields of a fixed-size ``layout`` that a shorter (or longer) ``data`` holds whole;
    the fields past its end are None (absent). Cards personalise files shorter than the
    specification's length, and what they hold must still be read (issue 12, item 5)."""
    out: dict[str, Any] = {}
    pos = 0
    for sub in layout.subcons:
        size = sub.sizeof()
        if pos + size > len(data):
            out[sub.name] = None
            pos = len(data) + 1  # every later field is absent too
            continue
        try:
            out[sub.name] = sub.parse(data[pos : pos + size])
        except (cs.ConstructError, BcdError) as exc:
            raise MalformedResponse(f"{what}: {sub.name}: {exc}", raw=bytes(data)) from None
        pos += size
    return out


def build(layout: cs.Construct, **fields: Any) -> bytes:
    """Build bytes from field values (programming errors surface as construct errors)."""
    return _fast(layout)[0].build(fields)
