"""Ride-code parameter files (root keys, issuer whitelist) that validators fetch and apply.

Each upload is a new numbered version of one file, checked with the terminal's own parser
(terminal/qr/params.py) before it is stored, so a file a validator would refuse is never
distributed. A validator asks for the files newer than the version it holds and gets the
newest of each kind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gateway.errors import Invalid, Malformed, TooLarge
from gateway.storage import POSTGRES, Database, now_ms
from terminal.qr.params import issuers_text, root_keys_text
from terminal.text import FileError

ROOT_KEYS = "root_keys"
ISSUERS = "issuers"
KINDS = (ROOT_KEYS, ISSUERS)
MAX_BYTES = 32 * 1024  # 255 root keys or 1,000 issuers fit well under this


@dataclass(frozen=True, slots=True)
class ParamFile:
    version: int
    kind: str
    text: str
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "text": self.text, "sha256": self.sha256}


def check(kind: str, text: str) -> int:
    """The number of entries of a valid file; a refusal saying what is wrong otherwise."""
    if kind not in KINDS:
        raise Invalid("bad_kind", f"parameter file kind must be one of {', '.join(KINDS)}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise TooLarge("too_large", f"{kind} file of {size} bytes is over {MAX_BYTES}")
    if "\x00" in text:
        raise Malformed("bad_params", f"{kind} file holds a NUL byte: not a text file")
    parse = root_keys_text if kind == ROOT_KEYS else issuers_text
    try:
        entries = parse(text.splitlines(), kind)
    except FileError as exc:
        raise Invalid("bad_params", str(exc)) from None
    if not entries:
        raise Invalid("bad_params", f"{kind} file lists nothing: no code could verify")
    return len(entries)


def upload(db: Database, kind: str, text: str, *, actor: str = "") -> tuple[int, int]:
    """Store a checked file as the newest version of its kind: (version, entries)."""
    entries = check(kind, text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with db.tx() as cur:
        if db.dialect == POSTGRES:
            cur.execute("SELECT pg_advisory_xact_lock(978014)")  # versions commit in order
        cur.execute(
            "INSERT INTO qr_params (kind, body, sha256, entries, actor, at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING version",
            (kind, text, digest, entries, actor, now_ms()),
        )
        return int(cur.fetchone()[0]), entries


def newer(db: Database, since: int) -> tuple[int, dict[str, ParamFile]]:
    """(latest version, the newest file of each kind whose version is above ``since``)."""
    out: dict[str, ParamFile] = {}
    with db.tx() as cur:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM qr_params")
        latest = int(cur.fetchone()[0])
        for kind in KINDS:
            cur.execute(
                "SELECT version, body, sha256 FROM qr_params WHERE kind = ? AND version > ?"
                " ORDER BY version DESC LIMIT 1",
                (kind, since),
            )
            r = cur.fetchone()
            if r is not None:
                out[kind] = ParamFile(int(r[0]), kind, r[1], r[2])
    return latest, out
