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
from gateway.storage import POSTGRES, Cursor, Database, now_ms
from gateway.subsidy.catalogue import Catalogue, Item
from gateway.subsidy.roster import (
    CardLookup,
    Rejection,
    RosterFormatError,
    RosterLine,
    RosterReport,
    load_roster,
    validate_roster,
)
from terminal.roles.registry import serial_of
from terminal.text import person_name

DECLARED = "declared"
REVIEWED = "reviewed"
APPROVED = "approved"
REJECTED = "rejected"
SENT = "sent_to_finance"
PUBLISHED = "published"
MIN_DISPLAY_DAYS = 7  # 公示 runs at least a week (the rule chosen; docs/subsidy.md)
MAX_ACTOR = 64
MAX_TITLE = 200

_ROSTER_COLUMNS = (
    "id, title, source, state, line_count, total_fen, rejected_rows, declared_by, declared_at,"
    " reviewed_by, reviewed_at, approved_by, approved_at, rejected_by, rejected_at,"
    " rejected_reason, sent_by, sent_at"
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
    sent_by: str | None
    sent_at: int | None

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
            "sent_by": self.sent_by,
            "sent_at_ms": self.sent_at,
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
    """Why the line clashes with a live line of another roster: the same payee (person, or
    head of household) for the same item and period, or for an item it excludes."""
    items = [line.item.code, *sorted(line.item.excludes)]
    cur.execute(
        "SELECT l.roster_id, l.row_no, l.item FROM subsidy_lines l WHERE l.id_number = ?"
        f" AND l.item IN ({','.join('?' * len(items))}) AND l.period = ? AND l.live = 1"
        " ORDER BY l.id",
        (line.id_number, *items, line.period),
    )
    r = cur.fetchone()
    if r is None:
        return None
    if r[2] != line.item.code:
        return (
            f"excluded by roster #{r[0]} row {r[1]} ({r[2]}): {r[2]} and {line.item.code} are "
            "never paid to one person in one period"
        )
    who = "household" if line.item.per_household else "ID number"
    return (
        f"already declared in roster #{r[0]} row {r[1]} (same {who}, item and period): "
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
        rows = load_roster(raw)
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
                fields = {k: str(v) for k, v in line.to_json().items()}
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
            " card_serial, item, item_name, category, amount_fen, period, payee, member_name,"
            " member_id, household_id, township, village, department)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    line.item.payee,
                    line.member_name,
                    line.member_id,
                    line.household_id,
                    line.township,
                    line.village,
                    line.department,
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


def _four_eyes(what: str, actor: str, earlier: str) -> Refused:
    return Forbidden(
        "four_eyes",
        f"{actor} {earlier} this roster and may not also {what} it "
        "(declarer, reviewer and approver are three different people)",
    )


def _in_state(r: Roster, states: tuple[str, ...], why: str) -> None:
    """Refuse (wrong_state) a step the roster's state does not allow; ``why`` names the state
    that takes it."""
    if r.state not in states:
        raise Conflict("wrong_state", f"roster #{r.id} is {r.state}; {why}")


def _moved(cur: Cursor, r: Roster, rowcount: int) -> None:
    """Refuse (wrong_state) a step whose roster another step moved on meanwhile (PostgreSQL:
    two officers at once), so only the step that won is answered and recorded."""
    if rowcount != 1:
        now = _get(cur, r.id)
        raise Conflict(
            "wrong_state",
            f"roster #{r.id} is {now.state} (by another step meanwhile), no longer {r.state}",
        )


def _hold(db: Database, cur: Cursor, roster_id: int) -> None:
    """Lock the roster (PostgreSQL; SQLite has one writer) before a step that decides from
    its 公示: the approval counts open objections while an objection or a sign-off checks the
    roster is still on display, so run side by side an objection could land on a roster just
    approved, where nobody can resolve it any more."""
    if db.dialect == POSTGRES:
        cur.execute("SELECT 1 FROM subsidy_rosters WHERE id = ? FOR UPDATE", (roster_id,))


def _advance(cur: Cursor, r: Roster, state: str, actor: str, note: str) -> Roster:
    """Move roster ``r`` on to ``state`` (reviewed or approved: its ``<state>_by`` and
    ``_at`` columns) unless it has moved meanwhile, and record the step in its trail."""
    now = now_ms()
    cur.execute(
        f"UPDATE subsidy_rosters SET state = ?, {state}_by = ?, {state}_at = ?"
        " WHERE id = ? AND state = ?",
        (state, actor, now, r.id, r.state),
    )
    _moved(cur, r, cur.rowcount)
    _event(cur, r.id, state, actor, now, note)
    return _get(cur, r.id)


def review(db: Database, roster_id: int, actor: str, note: str = "") -> Roster:
    """declared → reviewed, by someone other than the declarer."""
    actor = check_actor(actor)
    with db.tx() as cur:
        r = _get(cur, roster_id)
        _in_state(r, (DECLARED,), "only a declared one is reviewed")
        if _is(actor, r.declared_by):
            raise _four_eyes("review", actor, "declared")
        return _advance(cur, r, REVIEWED, actor, note)


def approve(
    db: Database, roster_id: int, actor: str, note: str = "", *, today: date | None = None
) -> Roster:
    """reviewed → approved (the department), by a third person, and only after 公示: the
    display period over, every objection resolved and the residents' sign-off recorded."""
    actor = check_actor(actor)
    today = today or date.today()
    with db.tx() as cur:
        _hold(db, cur, roster_id)
        r = _get(cur, roster_id)
        if r.state == DECLARED:
            raise Conflict(
                "not_reviewed", f"roster #{roster_id} is declared: it must be reviewed first"
            )
        _in_state(r, (REVIEWED,), "only a reviewed one is approved")
        if _is(actor, r.declared_by):
            raise _four_eyes("approve", actor, "declared")
        if _is(actor, r.reviewed_by):
            raise _four_eyes("approve", actor, "reviewed")
        pub = _publication(cur, roster_id)
        if pub is None:
            raise Conflict(
                "not_published",
                f"roster #{roster_id} was never published (公示): publish it, let the display "
                "period run and record the residents' sign-off before approval",
            )
        if today <= pub.ends_on:
            raise Conflict(
                "display_period",
                f"roster #{roster_id} is on display until {pub.ends_on.isoformat()}: it can be "
                "approved from the day after",
            )
        cur.execute(
            "SELECT id FROM subsidy_objections WHERE roster_id = ? AND outcome IS NULL ORDER BY id",
            (roster_id,),
        )
        open_ids = [int(x[0]) for x in cur.fetchall()]
        if open_ids:
            raise Conflict(
                "open_objections",
                f"roster #{roster_id} has {len(open_ids)} open objection(s) "
                f"(#{', #'.join(map(str, open_ids))}): resolve them first",
            )
        if pub.signed_by is None:
            raise Conflict(
                "not_signed",
                f"roster #{roster_id} has no sign-off (群众签字认可) recorded after its 公示",
            )
        return _advance(cur, r, APPROVED, actor, note)


def send_to_finance(db: Database, roster_id: int, actor: str, note: str = "") -> Roster:
    """approved → sent to finance (报财政): from then on the agent bank may be paid for it."""
    actor = check_actor(actor)
    with db.tx() as cur:
        r = _get(cur, roster_id)
        if r.state != APPROVED:
            raise Conflict(
                "not_approved", f"roster #{roster_id} is {r.state}; only an approved one is sent"
            )
        if r.sent_at is not None:
            raise Conflict("already_sent", f"roster #{roster_id} was sent by {r.sent_by}")
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_rosters SET sent_by = ?, sent_at = ? WHERE id = ? AND sent_at IS NULL",
            (actor, now, roster_id),
        )
        if cur.rowcount != 1:  # another officer's send won meanwhile (PostgreSQL)
            raise Conflict(
                "already_sent", f"roster #{roster_id} was sent by {_get(cur, roster_id).sent_by}"
            )
        _event(cur, roster_id, SENT, actor, now, note)
        return _get(cur, roster_id)


def reject(db: Database, roster_id: int, actor: str, reason: str) -> Roster:
    """declared or reviewed → rejected; its lines are withdrawn (declarable again)."""
    actor = check_actor(actor)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("no_reason", "a rejection must say why")
    with db.tx() as cur:
        r = _get(cur, roster_id)
        _in_state(r, (DECLARED, REVIEWED), "it cannot be rejected")
        if _is(actor, r.declared_by):
            raise _four_eyes("reject", actor, "declared")
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_rosters SET state = 'rejected', rejected_by = ?, rejected_at = ?,"
            " rejected_reason = ? WHERE id = ? AND state = ?",
            (actor, now, reason[:1000], roster_id, r.state),
        )
        _moved(cur, r, cur.rowcount)
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
            " period, payee, member_name, member_id, household_id, township, village, department"
            " FROM subsidy_lines WHERE roster_id = ? AND live = 1 ORDER BY row_no",
            (roster_id,),
        )
        rows = cur.fetchall()
    lines = [
        RosterLine(
            r[0], r[1], r[2], r[3], Item(r[4], r[5], r[6], "", payee=r[9]), int(r[7]), r[8], *r[10:]
        )
        for r in rows
    ]
    return RosterReport(lines, [])


# -- 公示: publication, objections, sign-off ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Publication:
    roster_id: int
    starts_on: date
    ends_on: date
    place: str
    published_by: str
    published_at: int
    signed_by: str | None
    signed_at: int | None
    signatures: int | None
    signoff_note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "roster_id": self.roster_id,
            "starts_on": self.starts_on.isoformat(),
            "ends_on": self.ends_on.isoformat(),
            "place": self.place,
            "published_by": self.published_by,
            "published_at_ms": self.published_at,
            "signed_by": self.signed_by,
            "signed_at_ms": self.signed_at,
            "signatures": self.signatures,
            "signoff_note": self.signoff_note,
        }


def _publication(cur: Cursor, roster_id: int) -> Publication | None:
    cur.execute(
        "SELECT roster_id, starts_on, ends_on, place, published_by, published_at, signed_by,"
        " signed_at, signatures, signoff_note FROM subsidy_publications WHERE roster_id = ?",
        (roster_id,),
    )
    r = cur.fetchone()
    if r is None:
        return None
    return Publication(int(r[0]), date.fromisoformat(r[1]), date.fromisoformat(r[2]), *r[3:])


def get_publication(db: Database, roster_id: int) -> Publication | None:
    with db.tx() as cur:
        _get(cur, roster_id)
        return _publication(cur, roster_id)


def publish(
    db: Database, roster_id: int, actor: str, starts_on: date, ends_on: date, place: str = ""
) -> Publication:
    """Record the 公示 of a reviewed roster: where it hangs and from when to when (at least
    ``MIN_DISPLAY_DAYS`` days, both ends included). Published once."""
    actor = check_actor(actor)
    if (ends_on - starts_on).days + 1 < MIN_DISPLAY_DAYS:
        raise Invalid(
            "short_display",
            f"公示 runs at least {MIN_DISPLAY_DAYS} days; {starts_on}..{ends_on} is "
            f"{(ends_on - starts_on).days + 1}",
        )
    with db.tx() as cur:
        r = _get(cur, roster_id)
        _in_state(r, (REVIEWED,), "a reviewed roster is published")
        if _publication(cur, roster_id) is not None:
            raise Conflict("already_published", f"roster #{roster_id} is already published")
        now = now_ms()
        cur.execute(
            "INSERT INTO subsidy_publications (roster_id, starts_on, ends_on, place,"
            " published_by, published_at) VALUES (?, ?, ?, ?, ?, ?)",
            (roster_id, starts_on.isoformat(), ends_on.isoformat(), place[:200], actor, now),
        )
        _event(cur, roster_id, PUBLISHED, actor, now, f"{starts_on}..{ends_on} {place}".strip())
        pub = _publication(cur, roster_id)
        assert pub is not None
        return pub


def _on_display(db: Database, cur: Cursor, roster_id: int) -> Publication:
    """The roster's publication, once the roster is held (``_hold``) and still on display."""
    _hold(db, cur, roster_id)
    r = _get(cur, roster_id)
    pub = _publication(cur, roster_id)
    if pub is None or r.state != REVIEWED:
        raise Conflict(
            "not_on_display",
            f"roster #{roster_id} is {r.state}"
            + ("" if pub else ", not published")
            + ": objections and sign-off belong to a published roster before approval",
        )
    return pub


def object_to(db: Database, roster_id: int, row: int, actor: str, reason: str) -> dict[str, Any]:
    """Record an objection (异议) raised during 公示 against the line of roster row ``row``."""
    actor = check_actor(actor)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("no_reason", "an objection must say what is wrong")
    with db.tx() as cur:
        _on_display(db, cur, roster_id)
        cur.execute(
            "SELECT id FROM subsidy_lines WHERE roster_id = ? AND row_no = ? AND live = 1",
            (roster_id, row),
        )
        found = cur.fetchone()
        if found is None:
            raise NotFound("unknown_line", f"roster #{roster_id} has no live line in row {row}")
        now = now_ms()
        cur.execute(
            "INSERT INTO subsidy_objections (roster_id, line_id, raised_by, raised_at, reason)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (roster_id, int(found[0]), actor, now, reason[:1000]),
        )
        oid = int(cur.fetchone()[0])
        _event(cur, roster_id, "objection", actor, now, f"#{oid} row {row}: {reason}")
        return _objection(cur, oid)


def resolve_objection(
    db: Database, objection_id: int, actor: str, outcome: str, note: str
) -> dict[str, Any]:
    """Close an objection: ``upheld`` withdraws its line from the roster, ``dismissed``
    keeps it; either way with who, when and why."""
    actor = check_actor(actor)
    note = (note or "").strip()
    if outcome not in ("upheld", "dismissed"):
        raise Invalid("bad_outcome", "an objection is upheld or dismissed")
    if not note:
        raise Invalid("no_reason", "say how the objection was resolved")
    with db.tx() as cur:
        _hold(db, cur, _objection(cur, objection_id)["roster_id"])
        o = _objection(cur, objection_id)
        if o["outcome"] is not None:
            raise Conflict("resolved", f"objection #{objection_id} is already {o['outcome']}")
        _on_display(db, cur, o["roster_id"])
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_objections SET outcome = ?, resolved_by = ?, resolved_at = ?,"
            " resolution = ? WHERE id = ? AND outcome IS NULL",
            (outcome, actor, now, note[:1000], objection_id),
        )
        if outcome == "upheld":
            cur.execute(
                "UPDATE subsidy_lines SET live = 0 WHERE id = ? AND live = 1", (o["line_id"],)
            )
            cur.execute(
                "UPDATE subsidy_rosters SET line_count = (SELECT COUNT(*) FROM subsidy_lines"
                " WHERE roster_id = ? AND live = 1), total_fen = (SELECT COALESCE(SUM(amount_fen),"
                " 0) FROM subsidy_lines WHERE roster_id = ? AND live = 1) WHERE id = ?",
                (o["roster_id"], o["roster_id"], o["roster_id"]),
            )
        _event(cur, o["roster_id"], f"objection_{outcome}", actor, now, f"#{objection_id}: {note}")
        return _objection(cur, objection_id)


def _objection(cur: Cursor, objection_id: int) -> dict[str, Any]:
    cur.execute(
        "SELECT o.id, o.roster_id, o.line_id, l.row_no, o.raised_by, o.raised_at, o.reason,"
        " o.outcome, o.resolved_by, o.resolved_at, o.resolution FROM subsidy_objections o"
        " JOIN subsidy_lines l ON l.id = o.line_id WHERE o.id = ?",
        (objection_id,),
    )
    r = cur.fetchone()
    if r is None:
        raise NotFound("unknown_objection", f"no objection #{objection_id}")
    keys = [
        "id",
        "roster_id",
        "line_id",
        "row",
        "raised_by",
        "raised_at_ms",
        "reason",
        "outcome",
        "resolved_by",
        "resolved_at_ms",
        "resolution",
    ]
    return dict(zip(keys, r, strict=True))


def objections(db: Database, roster_id: int) -> list[dict[str, Any]]:
    with db.tx() as cur:
        _get(cur, roster_id)
        cur.execute(
            "SELECT id FROM subsidy_objections WHERE roster_id = ? ORDER BY id", (roster_id,)
        )
        return [_objection(cur, int(r[0])) for r in cur.fetchall()]


def sign_off(
    db: Database, roster_id: int, actor: str, signatures: int, note: str = ""
) -> Publication:
    """Record the residents' acknowledgement (群众签字认可) of a published roster: who
    collected it, when, and how many signatures the signed sheet holds."""
    actor = check_actor(actor)
    if not 0 < signatures <= 1_000_000:
        raise Invalid("bad_signatures", "a sign-off counts at least one signature")
    with db.tx() as cur:
        pub = _on_display(db, cur, roster_id)
        if pub.signed_by is not None:
            raise Conflict(
                "already_signed", f"roster #{roster_id} was signed off by {pub.signed_by}"
            )
        now = now_ms()
        cur.execute(
            "UPDATE subsidy_publications SET signed_by = ?, signed_at = ?, signatures = ?,"
            " signoff_note = ? WHERE roster_id = ? AND signed_by IS NULL",
            (actor, now, signatures, note[:1000], roster_id),
        )
        _event(cur, roster_id, "signed_off", actor, now, f"{signatures} signature(s) {note}")
        signed = _publication(cur, roster_id)
        assert signed is not None
        return signed
