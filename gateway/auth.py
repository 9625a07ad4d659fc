"""Terminal registry and per-terminal credentials: bearer tokens, stored only as SHA-256.

Tokens are 256-bit random strings, so a plain hash at rest is enough (no password
stretching needed); the plaintext is shown once, when the terminal is registered or its
token rotated. Unknown tokens are ``Unauthenticated``, revoked terminals ``Forbidden``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from gateway.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from gateway.storage import Database, now_ms

TERMINAL_ID = re.compile(r"^[0-9A-F]{12}\Z")
OPERATOR_ID = re.compile(r"^[0-9A-Za-z_.-]{1,32}\Z")
ROLES = ("pos", "validator", "kiosk", "issuance", "admin", "door", "library")
PURCHASE = "purchase"
EC_PURCHASE = "ec_purchase"
QR_RIDE = "qr_ride"
# What each role may upload to /v1/batches: only debiting terminals report purchases, only
# a merchant POS takes Electronic Cash, only a validator takes ride QR codes. A kiosk or
# desk moves money through the online load endpoints, which the HSM checks.
UPLOAD_KINDS: dict[str, frozenset[str]] = {
    "pos": frozenset({PURCHASE, EC_PURCHASE}),
    "validator": frozenset({PURCHASE, QR_RIDE}),
}


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    operator_id: str
    role: str
    name: str
    revoked: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "ykt_" + secrets.token_urlsafe(32)


def _row(r: tuple) -> Terminal:  # type: ignore[type-arg]
    return Terminal(r[0], r[1], r[2], r[3], r[4] is not None)


_COLUMNS = "terminal_id, operator_id, role, name, revoked_at"


def register_terminal(
    db: Database, terminal_id: str, operator_id: str, *, role: str = "pos", name: str = ""
) -> str:
    """Add a terminal (PSAM terminal id, 12 hex digits) and return its new token."""
    terminal_id = terminal_id.upper()
    if not TERMINAL_ID.match(terminal_id):
        raise Invalid("bad_terminal_id", "terminal id must be 12 hex digits (6 bytes)")
    if not OPERATOR_ID.match(operator_id):
        raise Invalid("bad_operator_id", "operator id must be 1-32 letters, digits, _.-")
    if role not in ROLES:
        raise Invalid("bad_role", f"role must be one of {', '.join(ROLES)}")
    token = new_token()
    with db.tx() as cur:
        cur.execute("SELECT 1 FROM terminals WHERE terminal_id = ?", (terminal_id,))
        if cur.fetchone() is not None:
            raise Conflict("terminal_exists", f"terminal {terminal_id} is already registered")
        cur.execute(
            "INSERT INTO terminals (terminal_id, operator_id, role, name, token_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (terminal_id, operator_id, role, name, hash_token(token), now_ms()),
        )
    return token


def rotate_token(db: Database, terminal_id: str) -> str:
    """Give a terminal a new token (the old one stops working) and re-enable it."""
    token = new_token()
    with db.tx() as cur:
        cur.execute(
            "UPDATE terminals SET token_hash = ?, revoked_at = NULL WHERE terminal_id = ?",
            (hash_token(token), terminal_id.upper()),
        )
        if cur.rowcount != 1:
            raise NotFound("unknown_terminal", f"no terminal {terminal_id.upper()}")
    return token


def revoke_terminal(db: Database, terminal_id: str) -> None:
    with db.tx() as cur:
        cur.execute(
            "UPDATE terminals SET revoked_at = ? WHERE terminal_id = ? AND revoked_at IS NULL",
            (now_ms(), terminal_id.upper()),
        )
        if cur.rowcount != 1:
            cur.execute("SELECT 1 FROM terminals WHERE terminal_id = ?", (terminal_id.upper(),))
            if cur.fetchone() is None:
                raise NotFound("unknown_terminal", f"no terminal {terminal_id.upper()}")


def get_terminal(db: Database, terminal_id: str) -> Terminal | None:
    with db.tx() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM terminals WHERE terminal_id = ?", (terminal_id,))
        r = cur.fetchone()
    return None if r is None else _row(r)


def list_terminals(db: Database) -> list[Terminal]:
    with db.tx() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM terminals ORDER BY terminal_id")
        return [_row(r) for r in cur.fetchall()]


def authenticate(db: Database, authorization: str | None) -> Terminal:
    """The terminal behind an ``Authorization: Bearer`` header; ``Unauthenticated`` or
    ``Forbidden`` (revoked) otherwise."""
    if not authorization:
        raise Unauthenticated("unauthenticated", "missing Authorization: Bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("unauthenticated", "Authorization must be 'Bearer <token>'")
    # one statement on the read connection: no BEGIN/COMMIT round trips, and on SQLite no
    # wait for a batch being stored; no cache, so a revocation counts from its commit on
    with db.read() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM terminals WHERE token_hash = ?", (hash_token(token.strip()),)
        )
        r = cur.fetchone()
    if r is None:
        raise Unauthenticated("unauthenticated", "unknown terminal credentials")
    terminal = _row(r)
    if terminal.revoked:
        raise Forbidden("revoked", f"terminal {terminal.terminal_id} is revoked")
    return terminal


def require_role(terminal: Terminal, *roles: str) -> None:
    if terminal.role not in roles:
        raise Forbidden(
            "wrong_role",
            f"terminal {terminal.terminal_id} is a {terminal.role}, "
            f"this needs {' or '.join(roles)}",
        )


def require_upload(terminal: Terminal, kind: str) -> None:
    """Refuse (``Forbidden`` ``wrong_role``) a terminal uploading records its role never makes."""
    if kind not in UPLOAD_KINDS.get(terminal.role, frozenset()):
        allowed = sorted(r for r, kinds in UPLOAD_KINDS.items() if kind in kinds)
        raise Forbidden(
            "wrong_role",
            f"terminal {terminal.terminal_id} is a {terminal.role}; {kind} records are "
            f"uploaded only by {' or '.join(allowed)} terminals",
        )
