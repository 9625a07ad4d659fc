"""Reconciliation: what this gateway had accepted by clearing, against clearing's own books.

Per terminal and kind (purchase, EC sale, load) the counts and amounts must match; any difference
is listed. A record clearing rejected (a forged TAC, say) is a mismatch too, listed with
its terminal, sequence (or load reference) and clearing's reason: the books agreeing on
what was accepted does not make a refused record fine. Optionally for one business day
(card time for purchases, host time for loads).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.errors import Unavailable
from gateway.storage import Database
from gateway.subsidy.bank import funds

_SENT = {
    "purchase": (
        "SELECT t.terminal_id, COUNT(*), COALESCE(SUM(t.amount), 0) FROM outbox o"
        " JOIN txn t ON o.kind = 'txn' AND o.ref_id = t.id"
        " WHERE o.outcome IN ('accepted', 'duplicate') {day} GROUP BY t.terminal_id",
        "substr(t.txn_time, 1, 10) = ?",
    ),
    "load": (
        "SELECT l.terminal_id, COUNT(*), COALESCE(SUM(l.amount), 0) FROM outbox o"
        " JOIN loads l ON o.kind = 'load' AND o.ref_id = l.id"
        " WHERE o.outcome IN ('accepted', 'duplicate') {day} GROUP BY l.terminal_id",
        "substr(l.host_time, 1, 10) = ?",
    ),
    "ec_purchase": (
        "SELECT e.terminal_id, COUNT(*), COALESCE(SUM(e.amount), 0) FROM outbox o"
        " JOIN ec_txn e ON o.kind = 'ec_purchase' AND o.ref_id = e.id"
        " WHERE o.outcome IN ('accepted', 'duplicate') {day} GROUP BY e.terminal_id",
        "substr(e.txn_time, 1, 10) = ?",
    ),
    "qr_ride": (
        "SELECT q.terminal_id, COUNT(*), COALESCE(SUM(q.amount), 0) FROM outbox o"
        " JOIN qr_txn q ON o.kind = 'qr_ride' AND o.ref_id = q.id"
        " WHERE o.outcome IN ('accepted', 'duplicate') {day} GROUP BY q.terminal_id",
        "substr(q.txn_time, 1, 10) = ?",
    ),
}


_REJECTED = (
    "SELECT 'purchase', t.terminal_id, t.terminal_seq, NULL, t.amount, o.reason FROM outbox o"
    " JOIN txn t ON o.kind = 'txn' AND o.ref_id = t.id"
    " WHERE o.outcome = 'rejected' {txn_day}"
    " UNION ALL"
    " SELECT 'load', l.terminal_id, NULL, l.reference, l.amount, o.reason FROM outbox o"
    " JOIN loads l ON o.kind = 'load' AND o.ref_id = l.id"
    " WHERE o.outcome = 'rejected' {load_day}"
    " UNION ALL"
    " SELECT 'ec_purchase', e.terminal_id, e.ec_seq, NULL, e.amount, o.reason FROM outbox o"
    " JOIN ec_txn e ON o.kind = 'ec_purchase' AND o.ref_id = e.id"
    " WHERE o.outcome = 'rejected' {ec_day}"
    " UNION ALL"
    " SELECT 'qr_ride', q.terminal_id, q.qr_seq, NULL, q.amount, o.reason FROM outbox o"
    " JOIN qr_txn q ON o.kind = 'qr_ride' AND o.ref_id = q.id"
    " WHERE o.outcome = 'rejected' {qr_day}"
    " ORDER BY 1, 2, 3, 4"
)


def rejected(db: Database, day: str | None = None) -> list[dict[str, Any]]:
    """Records clearing rejected, each with where it came from and clearing's reason."""
    sql = _REJECTED.format(
        txn_day=f"AND {_SENT['purchase'][1]}" if day else "",
        load_day=f"AND {_SENT['load'][1]}" if day else "",
        ec_day=f"AND {_SENT['ec_purchase'][1]}" if day else "",
        qr_day=f"AND {_SENT['qr_ride'][1]}" if day else "",
    )
    with db.tx() as cur:
        cur.execute(sql, (day,) * len(_SENT) if day else ())
        rows = cur.fetchall()
    out = []
    for kind, terminal_id, seq, reference, amount, reason in rows:
        item: dict[str, Any] = {"kind": kind, "terminal_id": terminal_id}
        if kind == "purchase":
            item["terminal_seq"] = int(seq)
        elif kind == "ec_purchase":
            item["ec_seq"] = int(seq)
        elif kind == "qr_ride":
            item["qr_seq"] = int(seq)
        else:
            item["reference"] = reference
        item.update(amount=int(amount), reason=reason or "")
        out.append(item)
    return out


def sent(db: Database, day: str | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """(terminal, kind) -> (count, amount) of records clearing accepted from this gateway."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    with db.tx() as cur:
        for kind, (sql, day_filter) in _SENT.items():
            cur.execute(sql.format(day=f"AND {day_filter}" if day else ""), (day,) if day else ())
            for terminal_id, count, amount in cur.fetchall():
                out[(terminal_id, kind)] = (int(count), int(amount))
    return out


def quarantined_rides(db: Database) -> list[dict[str, Any]]:
    """Rides migration 13 took out of qr_txn because an earlier ride held their code: each
    with the ride kept, what clearing had answered (None: never sent) and why."""
    with db.read() as cur:
        cur.execute(
            "SELECT ride_id, kept_id, terminal_id, qr_seq, code_hash, amount, txn_time,"
            " clearing, clearing_reason, reason, quarantined_at, record"
            " FROM qr_txn_quarantine ORDER BY ride_id"
        )
        rows = cur.fetchall()
    names = (
        "ride_id", "kept_id", "terminal_id", "qr_seq", "code_hash", "amount", "txn_time",
        "clearing", "clearing_reason", "reason", "quarantined_at",
    )  # fmt: skip
    return [
        {**dict(zip(names, row[:-1], strict=True)), "record": json.loads(row[-1])} for row in rows
    ]


def _count(value: Any) -> int | None:
    """A count or an amount from clearing's report: a whole number of at least 0 (never a
    fraction cut short, nor true/false), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _their_rows(
    listed: list[Any],
) -> tuple[dict[tuple[str, str], tuple[int, int]], list[dict[str, Any]]]:
    """Clearing's (terminal, kind) -> (count, amount), and every row of its report that
    cannot be taken as it stands - not numbers, or a terminal and kind listed twice - as a
    mismatch row saying what is wrong with it (a repeated row is never just overwritten)."""
    theirs: dict[tuple[str, str], tuple[int, int]] = {}
    bad: list[dict[str, Any]] = []
    for t in listed:
        t = t if isinstance(t, dict) else {}
        key = (str(t.get("terminal_id")), str(t.get("kind")))
        count, amount = _count(t.get("count")), _count(t.get("amount"))
        problem = None
        if count is None or amount is None:
            problem = f"clearing's row has count {t.get('count')!r}, amount {t.get('amount')!r}"
        elif key in theirs:
            problem = "clearing lists this terminal and kind twice"
        if problem is None and count is not None and amount is not None:
            theirs[key] = (count, amount)
            continue
        bad.append(
            {"terminal_id": key[0], "kind": key[1], "cleared_count": t.get("count"),
             "cleared_amount": t.get("amount"), "match": False, "problem": problem}
        )  # fmt: skip
    return theirs, bad


def reconcile(
    db: Database, clearing_url: str, gateway_id: str, day: str | None = None
) -> dict[str, Any]:
    params = {"gateway_id": gateway_id}
    if day:
        params["day"] = day
    resp = httpx.get(clearing_url.rstrip("/") + "/v1/reconciliation", params=params, timeout=30)
    resp.raise_for_status()
    try:
        listed = resp.json().get("terminals")
    except (ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        raise Unavailable("bad_clearing_report", "clearing's report lists no terminals")
    theirs, unreadable = _their_rows(listed)
    ours = sent(db, day)
    rows, mismatches = [], []
    for key in sorted(set(ours) | set(theirs)):
        mine, cleared = ours.get(key, (0, 0)), theirs.get(key, (0, 0))
        row = {
            "terminal_id": key[0],
            "kind": key[1],
            "sent_count": mine[0],
            "sent_amount": mine[1],
            "cleared_count": cleared[0],
            "cleared_amount": cleared[1],
            "match": mine == cleared,
        }
        rows.append(row)
        if mine != cleared:
            mismatches.append(row)
    for row in unreadable:
        rows.append(row)
        mismatches.append(row)
    refused = rejected(db, day)
    return {
        "gateway_id": gateway_id,
        "day": day,
        "matched": not mismatches and not refused,
        "rows": rows,
        "mismatches": mismatches,
        "rejected": refused,
        # subsidy money by item, period and channel, apart from the e-purse top-ups
        "funds": funds(db),
    }
