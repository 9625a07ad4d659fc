"""Hotlist (挂失 blacklist) distribution: every add or remove is a numbered change.

Terminals keep the version they last applied and ask for the changes after it, so a
delta is small and a terminal that was offline for a week catches up in one call. Adding
a listed card or removing an unlisted one changes nothing and makes no version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import Invalid
from gateway.storage import POSTGRES, Cursor, Database, now_ms, retried

ADD = "add"
REMOVE = "remove"
MAX_DELTA = 10_000
_HEX16 = re.compile(r"[0-9A-F]{16}")


@dataclass(frozen=True, slots=True)
class HotlistChange:
    version: int
    action: str
    issuer_id: str
    card_serial: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "action": self.action,
            "issuer_id": self.issuer_id,
            "card_serial": self.card_serial,
            "reason": self.reason,
        }


def canonical_id(name: str, value: str) -> str:
    """An issuer id or card serial as stored: surrounding blanks stripped, 16 upper-case hex
    digits; anything else is refused (a serial with a newline is not another card)."""
    text = value.strip().upper()
    if not _HEX16.fullmatch(text):
        raise Invalid("bad_card", f"{name} must be exactly 16 hex digits, got {value[:40]!r}")
    return text


def _check(issuer_id: str, card_serial: str) -> tuple[str, str]:
    return canonical_id("issuer_id", issuer_id), canonical_id("card_serial", card_serial)


@retried
def change(
    db: Database,
    action: str,
    issuer_id: str,
    card_serial: str,
    *,
    reason: str = "",
    actor: str = "",
) -> int | None:
    """List (``add``, 挂失) or unlist (``remove``, 解挂) a card; the new version, or None."""
    with db.tx() as cur:
        return change_in(cur, db.dialect, action, issuer_id, card_serial, reason, actor)


def change_in(
    cur: Cursor,
    dialect: str,
    action: str,
    issuer_id: str,
    card_serial: str,
    reason: str,
    actor: str,
) -> int | None:
    """``change`` inside the caller's transaction, so a change to another book (a campus
    card's loss) and its hotlist change commit together or not at all."""
    if action not in (ADD, REMOVE):
        raise Invalid("bad_action", "action must be 'add' or 'remove'")
    issuer_id, card_serial = _check(issuer_id, card_serial)
    listed = 1 if action == ADD else 0
    if dialect == POSTGRES:
        # one change at a time: versions then commit in the order they are numbered,
        # so a terminal that has seen version N never misses a smaller one later
        cur.execute("SELECT pg_advisory_xact_lock(978005)")
    cur.execute(
        "SELECT listed FROM hotlist WHERE issuer_id = ? AND card_serial = ?",
        (issuer_id, card_serial),
    )
    r = cur.fetchone()
    if (r[0] if r else 0) == listed:
        return None
    cur.execute(
        "INSERT INTO hotlist_changes (issuer_id, card_serial, action, reason, actor, at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING version",
        (issuer_id, card_serial, action, reason, actor, now_ms()),
    )
    version = int(cur.fetchone()[0])
    cur.execute(
        "INSERT INTO hotlist (issuer_id, card_serial, listed, version, reason)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (issuer_id, card_serial) DO UPDATE SET"
        " listed = excluded.listed, version = excluded.version, reason = excluded.reason",
        (issuer_id, card_serial, listed, version, reason),
    )
    return version


def delta(db: Database, since: int = 0, limit: int = MAX_DELTA) -> tuple[int, list[HotlistChange]]:
    """(latest version, changes after ``since`` in order, at most ``limit``)."""
    with db.tx() as cur:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM hotlist_changes")
        latest = int(cur.fetchone()[0])
        cur.execute(
            "SELECT version, action, issuer_id, card_serial, reason FROM hotlist_changes"
            " WHERE version > ? ORDER BY version LIMIT ?",
            (since, limit),
        )
        changes = [HotlistChange(int(r[0]), r[1], r[2], r[3], r[4]) for r in cur.fetchall()]
    return latest, changes


def listed(db: Database) -> set[tuple[str, str]]:
    """Every card listed now, as (issuer id, serial)."""
    with db.tx() as cur:
        cur.execute("SELECT issuer_id, card_serial FROM hotlist WHERE listed = 1")
        return {(r[0], r[1]) for r in cur.fetchall()}
