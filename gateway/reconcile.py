"""Reconciliation: what this gateway had accepted by clearing, against clearing's own books.

Per terminal and kind (purchase, EC sale, load, QR ride) the counts, the amounts and a digest
of exactly which records clearing holds with which content must match (``records_digest`` in
terminal/record.py: of each record, in key order, its key, the columns clearing settles it
on - amount, operator, issuer, card, business day - and its body hash), so two records
changed so their sum still agrees, one record swapped for another, or one settled to another
operator, issuer, card or day than its body says, is a mismatch. The gateway derives those
columns from what it posted as clearing does when it books (``settled_line``). Clearing
sends only the digests; for a row that differs the gateway pages through that row's records
at clearing and names each that differs: missing, extra, or changed (which fields, which
settled columns). A report for another gateway or day, or whose digests do not cover the
settled columns, is refused (``bad_clearing_report``). A record clearing
rejected (a forged TAC, say) is a mismatch too, listed with its terminal, sequence (or load
reference) and clearing's reason: the books agreeing on what was accepted does not make a
refused record fine. Optionally for one business day (card time for purchases, host time for
loads).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from gateway.errors import Unavailable
from gateway.forwarder import Claimed, clearing_records
from gateway.storage import Database
from gateway.subsidy.bank import funds
from terminal.record import (
    DIGEST_COVERS,
    SETTLED_COLUMNS,
    SettledLine,
    body_hash,
    cleared_body,
    records_digest,
    settled_line,
)

# clearing's kind -> the outbox kind, the gateway's table of it, its business day filter
# (``business_day`` in terminal/record.py, in SQL)
_POSTED = {
    "purchase": ("txn", "txn", "substr(x.txn_time, 1, 10) = ?"),
    "load": ("load", "loads", "substr(x.host_time, 1, 10) = ?"),
    "ec_purchase": ("ec_purchase", "ec_txn", "substr(x.txn_time, 1, 10) = ?"),
    "qr_ride": ("qr_ride", "qr_txn", "substr(x.txn_time, 1, 10) = ?"),
}
_CHUNK = 500
MAX_NAMED = 100  # records named per mismatched row; ``differences_total`` counts them all
PAGE = 500


_REJECTED = (
    "SELECT 'purchase', x.terminal_id, x.terminal_seq, NULL, x.amount, o.reason FROM outbox o"
    " JOIN txn x ON o.kind = 'txn' AND o.ref_id = x.id"
    " WHERE o.outcome = 'rejected' {purchase}"
    " UNION ALL"
    " SELECT 'load', x.terminal_id, NULL, x.reference, x.amount, o.reason FROM outbox o"
    " JOIN loads x ON o.kind = 'load' AND o.ref_id = x.id"
    " WHERE o.outcome = 'rejected' {load}"
    " UNION ALL"
    " SELECT 'ec_purchase', x.terminal_id, x.ec_seq, NULL, x.amount, o.reason FROM outbox o"
    " JOIN ec_txn x ON o.kind = 'ec_purchase' AND o.ref_id = x.id"
    " WHERE o.outcome = 'rejected' {ec_purchase}"
    " UNION ALL"
    " SELECT 'qr_ride', x.terminal_id, x.qr_seq, NULL, x.amount, o.reason FROM outbox o"
    " JOIN qr_txn x ON o.kind = 'qr_ride' AND o.ref_id = x.id"
    " WHERE o.outcome = 'rejected' {qr_ride}"
    " ORDER BY 1, 2, 3, 4"
)


def rejected(db: Database, day: str | None = None) -> list[dict[str, Any]]:
    """Records clearing rejected, each with where it came from and clearing's reason."""
    sql = _REJECTED.format(**{k: f"AND {f}" if day else "" for k, (_, _, f) in _POSTED.items()})
    with db.tx() as cur:
        cur.execute(sql, (day,) * len(_POSTED) if day else ())
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


def posted(
    db: Database, day: str | None = None, only: tuple[str, str] | None = None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(terminal, kind, clearing record) of each record clearing accepted from this gateway,
    rebuilt as the forwarder posted it (``only``: one terminal and kind)."""
    for kind, (outbox_kind, table, day_filter) in _POSTED.items():
        if only is not None and only[1] != kind:
            continue
        sql = (
            f"SELECT o.id, o.kind, o.ref_id, o.payload, x.terminal_id FROM outbox o"
            f" JOIN {table} x ON o.kind = ? AND o.ref_id = x.id"
            " WHERE o.outcome IN ('accepted', 'duplicate')"
        )
        params: list[Any] = [outbox_kind]
        if day:
            sql, params = f"{sql} AND {day_filter}", [*params, day]
        if only is not None:
            sql, params = f"{sql} AND x.terminal_id = ?", [*params, only[0]]
        with db.read() as cur:
            cur.execute(sql + " ORDER BY o.id", params)
            rows = cur.fetchall()
            for i in range(0, len(rows), _CHUNK):
                chunk = rows[i : i + _CHUNK]
                built = clearing_records(cur, [Claimed(*r[:4]) for r in chunk])
                for r in chunk:
                    if r[0] in built:
                        yield r[4], kind, built[r[0]]


def sent(db: Database, day: str | None = None) -> dict[tuple[str, str], dict[str, SettledLine]]:
    """(terminal, kind) -> {key: settled line} of the records clearing accepted."""
    out: dict[tuple[str, str], dict[str, SettledLine]] = {}
    for terminal_id, kind, rec in posted(db, day):
        out.setdefault((terminal_id, kind), {})[rec["key"]] = settled_line(_travelled(rec))
    return out


def _travelled(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as it travelled: JSON values only, as clearing parsed it."""
    return json.loads(json.dumps(rec))


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


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _their_rows(
    listed: list[Any],
) -> tuple[dict[tuple[str, str], tuple[int, int, str]], list[dict[str, Any]]]:
    """Clearing's (terminal, kind) -> (count, amount, digest), and every row of its report
    that cannot be taken as it stands - not numbers, no digest, or a terminal and kind listed
    twice (each of its rows: none is taken over another) - as a mismatch row saying what is
    wrong with it."""
    theirs: dict[tuple[str, str], tuple[int, int, str]] = {}
    bad: list[dict[str, Any]] = []
    rows = [t if isinstance(t, dict) else {} for t in listed]
    keys = [(str(t.get("terminal_id")), str(t.get("kind"))) for t in rows]
    listed_twice = {k for k, n in Counter(keys).items() if n > 1}
    for t, key in zip(rows, keys, strict=True):
        count, amount, digest = _count(t.get("count")), _count(t.get("amount")), t.get("digest")
        problem = None
        if count is None or amount is None:
            problem = f"clearing's row has count {t.get('count')!r}, amount {t.get('amount')!r}"
        elif not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            problem = f"clearing's row has digest {digest!r}, not a SHA-256 in hex"
        elif key in listed_twice:
            problem = "clearing lists this terminal and kind twice"
        if problem is None and count is not None and amount is not None:
            theirs[key] = (count, amount, str(digest))
            continue
        bad.append(
            {"terminal_id": key[0], "kind": key[1], "cleared_count": t.get("count"),
             "cleared_amount": t.get("amount"), "match": False, "problem": problem}
        )  # fmt: skip
    return theirs, bad


def _get(url: str, params: dict[str, Any]) -> Any:
    """A report (or a page of one) from clearing; Unavailable when clearing does not answer
    one."""
    try:
        resp = httpx.get(url, params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable("clearing_unavailable", f"clearing gave no report: {exc}") from None


def _settled_as(item: dict[str, Any], rec: dict[str, Any]) -> SettledLine | None:
    """The line clearing settles a listed record on: its amount and settled columns as
    listed, the hash of the record as listed; None when the entry lacks one of them."""
    amount, columns = _count(item.get("amount")), [item.get(c) for c in SETTLED_COLUMNS[1:]]
    if amount is None or not all(isinstance(c, str) for c in columns):
        return None
    return SettledLine(item["key"], amount, *columns, body_hash(cleared_body(rec)))


def _cleared_list(
    clearing_url: str, gateway_id: str, day: str | None, row: tuple[str, str], most: int
) -> dict[str, tuple[SettledLine, dict[str, Any]]]:
    """Clearing's records behind one report row, page by page: key -> (the line it is
    settled on, record). At most ``most`` (the row's count): a list longer than its row, a
    page for another row, keys not in order, or an entry without its settled columns are
    ``bad_clearing_report``."""
    terminal_id, kind = row
    params: dict[str, Any] = {"gateway_id": gateway_id, "terminal_id": terminal_id, "kind": kind}
    if day:
        params["day"] = day
    out: dict[str, tuple[SettledLine, dict[str, Any]]] = {}
    after = ""
    while True:
        page = _get(
            clearing_url.rstrip("/") + "/v1/reconciliation/records",
            {**params, "after": after, "limit": PAGE},
        )
        if not isinstance(page, dict) or any(page.get(k) != params.get(k) for k in (
            "gateway_id", "terminal_id", "kind", "day"
        )):  # fmt: skip
            raise Unavailable(
                "bad_clearing_report",
                f"clearing's record list is not terminal {terminal_id}'s {kind} records for"
                f" gateway {gateway_id}, {day or 'all days'}",
            )
        records, more = page.get("records"), page.get("next")
        if not isinstance(records, list) or not (more is None or isinstance(more, str)):
            raise Unavailable("bad_clearing_report", "clearing's record list is not a page")
        for item in records:
            item = item if isinstance(item, dict) else {}
            key, rec = item.get("key"), item.get("record")
            line = (
                _settled_as(item, rec)
                if isinstance(key, str) and key > after and isinstance(rec, dict)
                else None
            )
            if line is None:
                raise Unavailable(
                    "bad_clearing_report",
                    f"clearing's record list for terminal {terminal_id} has an entry that is"
                    f" not a record after {after!r} with the settled columns"
                    f" ({', '.join(SETTLED_COLUMNS)}): {str(item)[:200]}",
                )
            out[line.key], after = (line, rec), line.key
            if len(out) > most:
                raise Unavailable(
                    "bad_clearing_report",
                    f"clearing lists more {kind} records of terminal {terminal_id} than the"
                    f" {most} its report counts",
                )
        if more is None:
            return out
        if more != after:
            raise Unavailable("bad_clearing_report", "clearing's record list skips records")


# a settled column -> how a differing one reads: what clearing settled, what the record says
_SETTLED_AS = {
    "amount": "settled {} fen, the record says {}",
    "operator_id": "settled to operator {}, the record says {}",
    "issuer_id": "charged to issuer {}, the record says {}",
    "card_serial": "settled against card {}, the record says {}",
    "business_day": "settled on business day {}, the record says {}",
}
_SHOWN = 64  # characters of a value clearing sent shown in a difference


def _says(rec: dict[str, Any], posted_as: SettledLine) -> SettledLine:
    """The line a record says it is settled on (clearing's own record, when the columns
    derive from it; else, a record altered past deriving, what the gateway posted)."""
    try:
        return settled_line(rec)
    except (KeyError, TypeError, ValueError, AttributeError):
        return posted_as


def _changed(ours: dict[str, Any], line: SettledLine, theirs: dict[str, Any]) -> dict[str, Any]:
    """What differs in one record clearing holds: the record's fields that are not as posted,
    and each column clearing settles on that is not what its own record says (``<column>
    settled``, with a sentence naming both)."""
    fields = sorted(f for f in set(ours) | set(theirs) if ours.get(f) != theirs.get(f))
    said = _says(theirs, settled_line(ours))
    settled = []
    for column in SETTLED_COLUMNS:
        held, says = getattr(line, column), getattr(said, column)
        if held != says:
            fields.append(f"{column} settled")
            settled.append(_SETTLED_AS[column].format(str(held)[:_SHOWN], str(says)[:_SHOWN]))
    out: dict[str, Any] = {"what": "changed", "fields": fields}
    return {**out, "settled": settled} if settled else out


def _differences(
    db: Database,
    day: str | None,
    row: tuple[str, str],
    cleared: dict[str, tuple[SettledLine, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Each record that differs between what the gateway posted and clearing holds: missing
    at clearing, extra there, or changed (see ``_changed``)."""
    mine = {rec["key"]: _travelled(rec) for _, _, rec in posted(db, day, row)}
    out: list[dict[str, Any]] = []
    for key in sorted(set(mine) | set(cleared)):
        if key not in cleared:
            out.append({"key": key, "what": "missing", "amount": int(mine[key]["amount"])})
        elif key not in mine:
            out.append({"key": key, "what": "extra", "amount": cleared[key][0].amount})
        else:
            changed = _changed(mine[key], *cleared[key])
            if changed["fields"]:
                out.append({"key": key, **changed})
    return out


def _explain(
    db: Database,
    clearing_url: str,
    gateway_id: str,
    day: str | None,
    row: dict[str, Any],
    theirs: tuple[int, int, str] | None,
) -> None:
    """Name the records behind a mismatched row; a list that does not add up to clearing's
    own row (it says one thing in the report, another in the list) is the row's problem."""
    key = (row["terminal_id"], row["kind"])
    cleared = _cleared_list(clearing_url, gateway_id, day, key, theirs[0]) if theirs else {}
    if theirs is not None:
        listed = (
            len(cleared),
            sum(line.amount for line, _ in cleared.values()),
            records_digest(line for line, _ in cleared.values()),
        )
        if listed != theirs:
            row["problem"] = "clearing's record list does not add up to its report row"
    found = _differences(db, day, key, cleared)
    row.update(differences=found[:MAX_NAMED], differences_total=len(found))


def reconcile(
    db: Database, clearing_url: str, gateway_id: str, day: str | None = None
) -> dict[str, Any]:
    """This gateway's accepted records against clearing's report of them (``day``: one
    business day); ``matched`` only when every row's count, amount and digest (of the
    records and the columns they are settled on) agree and clearing rejected nothing."""
    params = {"gateway_id": gateway_id}
    if day:
        params["day"] = day
    doc = _get(clearing_url.rstrip("/") + "/v1/reconciliation", params)
    listed = doc.get("terminals") if isinstance(doc, dict) else None
    if not isinstance(listed, list):
        raise Unavailable("bad_clearing_report", "clearing's report lists no terminals")
    if (doc.get("gateway_id"), doc.get("day")) != (gateway_id, day):
        raise Unavailable(
            "bad_clearing_report",
            f"clearing's report is for gateway {doc.get('gateway_id')} and day"
            f" {doc.get('day') or 'all days'}, not for gateway {gateway_id} and day"
            f" {day or 'all days'}",
        )
    covers = doc.get("digest_covers")
    if covers != list(DIGEST_COVERS):
        raise Unavailable(
            "bad_clearing_report",
            f"clearing's digests cover {str(covers)[:200]}, not {', '.join(DIGEST_COVERS)}:"
            " records it settled on other columns than their bodies say would go unseen",
        )
    theirs, unreadable = _their_rows(listed)
    ours = {
        k: (len(held), sum(line.amount for line in held.values()), records_digest(held.values()))
        for k, held in sent(db, day).items()
    }
    rows, mismatches = [], []
    for key in sorted(set(ours) | set(theirs)):
        mine, cleared = ours.get(key), theirs.get(key)
        row: dict[str, Any] = {
            "terminal_id": key[0],
            "kind": key[1],
            "sent_count": mine[0] if mine else 0,
            "sent_amount": mine[1] if mine else 0,
            "cleared_count": cleared[0] if cleared else 0,
            "cleared_amount": cleared[1] if cleared else 0,
            "match": mine == cleared,
        }
        rows.append(row)
        if mine != cleared:
            _explain(db, clearing_url, gateway_id, day, row, cleared)
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
