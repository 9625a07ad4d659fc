"""Subsidy rosters at the gateway: import, the approval workflow and its audit trail.

``import_roster`` validates a roster with the pure checks of ``roster.py`` (and the
gateway's card book for one person one card), refuses lines already declared in another
live roster (same ID number, item and period: a partial unique index makes that hold
under any interleaving too), and stores the valid lines under a new roster in state
``declared``. A roster with no valid line is not stored; its report still says why.

States: ``declared`` → ``reviewed`` → ``approved``; ``declared`` or ``reviewed`` →
``rejected`` (its lines are withdrawn and may be declared again in a corrected roster).
Separation of duties: the declarer, the reviewer and the approver are three different
people, and a rejection is never by the declarer. Every step is an event row with who,
when and a note; nothing is ever updated out of the trail.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.errors import Conflict, Forbidden, Invalid, NotFound, Refused
from gateway.storage import Cursor, Database, now_ms
from gateway.subsidy.catalogue import Catalogue, Item
from gateway.subsidy.roster import (
    CardLookup,
    Rejection,
    RosterFormatError,
    RosterLine,
    RosterReport,
    decode_roster,
    parse_roster,
    validate_roster,
)
from terminal.roles.registry import serial_of
from terminal.text import person_name

DECLARED = "declared"
REVIEWED = "reviewed"
APPROVED = "approved"
REJECTED = "rejected"
MAX_ACTOR = 64
MAX_TITLE = 200

_ROSTER_COLUMNS = (
    "id, title, source, state, line_count, total_fen, rejected_rows, declared_by, declared_at,"
    " reviewed_by, reviewed_at, approved_by, approved_at, rejected_by, rejected_at,"
    " rejected_reason"
)


@dataclass(frozen=True, slots=True)
class Roster:
    id: int
    title: str
    source: str
    state: str
    line_count: int
    total_fen: int
    rejected_rows: int
    declared_by: str
    declared_at: int
    reviewed_by: str | None
    reviewed_at: int | None
    approved_by: str | None
    approved_at: int | None
    rejected_by: str | None
    rejected_at: int | None
    rejected_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "state": self.state,
            "lines": self.line_count,
            "total_fen": self.total_fen,
            "rejected_rows": self.rejected_rows,
            "declared_by": self.declared_by,
            "declared_at_ms": self.declared_at,
            "reviewed_by": self.reviewed_by,
            "reviewed_at_ms": self.reviewed_at,
            "approved_by": self.approved_by,
            "approved_at_ms": self.approved_at,
            "rejected_by": self.rejected_by,
            "rejected_at_ms": self.rejected_at,
            "rejected_reason": self.rejected_reason,
        }


@dataclass(frozen=True)
class ImportResult:
    """The stored roster (None when no line was valid) and the full validation report."""

    roster: Roster | None
    report: RosterReport

    def to_json(self) -> dict[str, Any]:
        return {
            "roster": self.roster.to_json() if self.roster else None,
            "report": self.report.to_json(),
        }


def _roster(r: Any) -> Roster:
    return Roster(*r)


def _get(cur: Cursor, roster_id: int) -> Roster:
    cur.execute(f"SELECT {_ROSTER_COLUMNS} FROM subsidy_rosters WHERE id = ?", (roster_id,))
    r = cur.fetchone()
    if r is None:
        raise NotFound("unknown_roster", f"no subsidy roster #{roster_id}")
    return _roster(r)


def get_roster(db: Database, roster_id: int) -> Roster:
    with db.tx() as cur:
        return _get(cur, roster_id)


def list_rosters(db: Database) -> list[Roster]:
    with db.tx() as cur:
        cur.execute(f"SELECT {_ROSTER_COLUMNS} FROM subsidy_rosters ORDER BY id")
        return [_roster(r) for r in cur.fetchall()]


def check_actor(actor: str) -> str:
    """A person's name or staff id as the audit trail records it: NFKC, invisible characters
    (zero-width, bidi controls) removed, so one person has one spelling."""
    actor = person_name(actor or "")
    if not actor or len(actor) > MAX_ACTOR:
        raise Invalid("bad_actor", f"who did it must be named (1..{MAX_ACTOR} characters)")
    return actor


def _event(cur: Cursor, roster_id: int, action: str, actor: str, at: int, note: str = "") -> None:
    cur.execute(
        "INSERT INTO subsidy_events (roster_id, action, actor, at, note) VALUES (?, ?, ?, ?, ?)",
        (roster_id, action, actor, at, note[:1000]),
    )


def events(db: Database, roster_id: int) -> list[dict[str, Any]]:
    """The audit trail of one roster, oldest first."""
    with db.tx() as cur:
        _get(cur, roster_id)
        cur.execute(
            "SELECT action, actor, at, note FROM subsidy_events WHERE roster_id = ? ORDER BY id",
            (roster_id,),
        )
        return [
            {"action": r[0], "actor": r[1], "at_ms": int(r[2]), "note": r[3]}
            for r in cur.fetchall()
        ]


# -- import ---------------------------------------------------------------------------------
def _declared_elsewhere(cur: Cursor, line: RosterLine) -> str | None:
    cur.execute(
        "SELECT l.roster_id, l.row_no FROM subsidy_lines l WHERE l.id_number = ? AND l.item = ?"
        " AND l.period = ? AND l.live = 1",
        (line.id_number, line.item.code, line.period),
    )
    r = cur.fetchone()
    if r is None:
        return None
    return (
        f"already declared in roster #{r[0]} row {r[1]} (same ID number, item and period): "
        "a subsidy line is paid once"
    )


def import_roster(
    db: Database,
    raw: bytes,
    catalogue: Catalogue,
    *,
    declared_by: str,
    title: str = "",
    source: str = "",
    today: date | None = None,
    cards: CardLookup | None = None,
) -> ImportResult:
    """Validate a roster file and store its valid lines as a declared roster."""
    declared_by = check_actor(declared_by)
    if len(title) > MAX_TITLE:
        raise Invalid("bad_title", f"a roster title has at most {MAX_TITLE} characters")
    try:
        rows = parse_roster(decode_roster(raw))
    except RosterFormatError as exc:
        raise Invalid("bad_roster", str(exc)) from None
    checked = validate_roster(rows, catalogue, today=today, cards=cards)
    now = now_ms()
    with db.tx() as cur:
        lines, rejected = [], list(checked.rejected)
        for line in checked.lines:
            reason = _declared_elsewhere(cur, line)
            if reason is None:
                lines.append(line)
            else:
                fields = {
                    "name": line.name,
                    "id_number": line.id_number,
                    "card_number": line.card_number,
                    "item": line.item.code,
                    "amount_fen": str(line.amount_fen),
                    "period": line.period,
                }
                rejected.append(Rejection(line.row, fields, (reason,)))
        rejected.sort(key=lambda r: r.row)
        report = RosterReport(lines, rejected)
        if not lines:
            return ImportResult(None, report)
        summary = {"rows": report.rows, "rejections": [r.to_json() for r in rejected]}
        cur.execute(
            "INSERT INTO subsidy_rosters (title, source, content_hash, state, line_count,"
            " total_fen, rejected_rows, report, declared_by, declared_at)"
            " VALUES (?, ?, ?, 'declared', ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                title.strip() or source or "roster",
                source,
                hashlib.sha256(raw).hexdigest(),
                len(lines),
                report.total_fen,
                len(rejected),
                json.dumps(summary, ensure_ascii=False),
                declared_by,
                now,
            ),
        )
        roster_id = int(cur.fetchone()[0])
        cur.executemany(
            "INSERT INTO subsidy_lines (roster_id, row_no, name, id_number, card_number,"
            " card_serial, item, item_name, category, amount_fen, period)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    roster_id,
                    line.row,
                    line.name,
                    line.id_number,
                    line.card_number,
                    serial_of(line.card_number).hex().upper(),
                    line.item.code,
                    line.item.name,
                    line.item.category,
                    line.amount_fen,
                    line.period,
                )
                for line in lines
            ],
        )
        _event(
            cur,
            roster_id,
            DECLARED,
            declared_by,
            now,
            f"{len(lines)} line(s), {report.total_fen} fen; {len(rejected)} row(s) rejected",
        )
        roster = _get(cur, roster_id)
    return ImportResult(roster, report)


def stored_report(db: Database, roster_id: int) -> dict[str, Any]:
    """The rejections recorded when the roster was imported."""
    with db.tx() as cur:
        _get(cur, roster_id)
        cur.execute("SELECT report FROM subsidy_rosters WHERE id = ?", (roster_id,))
        return dict(json.loads(cur.fetchone()[0]))


# -- approval -------------------------------------------------------------------------------
def _is(actor: str, earlier: str | None) -> bool:
    """Whether two recorded names are one person (also for rows stored before names were
    normalised): compared normalised and case-folded."""
    return earlier is not None and person_name(actor).casefold() == person_name(earlier).casefold()


def _same_person(what: str, actor: str, earlier: str) -> Refused:
    return Forbidden(
        "same_person",
        f"{actor} {earlier} this roster and may not also {what} it "
        "(declarer, reviewer and approver are three different people)",
    )


def review(db: Database, roster_id: int, actor: str, note: str = "") -> Roster:
    """declared → reviewed, by someone other than the declarer."""
    actor = check_actor(actor)
    with db.tx() as cur:
        r = _get(cur, roster_id)
        if r.state != DECLARED:
            raise Conflict(
                "wrong_state", f"roster #{roster_id} is {r.state}; only a declared one is reviewed"
            )
        if _is(actor, r.declared_by):
            raise _same_person("review", actor, "declared")
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_rosters SET state = 'reviewed', reviewed_by = ?, reviewed_at = ?"
            " WHERE id = ? AND state = 'declared'",
            (actor, now, roster_id),
        )
        _event(cur, roster_id, REVIEWED, actor, now, note)
        return _get(cur, roster_id)


def approve(db: Database, roster_id: int, actor: str, note: str = "") -> Roster:
    """reviewed → approved, by a third person; from then on its lines can be picked up."""
    actor = check_actor(actor)
    with db.tx() as cur:
        r = _get(cur, roster_id)
        if r.state == DECLARED:
            raise Conflict(
                "not_reviewed", f"roster #{roster_id} is declared: it must be reviewed first"
            )
        if r.state != REVIEWED:
            raise Conflict(
                "wrong_state", f"roster #{roster_id} is {r.state}; only a reviewed one is approved"
            )
        if _is(actor, r.declared_by):
            raise _same_person("approve", actor, "declared")
        if _is(actor, r.reviewed_by):
            raise _same_person("approve", actor, "reviewed")
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_rosters SET state = 'approved', approved_by = ?, approved_at = ?"
            " WHERE id = ? AND state = 'reviewed'",
            (actor, now, roster_id),
        )
        _event(cur, roster_id, APPROVED, actor, now, note)
        return _get(cur, roster_id)


def reject(db: Database, roster_id: int, actor: str, reason: str) -> Roster:
    """declared or reviewed → rejected; its lines are withdrawn (declarable again)."""
    actor = check_actor(actor)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("no_reason", "a rejection must say why")
    with db.tx() as cur:
        r = _get(cur, roster_id)
        if r.state not in (DECLARED, REVIEWED):
            raise Conflict(
                "wrong_state", f"roster #{roster_id} is {r.state}; it cannot be rejected"
            )
        if _is(actor, r.declared_by):
            raise _same_person("reject", actor, "declared")
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_rosters SET state = 'rejected', rejected_by = ?, rejected_at = ?,"
            " rejected_reason = ? WHERE id = ?",
            (actor, now, reason[:1000], roster_id),
        )
        cur.execute("UPDATE subsidy_lines SET live = 0 WHERE roster_id = ?", (roster_id,))
        _event(cur, roster_id, REJECTED, actor, now, reason)
        return _get(cur, roster_id)


# -- publication ----------------------------------------------------------------------------
def roster_lines(db: Database, roster_id: int) -> RosterReport:
    """The stored lines of a roster as a report (for the 公示 listing)."""
    with db.tx() as cur:
        _get(cur, roster_id)
        cur.execute(
            "SELECT row_no, name, id_number, card_number, item, item_name, category, amount_fen,"
            " period FROM subsidy_lines WHERE roster_id = ? ORDER BY row_no",
            (roster_id,),
        )
        rows = cur.fetchall()
    lines = [
        RosterLine(r[0], r[1], r[2], r[3], Item(r[4], r[5], r[6], ""), int(r[7]), r[8])
        for r in rows
    ]
    return RosterReport(lines, [])
