"""Text typed by people or read from their files: one rule for numbers and codes, one for names.

Numbers and codes (card and ID numbers, periods, amounts, hex fields, CLI numbers) are
NFKC-normalised, so a full-width ``２０２６-09`` is the same value as ``2026-09``, and must
then be ASCII: Python's ``\\d``, ``str.isdigit`` and ``int()`` accept the digits of every
script, so without this two spellings of one period or card count as two. Names compared
for separation of duties are NFKC-normalised and stripped of invisible characters
(zero-width, bidi controls, every other format or control character), so ``"赵审核\\u200b"``
is the same person as ``"赵审核"``.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

from terminal.apdu.errors import YikatongError

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_INVISIBLE = frozenset({"Cf", "Cc", "Cs", "Co", "Cn", "Zl", "Zp"})


class TextError(YikatongError, ValueError):
    """A number or code with characters other than ASCII after NFKC, or not of its shape."""


def nfkc(text: str) -> str:
    """``text`` NFKC-normalised with its ends stripped: the form every field is checked in."""
    return unicodedata.normalize("NFKC", text).strip()


def code(text: str, what: str = "value") -> str:
    """``text`` NFKC-normalised and stripped; TextError unless it is then printable ASCII."""
    value = nfkc(text)
    if not value.isascii() or not value.isprintable():
        raise TextError(f"{what} {text!r} has characters other than ASCII letters and digits")
    return value


def digits(text: str, what: str = "number", *, length: int | None = None) -> str:
    """``text`` as ASCII digits (full-width ones become ASCII); TextError otherwise."""
    value = code(text, what)
    if not _DIGITS.fullmatch(value):
        raise TextError(f"{what} {text!r} must be digits 0-9")
    if length is not None and len(value) != length:
        raise TextError(f"{what} must be {length} digits, has {len(value)}")
    return value


def whole_number(text: str, what: str = "number") -> int:
    """A non-negative whole number written in ASCII (after NFKC) digits."""
    return int(digits(text, what))


def hex_bytes(text: str, what: str = "hex value", *, size: int | None = None) -> bytes:
    """Bytes from hex digits (ASCII after NFKC); TextError on anything else or a wrong size."""
    value = code(text, what)
    if len(value) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", value, re.ASCII):
        raise TextError(f"{what} {text!r} must be hex digits, two per byte")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise TextError(f"{what} must be {size} bytes ({2 * size} hex digits), has {len(raw)}")
    return raw


def person_name(text: str) -> str:
    """A name as compared for separation of duties: NFKC, invisible characters removed,
    runs of white space made one space, ends stripped."""
    value = unicodedata.normalize("NFKC", text)
    value = "".join(ch for ch in value if unicodedata.category(ch) not in _INVISIBLE)
    return " ".join(value.split())


def arg_int(text: str) -> int:
    """argparse ``type=`` for whole numbers: ASCII digits only (full-width ones accepted)."""
    try:
        value = code(text, "number")
        sign, body = ("-", value[1:]) if value.startswith("-") else ("", value)
        return int(sign + digits(body))
    except TextError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def arg_code(text: str) -> str:
    """argparse ``type=`` for codes (card numbers, hex ids, stations): ASCII after NFKC."""
    try:
        return code(text, "value")
    except TextError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class FileError(YikatongError, ValueError):
    """A file a person gave the terminal (card state, fare file...) that cannot be used:
    ``str()`` is ``<file>:<line>: <what>``, the one line the CLI prints."""

    def __init__(self, path: str | Path | None, line: int | None, what: str):
        self.path = None if path is None else str(path)
        self.line, self.what = line or 1, what
        super().__init__(what if self.path is None else f"{self.path}:{self.line}: {what}")


def line_of(text: str, key: str, *, after: int = 1) -> int | None:
    """The first line (1-based, from line ``after`` on) where ``key`` is written as a key:
    ``key =`` or ``"key" =`` (TOML), ``"key":`` (JSON), or ``[key]``/``[[key]]`` (TOML)."""
    k = re.escape(key)
    pattern = re.compile(
        rf"""^\s*(?:(?:"{k}"|'{k}'|{k})\s*[=:]|\[\[?\s*(?:[^\]]*\.)?(?:"{k}"|{k})\s*\]\]?)"""
        rf"""|[{{,]\s*"{k}"\s*:"""
    )
    for number, line in enumerate(text.splitlines(), 1):
        if number >= after and pattern.search(line):
            return number
    return None
