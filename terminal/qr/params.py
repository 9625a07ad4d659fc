"""The ride-code parameter files, as text, one entry a line, ``#`` comments.

Root keys: ``IDX:HEX128`` (index in hex, X ‖ Y as 128 hex digits), optionally
``:YYYY-MM-DD`` (the last valid day); the form the ``--root-key`` option and ``--root-keys``
files share. Issuer whitelist: ``ISSUER:PLATFORM`` (8 hex digits each; ``*`` for any
platform), optionally ``:TICKET`` (the local ticket type its riders get, default ``qr``)
and ``:SIGNER_ID`` (the issuer's SM2 ID, default 1234567812345678).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from terminal.qr import sm2
from terminal.qr.checks import IssuerRule, QrPolicy, RootKey
from terminal.text import FileError, TextError, code, hex_bytes

T = TypeVar("T")
K = TypeVar("K")
_TICKET = re.compile(r"[0-9A-Za-z_.-]{1,16}\Z")
MAX_SIGNER_ID = 32


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
    if not sm2.public_key_valid(b"\x04" + key):
        raise TextError(f"root key {index:02X} is not a point on the SM2 curve")
    return RootKey(index, key, expiry)


def parse_issuer_rule(text: str) -> IssuerRule:
    """``ISSUER:PLATFORM[:TICKET[:SIGNER_ID]]`` as an IssuerRule; TextError otherwise."""
    parts = code(text, "issuer").split(":")
    if not 2 <= len(parts) <= 4:
        raise TextError(f"issuer {text!r} must be ISSUER:PLATFORM[:TICKET[:SIGNER_ID]]")
    issuer = hex_bytes(parts[0], "issuer code", size=4).hex().upper()
    platform = None if parts[1] == "*" else hex_bytes(parts[1], "platform code", size=4)
    ticket = parts[2] if len(parts) > 2 else "qr"
    if not _TICKET.match(ticket):
        raise TextError(f"ticket type {ticket!r} must be 1-16 letters, digits, _.-")
    signer_id = parts[3].encode("ascii") if len(parts) > 3 else sm2.DEFAULT_SIGNER_ID
    if not 1 <= len(signer_id) <= MAX_SIGNER_ID:
        raise TextError(f"signer ID must be 1-{MAX_SIGNER_ID} characters")
    return IssuerRule(
        issuer, None if platform is None else platform.hex().upper(), ticket, signer_id
    )


def parse_lines(
    lines: list[str], parse: Callable[[str], T], key: Callable[[T], K], what: str, name: str
) -> dict[K, T]:
    """Every entry of a parameter file's lines, by ``key``; FileError ``<name>:<line>: <what>``
    for a bad line or an entry listed twice."""
    out: dict[K, T] = {}
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            item = parse(text)
        except TextError as exc:
            raise FileError(name, n, str(exc)) from None
        k = key(item)
        if k in out:
            label = f"{k:02X}" if isinstance(k, int) else str(k)
            raise FileError(name, n, f"{what} {label} is listed twice")
        out[k] = item
    return out


def _read(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise FileError(path, None, f"cannot be read ({why})") from None


def root_keys_text(lines: list[str], name: str) -> dict[int, RootKey]:
    return parse_lines(lines, parse_root_key, lambda k: k.index, "root key", name)


def issuers_text(lines: list[str], name: str) -> dict[str, IssuerRule]:
    return parse_lines(lines, parse_issuer_rule, lambda r: r.issuer_code, "issuer", name)


def load_root_keys(path: str | Path) -> dict[int, RootKey]:
    """Every root key of a file, by index; FileError ``<file>:<line>: <what>``."""
    return root_keys_text(_read(path), str(path))


def load_issuers(path: str | Path) -> dict[str, IssuerRule]:
    """The issuer whitelist of a file, by issuer code; FileError ``<file>:<line>: <what>``."""
    return issuers_text(_read(path), str(path))


# the [qr] keys of a terminal configuration that set a QrPolicy value (whole numbers)
POLICY_NUMBERS = ("min_version", "future_skew", "max_validity", "debounce", "min_interval")


@dataclass(frozen=True)
class QrSettings:
    """A validator's ride-code trust as configured: its root keys file, its issuer
    whitelist file, and the policy values that differ from ``QrPolicy``'s."""

    root_keys: str
    issuers: str
    policy: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> tuple[dict[int, RootKey], QrPolicy]:
        """The root keys and the policy with the whitelist; FileError naming the line."""
        roots = load_root_keys(self.root_keys)
        if not roots:
            raise FileError(self.root_keys, None, "lists no root key: no code could verify")
        return roots, QrPolicy(issuers=load_issuers(self.issuers), **self.policy)
