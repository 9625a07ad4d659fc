"""Strict TOML files (fare files, terminal configurations): only the keys of a schema exist,
and every problem is one ``FileError`` ``<file>:<line>: <what>`` naming the offending key's
line, so a typo is refused where it was written instead of silently meaning "default"."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.text import FileError, TextError, hex_bytes, line_of

# In a schema: a table of any keys, each value checked where it is used.
ANY_KEYS = "any keys"


def read_toml(
    path: str | Path, what: str, make_error: Callable[[str, int | None], FileError]
) -> tuple[str, dict[str, Any]]:
    """The text and data of the TOML file at ``path``; ``make_error(what, line)`` if it
    cannot be read or is not TOML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise make_error(f"cannot read: {exc.strerror or exc}", None) from None
    except UnicodeDecodeError:
        raise make_error(f"not a {what}: not UTF-8 text", None) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"at line (\d+)", str(exc))
        line = int(at.group(1)) if at else None
        raise make_error(f"not valid TOML: {exc}", line) from None
    return text, data


class TomlFile:
    """A TOML file being parsed against a schema of known keys; every error names the line
    of the offending key (tomllib gives no line numbers). ``what`` names the kind of file."""

    what = "file"

    def __init__(self, data: dict[str, Any], path: str | Path | None, text: str | None):
        self.data, self.path, self.text = data, path, text
        self.after = 1

    def make_error(self, what: str, line: int | None) -> FileError:
        """The error type of this kind of file."""
        return FileError(self.path, line, what)

    def error(self, keys: tuple[str, ...], what: str) -> FileError:
        """The error at the line of ``keys`` (each looked for after the one before, from
        ``after``: the table being read when it is one of an array of tables)."""
        line: int | None = self.after if self.after > 1 else None
        if self.text is not None:
            for key in keys:
                line = line_of(self.text, key, after=line or 1) or line
        return self.make_error(what, line)

    def table_line(self, name: str, index: int) -> int:
        """The line of the ``index``-th ``[[name]]`` header (1 when unknown)."""
        line = 0
        for _ in range(index + 1):
            found = line_of(self.text or "", name, after=line + 1)
            if found is None:
                return 1
            line = found
        return line

    def check_keys(self, table: Any, schema: dict[str, Any], at: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            raise self.error(at, f"{'.'.join(at)} must be a table")
        for key, value in table.items():
            if key not in schema:
                where = f"section [{'.'.join(at)}]" if at else f"the {self.what}"
                known = ", ".join(sorted(schema))
                raise self.error((*at, key), f"unknown key {key!r} in {where} (known: {known})")
            sub = schema[key]
            if sub is ANY_KEYS and not isinstance(value, dict):
                raise self.error((*at, key), f"{'.'.join((*at, key))} must be a table")
            if isinstance(sub, dict):
                self.check_keys(value, sub, (*at, key))
            elif isinstance(sub, list):
                if not isinstance(value, list):
                    raise self.error((*at, key), f"{key} must be a list of tables ([[{key}]])")
                for item in value:
                    self.check_keys(item, sub[0], (*at, key))

    def count(self, value: Any, keys: tuple[str, ...], maximum: int) -> int:
        what = ".".join(keys)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise self.error(keys, f"{what} must be a whole number 0..{maximum}, got {value!r}")
        return value

    def hex(self, value: Any, size: int, keys: tuple[str, ...]) -> bytes:
        try:
            return hex_bytes(value if isinstance(value, str) else "?", size=size)
        except TextError:
            raise self.error(
                keys, f"{'.'.join(keys)} must be {size} bytes of hex, got {value!r}"
            ) from None

    def text_value(self, value: Any, keys: tuple[str, ...]) -> str:
        if not isinstance(value, str):
            raise self.error(keys, f"{'.'.join(keys)} must be a string, got {value!r}")
        return value

    def choice(self, value: Any, keys: tuple[str, ...], choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.error(
                keys, f"{'.'.join(keys)} must be " + " or ".join(repr(c) for c in choices)
            )
        return str(value)
