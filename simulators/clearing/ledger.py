"""The clearing ledger: accepted records keyed by idempotency key, rejections, settlement.

SQLite (WAL, synchronous FULL) so the service keeps its books across restarts. A key is
accepted once; posting it again is a ``duplicate`` (counted in ``deliveries``, settled
once). Settlement groups accepted records by business day, issuer and operator.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from simulators.clearing.verify import LOAD, QR_RIDE, Rejected, TacVerifier
from terminal.record import (
    DIGEST_COVERS,
    SETTLED_COLUMNS,
    RecordError,
    SettledLine,
    body_hash,
    business_day,
    cleared_body,
    records_digest,
    settled_against,
)
from terminal.record import EC_PURCHASE as EC_RECORD
from terminal.record import PURCHASE as PURCHASE_RECORD
from terminal.record import QR_RIDE as QR_RECORD
from terminal.sqlite import connect, transaction

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cleared (
    key          TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    gateway_id   TEXT NOT NULL,
    terminal_id  TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    issuer_id    TEXT NOT NULL,
    card_serial  TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    business_day TEXT NOT NULL,
    body         TEXT NOT NULL,
    deliveries   INTEGER NOT NULL DEFAULT 1,
    received_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cleared_day ON cleared (business_day);
CREATE TABLE IF NOT EXISTS rejections (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL,
    gateway_id   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  REAL NOT NULL
);
"""

_LOAD_FIELDS = (
    "terminal_id",
    "operator_id",
    "issuer_id",
    "card_serial",
    "amount",
    "balance_before",
    "online_atc",
    "host_time",
)


# the declared record kinds clearing takes (loads are the gateway's own record)
RECORD_KINDS = {k.name: k for k in (PURCHASE_RECORD, EC_RECORD, QR_RECORD)}


def record_key(rec: Mapping[str, Any]) -> str:
    """The identity clearing de-duplicates on (the gateway sends it; checked here)."""
    if rec["kind"] in RECORD_KINDS:
        return RECORD_KINDS[rec["kind"]].key(rec)
    return f"L:{rec['issuer_id']}:{rec['card_serial']}:{rec['online_atc']}"


class Ledger:
    def __init__(self, path: str, verifier: TacVerifier):
        self.verifier = verifier
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _validate(self, rec: Any) -> dict[str, Any]:
        if not isinstance(rec, dict) or rec.get("kind") not in (*RECORD_KINDS, LOAD):
            raise Rejected(
                f"record must be an object with kind {', '.join(map(repr, RECORD_KINDS))} or 'load'"
            )
        if rec["kind"] in RECORD_KINDS:
            try:
                RECORD_KINDS[rec["kind"]].read_cleared(rec)
            except RecordError as exc:
                raise Rejected(str(exc)) from None
        else:
            missing = [k for k in _LOAD_FIELDS if k not in rec]
            if missing:
                raise Rejected(f"missing field(s) {', '.join(missing)}")
        if type(rec["amount"]) is not int or rec["amount"] < 0:
            raise Rejected("amount must be a non-negative integer number of fen")
        if rec.get("key") != record_key(rec):
            raise Rejected(f"idempotency key must be {record_key(rec)}")
        return rec

    def post(self, gateway_id: str, records: Iterable[Any]) -> list[dict[str, Any]]:
        """Verify and book each record; one result per record, in order."""
        results = []
        now = time.time()
        with self._lock, transaction(self._db):
            for raw in records:
                results.append(self._post_one(gateway_id, raw, now))
        return results

    def _post_one(self, gateway_id: str, raw: Any, now: float) -> dict[str, Any]:
        key = raw.get("key") if isinstance(raw, dict) else None
        try:
            rec = self._validate(raw)
            held = self._db.execute("SELECT body FROM cleared WHERE key = ?", (key,)).fetchone()
            if held is not None:
                if held[0] != cleared_body(rec):
                    raise Rejected(f"{key} was already cleared with different content")
                self._db.execute(
                    "UPDATE cleared SET deliveries = deliveries + 1 WHERE key = ?", (key,)
                )
                return {"key": key, "status": DUPLICATE}
            self.verifier.check(rec)
            if rec["kind"] == QR_RIDE:
                self._first_ride(rec)
        except (Rejected, KeyError, ValueError, TypeError) as exc:
            reason = str(exc) if isinstance(exc, Rejected) else f"malformed record: {exc!r}"
            self._db.execute(
                "INSERT INTO rejections (key, gateway_id, reason, body, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (str(key), gateway_id, reason, json.dumps(raw, sort_keys=True, default=str), now),
            )
            return {"key": key, "status": REJECTED, "reason": reason}
        issuer_id, card = settled_against(rec)  # who is charged, which card or account
        self._db.execute(
            "INSERT INTO cleared (key, kind, gateway_id, terminal_id, operator_id, issuer_id,"
            " card_serial, amount, business_day, body, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                rec["kind"],
                gateway_id,
                rec["terminal_id"],
                rec["operator_id"],
                issuer_id,
                card,
                rec["amount"],
                business_day(rec),
                cleared_body(rec),
                now,
            ),
        )
        return {"key": key, "status": ACCEPTED}

    def _first_ride(self, rec: Mapping[str, Any]) -> None:
        """A code pays one ride: the same code from another validator (offline gates do not
        share their history) is refused."""
        held = self._db.execute(
            "SELECT key FROM cleared WHERE kind = ? AND card_serial = ?"
            " AND json_extract(body, '$.code_hash') = ?",
            (QR_RIDE, rec["user_account"], str(rec["code_hash"]).upper()),
        ).fetchone()
        if held is not None:
            raise Rejected(f"ride code already paid a ride ({held[0]}): a code rides once")

    # -- reports ----------------------------------------------------------------------------
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def settlement(self, day: str | None = None) -> dict[str, Any]:
        """Counts and amounts per issuer, per operator and per issuer x operator."""
        where, params = ("WHERE business_day = ?", (day,)) if day else ("", ())

        def grouped(cols: str) -> list[dict[str, Any]]:
            rows = self._query(
                f"SELECT {cols},"
                " SUM(kind = 'purchase'), COALESCE(SUM(CASE WHEN kind = 'purchase'"
                " THEN amount END), 0), SUM(kind = 'load'),"
                " COALESCE(SUM(CASE WHEN kind = 'load' THEN amount END), 0),"
                " SUM(kind = 'ec_purchase'),"
                " COALESCE(SUM(CASE WHEN kind = 'ec_purchase' THEN amount END), 0),"
                " SUM(kind = 'qr_ride'),"
                " COALESCE(SUM(CASE WHEN kind = 'qr_ride' THEN amount END), 0)"
                f" FROM cleared {where} GROUP BY {cols} ORDER BY {cols}",
                params,
            )
            names = [c.strip() for c in cols.split(",")]
            out = []
            for r in rows:
                item = dict(zip(names, r[: len(names)], strict=True))
                p_n, p_amt, l_n, l_amt, ec_n, ec_amt, qr_n, qr_amt = r[len(names) :]
                item.update(purchases=p_n, purchase_amount=p_amt, loads=l_n, load_amount=l_amt)
                if ec_n:  # EC sales settle with their EMV issuer, apart from the e-purse
                    item.update(ec_sales=ec_n, ec_amount=ec_amt)
                if qr_n:  # QR rides are charged to their issuing platform, apart from cards
                    item.update(qr_rides=qr_n, qr_amount=qr_amt)
                out.append(item)
            return out

        by_issuer = grouped("issuer_id")
        # an issuer owes the operators what its cards spent, and is owed what they loaded
        for item in by_issuer:
            item["issuer_net"] = item["load_amount"] - item["purchase_amount"]
        by_operator = grouped("operator_id")
        for item in by_issuer:
            item["issuer_net"] -= item.get("ec_amount", 0) + item.get("qr_amount", 0)
        for item in by_operator:
            item["operator_net"] = (
                item["purchase_amount"]
                - item["load_amount"]
                + item.get("ec_amount", 0)
                + item.get("qr_amount", 0)
            )
        rejected = self._query("SELECT COUNT(*) FROM rejections")[0][0]
        totals = {
            "purchases": sum(i["purchases"] for i in by_issuer),
            "purchase_amount": sum(i["purchase_amount"] for i in by_issuer),
            "loads": sum(i["loads"] for i in by_issuer),
            "load_amount": sum(i["load_amount"] for i in by_issuer),
        }
        ec_sales = sum(i.get("ec_sales", 0) for i in by_issuer)
        if ec_sales:  # EC sales settle with their EMV issuers, apart from the e-purse
            totals.update(
                ec_sales=ec_sales,
                ec_amount=sum(i["ec_amount"] for i in by_issuer if "ec_amount" in i),
            )
        qr_rides = sum(i.get("qr_rides", 0) for i in by_issuer)
        if qr_rides:  # charged to the issuing platforms, apart from cards
            totals.update(
                qr_rides=qr_rides,
                qr_amount=sum(i["qr_amount"] for i in by_issuer if "qr_amount" in i),
            )
        return {
            "day": day,
            "by_issuer": by_issuer,
            "by_operator": by_operator,
            "by_issuer_operator": grouped("issuer_id, operator_id"),
            "totals": totals,
            "rejections": rejected,
        }

    def _cleared_where(self, gateway_id: str, day: str | None) -> tuple[str, tuple[Any, ...]]:
        if day:
            return " WHERE gateway_id = ? AND business_day = ?", (gateway_id, day)
        return " WHERE gateway_id = ?", (gateway_id,)

    def reconciliation(self, gateway_id: str, day: str | None = None) -> dict[str, Any]:
        """Per terminal and kind: how many records and how much this gateway got accepted,
        and the digest of exactly which records with which content, settled on which of this
        ledger's columns (``records_digest``; ``digest_covers`` names a line's parts)."""
        where, params = self._cleared_where(gateway_id, day)
        rows = self._query(
            f"SELECT terminal_id, kind, deliveries, key, {', '.join(SETTLED_COLUMNS)},"
            " body FROM cleared" + where + " ORDER BY terminal_id, kind, key",
            params,
        )
        groups: dict[tuple[str, str], list[tuple[int, SettledLine]]] = {}
        for terminal_id, kind, deliveries, *columns, body in rows:
            line = SettledLine(*columns, body_hash(body))
            groups.setdefault((terminal_id, kind), []).append((deliveries, line))
        return {
            "gateway_id": gateway_id,
            "day": day,
            "digest_covers": list(DIGEST_COVERS),
            "terminals": [
                {
                    "terminal_id": terminal_id,
                    "kind": kind,
                    "count": len(held),
                    "amount": sum(line.amount for _, line in held),
                    "deliveries": sum(n for n, _ in held),
                    "digest": records_digest(line for _, line in held),
                }
                for (terminal_id, kind), held in groups.items()
            ],
        }

    def cleared_records(
        self,
        gateway_id: str,
        terminal_id: str,
        kind: str,
        day: str | None = None,
        after: str = "",
        limit: int = 500,
    ) -> dict[str, Any]:
        """One page of the records behind a reconciliation row, in key order after ``after``:
        each with its key, the columns it is settled on (amount, operator, issuer, card,
        business day), its body hash and the record itself."""
        where, params = self._cleared_where(gateway_id, day)
        rows = self._query(
            f"SELECT key, {', '.join(SETTLED_COLUMNS)}, body FROM cleared"
            + where
            + " AND terminal_id = ? AND kind = ? AND key > ? ORDER BY key LIMIT ?",
            (*params, terminal_id, kind, after, limit + 1),
        )
        page = rows[:limit]
        return {
            "gateway_id": gateway_id,
            "day": day,
            "terminal_id": terminal_id,
            "kind": kind,
            "records": [
                {
                    **SettledLine(*columns, body_hash(body))._asdict(),
                    "record": json.loads(body),
                }
                for *columns, body in page
            ],
            "next": page[-1][0] if len(rows) > limit else None,
        }

    def rejections(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT key, gateway_id, reason FROM rejections ORDER BY id")
        return [{"key": r[0], "gateway_id": r[1], "reason": r[2]} for r in rows]

    def stats(self) -> dict[str, int]:
        accepted, deliveries = self._query(
            "SELECT COUNT(*), COALESCE(SUM(deliveries), 0) FROM cleared"
        )[0]
        rejected = self._query("SELECT COUNT(*) FROM rejections")[0][0]
        return {"accepted": accepted, "deliveries": deliveries, "rejected": rejected}
