"""State files of software cards and PSAMs: JSON, written atomically so a card survives a
power cut mid-write with either its old or its new state, never half of each. They hold
keys and PINs, so they are owner-only (0600).

Reading is strict, because a person may hand any file to ``--card``: unreadable, empty,
binary, truncated or non-JSON files, a wrong kind, unknown or missing keys, values of the
wrong type, bad hex and numbers out of range are each refused with a ``FileError`` naming
the file, the line and what is wrong, before the device exists - never a traceback
later, halfway through a tap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from terminal.private_files import write_private
from terminal.text import FileError, line_of

T = TypeVar("T")

# A check returns None when the value is acceptable, else what is wrong with it.
Check = Callable[[Any], str | None]


def write_state(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` to ``path`` (mode 0600) via a temp file, fsync and rename."""
    return write_private(path, json.dumps(document, indent=1))


class SavedDevice:
    """A software device whose ``state`` dataclass lives in a state file of ``kind``."""

    kind: ClassVar[str]
    state: Any
    path: Path | None

    def save(self, path: str | Path | None = None) -> None:
        """Write the state atomically (temp file, fsync, rename); a ``path`` given becomes
        the device's file from then on."""
        target = Path(path) if path is not None else self.path
        if target is None:
            return
        write_state(target, {"kind": self.kind, "state": asdict(self.state)})
        if path is not None:
            self.path = target

    def _commit(self) -> None:
        """Keep a file-backed device's file in step with its state after a change."""
        if self.path is not None:
            self.save()

    @property
    def atr(self) -> bytes:
        return bytes.fromhex(self.state.atr)


@dataclass(frozen=True)
class StateDocument:
    """A parsed state file with its text, so errors can name the line of a key."""

    path: str
    text: str
    data: dict[str, Any]

    def fail(self, key: str, what: str) -> FileError:
        return FileError(self.path, line_of(self.text, key), what)

    @property
    def state(self) -> dict[str, Any]:
        state = self.data.get("state")
        if not isinstance(state, dict):
            raise self.fail("state", "'state' must be a JSON object")
        return state


def read_document(path: str | Path, kinds: tuple[str, ...] | None, what: str) -> StateDocument:
    """The JSON object in ``path``, whose ``kind`` must be one of ``kinds`` (any if None)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FileError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FileError(path, line, f"not a {what} file: not UTF-8 text") from None
    if not text.strip():
        raise FileError(path, 1, f"empty file, expected a {what} (JSON)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileError(path, exc.lineno, f"not valid JSON ({exc.msg}): truncated?") from None
    except RecursionError:
        raise FileError(path, 1, "not a usable JSON document (nested too deep)") from None
    if not isinstance(data, dict):
        raise FileError(path, 1, f"not a {what} file: expected a JSON object")
    doc = StateDocument(str(path), text, data)
    kind = data.get("kind")
    if kinds is not None and kind not in kinds:
        raise doc.fail("kind", f"not a {what} file (kind {kind!r})")
    return doc


def read_state(path: str | Path, kinds: tuple[str, ...], what: str) -> dict[str, Any]:
    """The document in ``path``, which must be of one of ``kinds``."""
    return read_document(path, kinds, what).data


# -- checks for state fields -------------------------------------------------------------
def integer(maximum: int, minimum: int = 0) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be a whole number, got {json.dumps(v)[:40]}"
        if not minimum <= v <= maximum:
            return f"{v} is out of range ({minimum}..{maximum})"
        return None

    return check


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def hex_string(size: int | None = None) -> Check:
    """Hex digits, ``size`` bytes (any whole number of bytes if None)."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", v, re.ASCII):
            return f"must be a string of hex digits, got {json.dumps(v)[:40]}"
        if size is not None and len(v) != 2 * size:
            return f"must be {size} bytes ({2 * size} hex digits), has {len(v) // 2}"
        return None

    return check


def optional(check: Check) -> Check:
    """``check``, or the empty string (a part the card was not personalised with)."""
    return lambda v: None if v == "" else check(v)


def hex_list(size: int, limit: int) -> Check:
    item = hex_string(size)

    def check(v: Any) -> str | None:
        if not isinstance(v, list) or len(v) > limit:
            return f"must be a list of at most {limit} hex records"
        return next((f"record {i + 1} {p}" for i, x in enumerate(v) if (p := item(x))), None)

    return check


def hex_map(size: int | None) -> Check:
    item = hex_string(size)

    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return "must be a JSON object of hex strings"
        return next((f"{k!r} {p}" for k, x in v.items() if (p := item(x))), None)

    return check


def one_of(*values: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if v in values else f"must be one of {', '.join(map(repr, values))}"

    return check


def digits_text(v: Any) -> str | None:
    ok = isinstance(v, str) and re.fullmatch(r"[0-9]{0,16}", v, re.ASCII)
    return None if ok else "must be a string of up to 16 digits 0-9"


def obj(v: Any) -> str | None:
    return None if isinstance(v, dict) else "must be a JSON object"


def state_of(doc: StateDocument, cls: type[T], checks: Mapping[str, Check]) -> T:
    """The dataclass ``cls`` from the document's ``state`` object: no unknown or missing
    keys, and every value passing its check (every field of ``cls`` has one)."""
    state = doc.state
    declared = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    for key in state:
        if key not in declared:
            raise doc.fail(key, f"unknown key {key!r} in 'state'")
    for name, f in declared.items():
        if name not in state and f.default is MISSING and f.default_factory is MISSING:
            raise doc.fail("state", f"'state' is missing {name!r}")
    for key, value in state.items():
        problem = checks[key](value)
        if problem:
            raise doc.fail(key, f"{key}: {problem}")
    return cls(**state)
