"""Root keys as text: ``IDX:HEX128`` (index in hex, X ‖ Y as 128 hex digits), optionally
``:YYYY-MM-DD`` (the last valid day), one per line, ``#`` comments. The form the
``--root-key`` option and ``--root-keys`` files share."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from terminal.qr.checks import RootKey
from terminal.text import FileError, TextError, code, hex_bytes


def parse_root_key(text: str) -> RootKey:
    """``IDX:HEX128[:YYYY-MM-DD]`` as a RootKey; TextError saying what is wrong."""
    parts = code(text, "root key").split(":")
    if len(parts) not in (2, 3):
        raise TextError(f"root key {text!r} must be IDX:HEX128 or IDX:HEX128:YYYY-MM-DD")
    try:
        index = int(parts[0], 16)
    except ValueError:
        raise TextError(f"root key index {parts[0]!r} must be hex (01)") from None
    key = hex_bytes(parts[1], "root key", size=64)
    try:
        expiry = date.fromisoformat(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise TextError(f"root key expiry {parts[2]!r} must be YYYY-MM-DD") from None
    if not 0 <= index <= 0xFF:
        raise TextError(f"root key index {index} must be 00..FF")
    return RootKey(index, key, expiry)


def load_root_keys(path: str | Path) -> dict[int, RootKey]:
    """Every root key of a file, by index; FileError ``<file>:<line>: <what>``."""
    out: dict[int, RootKey] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FileError(path, None, f"cannot be read ({exc.strerror})") from None
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            key = parse_root_key(text)
        except TextError as exc:
            raise FileError(path, n, str(exc)) from None
        if key.index in out:
            raise FileError(path, n, f"root key {key.index:02X} is listed twice")
        out[key.index] = key
    return out
