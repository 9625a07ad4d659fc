"""BER-TLV as EMV and PBOC use it: multi-byte tags, definite lengths, constructed nesting.

Parsing is strict about structure (truncation, lengths past the end, indefinite or
over-wide length fields, runaway nesting all raise TlvError with the offset) and
tolerant of the 00/FF padding that cards put between objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from terminal.apdu.errors import TlvError
from terminal.apdu.frozen import quick_init

MAX_TAG_BYTES = 4
MAX_LENGTH_BYTES = 4
MAX_DEPTH = 32
PADDING = (0x00, 0xFF)


def tag_bytes(tag: int) -> bytes:
    if tag <= 0:
        raise TlvError(f"tag {tag:#x} is not a valid BER tag", 0)
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def is_constructed(tag: int) -> bool:
    return bool(tag_bytes(tag)[0] & 0x20)


def encode_length(n: int) -> bytes:
    if n < 0:
        raise TlvError("negative length", 0)
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(body) > MAX_LENGTH_BYTES:
        raise TlvError(f"length {n} needs more than {MAX_LENGTH_BYTES} bytes", 0)
    return bytes((0x80 | len(body),)) + body


@quick_init
@dataclass(frozen=True, slots=True)
class Tlv:
    """One data object. Constructed objects also carry their parsed children."""

    tag: int
    value: bytes
    children: tuple[Tlv, ...] = field(default=(), compare=False)

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def encode(self) -> bytes:
        return tag_bytes(self.tag) + encode_length(len(self.value)) + self.value

    def find(self, tag: int) -> Tlv | None:
        return find(self.children, tag)

    def __str__(self) -> str:
        return f"{tag_bytes(self.tag).hex().upper()}={self.value.hex().upper()}"


def build(tag: int, content: bytes | Iterable[Tlv]) -> Tlv:
    """Make a TLV from raw bytes, or a constructed one from child TLVs."""
    if isinstance(content, bytes | bytearray):
        value = bytes(content)
        children = tuple(parse(value)) if is_constructed(tag) and value else ()
        return Tlv(tag, value, children)
    kids = tuple(content)
    return Tlv(tag, b"".join(k.encode() for k in kids), kids)


def encode_all(tlvs: Iterable[Tlv]) -> bytes:
    return b"".join(t.encode() for t in tlvs)


def read_tag(data: bytes, pos: int) -> tuple[int, int]:
    """Parse a tag at ``pos``; return (tag, position after it)."""
    start = pos
    if pos >= len(data):
        raise TlvError("truncated: tag expected", pos)
    first = data[pos]
    pos += 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise TlvError("truncated inside a multi-byte tag", start)
            b = data[pos]
            pos += 1
            if pos - start > MAX_TAG_BYTES:
                raise TlvError(f"tag longer than {MAX_TAG_BYTES} bytes", start)
            if not b & 0x80:
                break
    return int.from_bytes(data[start:pos], "big"), pos


def read_length(data: bytes, pos: int) -> tuple[int, int]:
    """Parse a definite length at ``pos``; return (length, position after it)."""
    if pos >= len(data):
        raise TlvError("truncated: length expected", pos)
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x80:
        raise TlvError("indefinite length is not allowed", pos)
    count = first & 0x7F
    if count > MAX_LENGTH_BYTES:
        raise TlvError(f"length field of {count} bytes is too wide", pos)
    if pos + 1 + count > len(data):
        raise TlvError("truncated inside a long-form length", pos)
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _parse(
    data: bytes,
    offset: int,
    depth: int,
    wanted: frozenset[int] = frozenset(),
    found: dict[int, bytes] | None = None,
) -> list[Tlv]:
    """The objects of ``data``; with ``found``, none are built: the first value of each
    ``wanted`` tag goes into ``found`` (depth first) and the list stays empty."""
    if depth > MAX_DEPTH:
        raise TlvError(f"nesting deeper than {MAX_DEPTH}", offset)
    if type(data) is not bytes:
        data = bytes(data)
    out: list[Tlv] = []
    pos = 0
    end = len(data)
    while pos < end:
        first = data[pos]
        if first in PADDING:
            pos += 1
            continue
        start = pos
        # the common one- and two-byte tags (6F, 9F0C) with a one-byte length, read inline
        if first & 0x1F != 0x1F:
            if pos + 1 < end and data[pos + 1] < 0x80:
                tag, length, pos = first, data[pos + 1], pos + 2
            else:
                tag, pos = read_tag(data, pos)
                length, pos = read_length(data, pos)
        elif pos + 2 < end and data[pos + 1] < 0x80 and data[pos + 2] < 0x80:
            tag, length, pos = (first << 8) | data[pos + 1], data[pos + 2], pos + 3
        else:
            tag, pos = read_tag(data, pos)
            length, pos = read_length(data, pos)
        if pos + length > end:
            raise TlvError(
                f"tag {tag:X} claims {length} bytes but only {end - pos} remain",
                offset + start,
            )
        value = data[pos : pos + length]
        if found is not None:
            if tag in wanted and tag not in found:
                found[tag] = value
            if first & 0x20 and value:
                _parse(value, offset + pos, depth + 1, wanted, found)
        elif first & 0x20 and value:  # constructed: bit 6 of the tag's first byte
            out.append(Tlv(tag, value, tuple(_parse(value, offset + pos, depth + 1))))
        else:
            out.append(Tlv(tag, value))
        pos += length
    return out


def iter_parse(data: bytes, *, offset: int = 0, depth: int = 0) -> Iterator[Tlv]:
    return iter(_parse(data, offset, depth))


def parse(data: bytes) -> list[Tlv]:
    """Parse a sequence of TLVs (constructed ones recursively)."""
    return _parse(data, 0, 0)


def first_values(data: bytes, tags: frozenset[int]) -> dict[int, bytes]:
    """The value of the first object of each of ``tags`` (depth first, as ``find`` picks
    it), the whole of ``data`` checked as ``parse`` checks it, without building objects:
    the FCI of every tap needs three values out of it."""
    found: dict[int, bytes] = {}
    _parse(data, 0, 0, tags, found)
    return found


def parse_one(data: bytes, tag: int | None = None) -> Tlv:
    """Parse data that must hold exactly one object (of ``tag`` if given)."""
    objects = parse(data)
    if len(objects) != 1:
        raise TlvError(f"expected one data object, found {len(objects)}", 0)
    if tag is not None and objects[0].tag != tag:
        raise TlvError(f"expected tag {tag:X}, found {objects[0].tag:X}", 0)
    return objects[0]


def walk(tlvs: Iterable[Tlv]) -> Iterator[Tlv]:
    """Every object, depth first, parents before their children."""
    for t in tlvs:
        yield t
        yield from walk(t.children)


def find(tlvs: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag`` anywhere in the tree (depth first), or None."""
    for t in tlvs:
        if t.tag == tag:
            return t
        if t.children:
            found = find(t.children, tag)
            if found is not None:
                return found
    return None


def find_all(tlvs: Iterable[Tlv], tag: int) -> list[Tlv]:
    return [t for t in walk(tlvs) if t.tag == tag]


def flatten(tlvs: Iterable[Tlv]) -> dict[int, bytes]:
    """Primitive objects by tag (first occurrence wins), for DOL sources and display."""
    out: dict[int, bytes] = {}
    for t in walk(tlvs):
        if not t.constructed:
            out.setdefault(t.tag, t.value)
    return out
