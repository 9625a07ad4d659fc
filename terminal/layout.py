"""Shared construct pieces: BCD date/time adapters and strict parse/build helpers.

Every byte layout in the project is a construct ``Struct`` declared once in its
package's ``layouts`` module; these helpers turn construct's errors into the project's
typed ``MalformedResponse`` so bad bytes never surface as an IndexError.
"""

from __future__ import annotations

import operator
import struct
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
from terminal.apdu.errors import LayoutBuildError, MalformedResponse


def _encode_date_or_unset(obj: date | None) -> bytes:
    return bytes(4) if obj is None else encode_date(obj)


def _encode_datetime_or_unset(obj: datetime | None) -> bytes:
    return bytes(7) if obj is None else encode_datetime(obj)


class _BcdDate(cs.Adapter):
    fast_decode = staticmethod(decode_date)
    fast_encode = staticmethod(_encode_date_or_unset)

    def _decode(self, obj: bytes, context: Any, path: str) -> date | None:
        return decode_date(obj)

    def _encode(self, obj: date | None, context: Any, path: str) -> bytes:
        return _encode_date_or_unset(obj)


class _BcdTime(cs.Adapter):
    fast_decode = staticmethod(decode_time)
    fast_encode = staticmethod(encode_time)

    def _decode(self, obj: bytes, context: Any, path: str) -> time:
        return decode_time(obj)

    def _encode(self, obj: time, context: Any, path: str) -> bytes:
        return encode_time(obj)


class _BcdDateTime(cs.Adapter):
    fast_decode = staticmethod(decode_datetime)
    fast_encode = staticmethod(_encode_datetime_or_unset)

    def _decode(self, obj: bytes, context: Any, path: str) -> datetime | None:
        return decode_datetime(obj)

    def _encode(self, obj: datetime | None, context: Any, path: str) -> bytes:
        return _encode_datetime_or_unset(obj)


BcdDate = _BcdDate(cs.Bytes(4))
BcdTime = _BcdTime(cs.Bytes(3))
BcdDateTime = _BcdDateTime(cs.Bytes(7))
Amount = cs.Int32ub  # fen, unsigned 4 bytes


class _Plain:
    """A fixed-size construct Struct of plain fields (Bytes, big-endian integers, Const, and
    adapters over them) as one precompiled ``struct.Struct``: the layout stays declared once
    in construct; this is only its fast path (about 5x construct's compiled form). A
    trailing ``GreedyRange(Bytes(n))`` (the PSAM's extra factors) is built, not parsed.

    Anything unexpected (a missing field, a wrong length, a value out of range) falls back to
    construct's own (interpreted) build, so errors and edge cases stay exactly construct's."""

    __slots__ = ("build", "fields", "names", "packer", "parse", "size", "tail", "values")

    def __init__(self, layout: cs.Struct):
        self.tail: tuple[str, int] | None = None  # (name, item size) of a greedy tail
        subcons = list(layout.subcons)
        last = subcons[-1].subcon if subcons and isinstance(subcons[-1], cs.Renamed) else None
        if isinstance(last, cs.GreedyRange) and isinstance(last.subcon, cs.Bytes):
            if not isinstance(last.subcon.length, int):
                raise NotImplementedError
            self.tail = (subcons[-1].name, last.subcon.length)
            subcons.pop()
        if not subcons:
            raise NotImplementedError  # nothing to unpack: construct's own form does
        fields = []
        for i, sc in enumerate(subcons):
            if not isinstance(sc, cs.Renamed) or not sc.name:
                raise NotImplementedError
            fields.append((sc.name, *_plain_field(sc.subcon, f"f{i}")))
        self.names = tuple(name for name, *_ in fields)
        self.fields = _fields_class(self.names)
        self.packer = struct.Struct(">" + "".join(code for _, code, *_ in fields))
        self.size = self.packer.size
        self._generate(fields)

    def _generate(
        self, fields: list[tuple[str, str, str, str, int | None, dict[str, Any]]]
    ) -> None:
        """``values``, ``parse`` and ``build`` as straight-line code for this layout, each
        field's conversions written inline (no loop over fields, no helper frame per field),
        generated once.

        values(data): the fields' values in order; parse(data): them as a Container;
        build(fields): the bytes, ValueError for a value of the wrong type or length."""
        env: dict[str, Any] = {"unpack": self.packer.unpack, "pack": self.packer.pack}
        env.update({"fields_class": self.fields, "names": self.names})
        for *_, names in fields:
            env.update(names)
        n = len(fields)
        v = ", ".join(f"v{i}" for i in range(n)) + ","
        out = ", ".join(dec.format(f"v{i}") for i, (_, _, dec, *_) in enumerate(fields)) + ","
        lines = [
            "def values(data):",
            f"    {v} = unpack(data)",
            f"    return ({out})",
            "def parse(data):",
            f"    {v} = unpack(data)",
            f"    return fields_class(zip(names, ({out})))",
            "def build(fields):",
        ]
        for i, (name, _, _, enc, length, _) in enumerate(fields):
            lines.append(f"    v{i} = {enc.format(f'fields[{name!r}]')}")
            if length is not None:
                lines.append(f"    if type(v{i}) is not bytes or len(v{i}) != {length}:")
                lines.append(f"        raise ValueError({name!r})")
        if self.tail is None:
            lines.append(f"    return pack({v})")
        else:
            tail, item = self.tail
            lines += [
                f"    extra = fields[{tail!r}]",
                "    for x in extra:",
                f"        if type(x) is not bytes or len(x) != {item}:",
                f"            raise ValueError({tail!r})",
                f"    return pack({v}) + b''.join(extra)",
            ]
        exec("\n".join(lines), env)
        self.values, self.parse, self.build = env["values"], env["parse"], env["build"]


def _fields_class(names: tuple[str, ...]) -> type[cs.Container]:
    """A ``Container`` whose fields read as attributes without construct's Python-level
    ``__getattr__`` (a C-level property per field); still a Container in every other way.
    A name that is also a Container method stays key-only, as in construct."""
    props = {n: property(operator.itemgetter(n)) for n in names if not hasattr(cs.Container, n)}
    return type("Container", (cs.Container,), {"__slots__": (), **props})


def _plain_field(field: cs.Construct, key: str) -> tuple[str, str, str, int | None, dict[str, Any]]:
    """One plain field as (struct code, decode expression, encode expression, exact bytes
    length of the packed value, the names the expressions use). An expression is a format
    string whose ``{}`` is the value; ``key`` keeps the names of different fields apart.
    An adapter's conversion is its ``fast_decode``/``fast_encode`` function when it has one
    (same result, one call less), else its own ``_decode``/``_encode``."""
    if type(field).__base__ is cs.Adapter:
        code, dec, enc, length, names = _plain_field(field.subcon, key)
        decode = getattr(field, "fast_decode", None)
        encode = getattr(field, "fast_encode", None)
        names = {**names, f"{key}d": decode or field._decode, f"{key}e": encode or field._encode}
        extra = "" if decode else ", None, ''"
        dec = f"{key}d({dec}{extra})"  # the adapter's decode after the field's own
        extra = "" if encode else ", None, ''"
        enc = enc.format(f"{key}e({{}}{extra})")  # the adapter's encode before the field's
        return code, dec, enc, length, names
    if type(field) is cs.FormatField and field.fmtstr[0] == ">":
        return field.fmtstr[1:], "{}", "{}", None, {}
    if type(field) is cs.Bytes and isinstance(field.length, int):
        return f"{field.length}s", "{}", "{}", field.length, {}
    if type(field) is cs.BytesInteger and isinstance(field.length, int):
        if field.signed or field.swapped:
            raise NotImplementedError
        n = field.length
        return f"{n}s", "from_bytes({}, 'big')", f"{{}}.to_bytes({n}, 'big')", n, _FROM_BYTES
    if type(field) is cs.Const and type(field.subcon) is cs.Bytes:
        value = field.value

        def check(v: bytes, value: bytes = value) -> bytes:
            if v != value:
                raise cs.ConstError(f"parsing expected {value!r} but parsed {v!r}")
            return v

        def fill(v: bytes | None, value: bytes = value) -> bytes:
            return value if v is None else v

        names = {f"{key}c": check, f"{key}f": fill}
        return f"{len(value)}s", f"{key}c({{}})", f"{key}f({{}})", len(value), names
    raise NotImplementedError


_FROM_BYTES = {"from_bytes": int.from_bytes}


class _Fast:
    """What ``parse``/``build`` use for one layout, resolved once and kept on the layout
    object itself (``layout._ykt_fast``), so a call costs one attribute read, not a lookup:
    construct's compiled form (3-5x faster than interpreted), the fixed size, the plain
    ``struct`` form when there is one, and its parser when it parses whole layouts."""

    __slots__ = ("compiled", "parse", "plain", "size")

    def __init__(self, layout: cs.Construct):
        try:
            self.compiled = layout.compile()
        except NotImplementedError:
            self.compiled = layout
        try:
            self.size: int | None = layout.sizeof()
        except cs.SizeofError:
            self.size = None
        try:
            self.plain: _Plain | None = _Plain(layout) if isinstance(layout, cs.Struct) else None
        except NotImplementedError:
            self.plain = None
        plain = self.plain
        self.parse = plain.parse if plain is not None and plain.tail is None else None

    def __getitem__(self, i: int) -> Any:
        """(compiled, size, plain) by position, as the tests read it."""
        return (self.compiled, self.size, self.plain)[i]


def _fast(layout: cs.Construct) -> _Fast:
    """The layout's fast forms, made at its first use."""
    try:
        return layout._ykt_fast  # type: ignore[no-any-return]
    except AttributeError:
        fast = layout._ykt_fast = _Fast(layout)
        return fast


def parse(layout: cs.Construct, data: bytes, what: str, command: CommandAPDU | None = None) -> Any:
    """Parse ``data`` that must fill ``layout`` exactly; a MalformedResponse otherwise."""
    try:
        fast = layout._ykt_fast
    except AttributeError:
        fast = _fast(layout)
    size = fast.size
    if size is not None and len(data) != size:
        raise MalformedResponse(
            f"{what}: expected {size} bytes, got {len(data)}", raw=bytes(data), command=command
        )
    if fast.parse is not None:
        try:
            return fast.parse(data)
        except Exception:
            pass
    try:
        return fast.compiled.parse(data)
    except (cs.ConstructError, BcdError) as exc:
        raise MalformedResponse(f"{what}: {exc}", raw=bytes(data), command=command) from None


def plain_values(layout: cs.Struct) -> Any:
    """``values(data) -> tuple`` of a fixed-size layout's fields in order (no Container, no
    size check: the caller checks the length), or None when the layout has no struct form.
    For a record type whose fields are the layout's, built straight from the tuple."""
    plain = _fast(layout).plain
    return None if plain is None or plain.tail is not None else plain.values


def parse_present(layout: cs.Struct, data: bytes, what: str) -> dict[str, Any]:
    """The fields of a fixed-size ``layout`` that a shorter (or longer) ``data`` holds whole;
    the fields past its end are None (absent). Cards personalise files shorter than the
    specification's length, and what they hold must still be read (issue 12, item 5)."""
    fast = _fast(layout)
    plain = fast.plain
    if plain is not None and len(data) == fast.size:
        try:
            return dict(zip(plain.names, plain.values(data), strict=True))
        except Exception:
            pass  # the field-by-field parse below names the bad field
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
    """Build bytes from field values; a LayoutBuildError when they do not fit the layout.

    A value the struct fast path does not take goes to construct's interpreted build, never
    its compiled one: the compiled form writes a ``Bytes`` field of the wrong length as it is
    (a 5-byte MAC1 would go to the card as 5 bytes), the interpreted one checks it."""
    try:
        plain = layout._ykt_fast.plain
    except AttributeError:
        plain = _fast(layout).plain
    if plain is not None:
        try:
            return plain.build(fields)
        except Exception:
            pass
    try:
        return layout.build(fields)
    except (cs.ConstructError, BcdError, KeyError, TypeError, ValueError, struct.error) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc).replace("\n", ": ")
        raise LayoutBuildError(f"cannot build {_name(layout)}: {what}") from None


def _name(layout: cs.Construct) -> str:
    """The fields a layout has, to say which layout refused (construct layouts are unnamed)."""
    subcons = getattr(layout, "subcons", ())
    return "(" + ", ".join(sc.name for sc in subcons if sc.name) + ")" if subcons else "layout"
