"""Data Object Lists (PDOL, CDOL1/2, DDOL, log formats): parse them and build their data.

Rules (EMV Book 3 §5.4): values are concatenated in DOL order without tags; an absent
tag gives zeros of the requested length; a longer value keeps its rightmost bytes when
the format is ``n`` and its leftmost bytes otherwise; a shorter value is left-padded with
00 for ``n``, right-padded with FF for ``cn`` and with 00 for anything else. With several
sources the first one holding the tag wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from terminal.apdu.errors import TlvError
from terminal.apdu.tlv import read_length, read_tag
from terminal.emv.errors import DolError
from terminal.emv.tags import tag_format

MAX_ENTRY_LENGTH = 0xFF  # EMV Book 3 §5.4: an entry's length is one byte


@dataclass(frozen=True, slots=True)
class DolEntry:
    tag: int
    length: int


def parse_dol(dol: bytes) -> list[DolEntry]:
    """The (tag, length) pairs of a DOL; malformed lists raise DolError, and so does a length
    past one byte's (a card's word must not make the terminal build gigabytes of data)."""
    entries: list[DolEntry] = []
    pos = 0
    try:
        while pos < len(dol):
            tag, pos = read_tag(dol, pos)
            length, pos = read_length(dol, pos)
            if length > MAX_ENTRY_LENGTH:
                raise TlvError(f"entry length {length} exceeds {MAX_ENTRY_LENGTH}", pos)
            entries.append(DolEntry(tag, length))
    except TlvError as exc:
        raise DolError(f"malformed DOL {dol.hex().upper()}: {exc}") from None
    return entries


def dol_length(dol: bytes) -> int:
    return sum(e.length for e in parse_dol(dol))


def fit(value: bytes, length: int, fmt: str) -> bytes:
    """Truncate or pad one value to ``length`` bytes by the rules of its format."""
    if len(value) == length:
        return value
    if len(value) > length:
        return value[len(value) - length :] if fmt == "n" else value[:length]
    pad = length - len(value)
    if fmt == "n":
        return bytes(pad) + value
    if fmt == "cn":
        return value + b"\xff" * pad
    return value + bytes(pad)


def build_dol_data(dol: bytes | Iterable[DolEntry], *sources: Mapping[int, bytes]) -> bytes:
    """The DOL-related data for ``dol`` taken from ``sources`` (first source wins)."""
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else list(dol)
    out = bytearray()
    for entry in entries:
        if entry.length == 0:
            continue
        value = next((s[entry.tag] for s in sources if entry.tag in s), None)
        if value is None:
            out += bytes(entry.length)
        else:
            out += fit(value, entry.length, tag_format(entry.tag))
    return bytes(out)


def split_dol_data(dol: bytes | Iterable[DolEntry], data: bytes) -> dict[int, bytes]:
    """Cut DOL-ordered data (a log record, a GPO data field) back into values by tag.

    Raises DolError when ``data`` is not exactly as long as the DOL asks.
    """
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else list(dol)
    total = sum(e.length for e in entries)
    if len(data) != total:
        raise DolError(f"DOL asks for {total} bytes, data has {len(data)}")
    out: dict[int, bytes] = {}
    pos = 0
    for e in entries:
        out.setdefault(e.tag, data[pos : pos + e.length])
        pos += e.length
    return out
