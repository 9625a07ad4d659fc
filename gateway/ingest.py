"""Batch ingest: validate every record, store the batch atomically, acknowledge per transaction.

A transaction's identity is (PSAM terminal id, terminal sequence number). Storing is
idempotent: a record already held with the same content is acknowledged ``duplicate``;
one held with different content is ``conflict`` (kept aside in ``txn_conflicts`` for an
operator, never overwriting the first). Any bad record refuses the whole batch with a
reason, and nothing is written. Stored transactions enter the clearing outbox in the same
database transaction.

Only debiting terminals (``pos``, ``validator``) upload purchases, and a record must be one
the card could have made: 0 <= balance before <= the purse ceiling, amount <= balance
before (the purse does not overdraw), amount within the per-transaction maximum.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.auth import PURCHASE, Terminal, require_upload
from gateway.edges import storable_text
from gateway.errors import Conflict, Forbidden, Invalid, Malformed, TooLarge
from gateway.loads import LoadLimits
from gateway.storage import POSTGRES, Cursor, Database, now_ms

MAX_BATCH_RECORDS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_AMOUNT = 1_000_000  # 10,000 yuan: far above any purse ceiling, far below overflow
MAX_BALANCE = LoadLimits().max_balance  # the gateway passes its own settings' ceiling
MAX_CONTEXT_BYTES = 2048
DEBIT_TYPES = frozenset({0x05, 0x06, 0x09})  # ED purchase, EP purchase, CAPP purchase
STATES = frozenset({"settled", "suspect"})

STORED = "stored"
DUPLICATE = "duplicate"
CONFLICT = "conflict"

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_BATCH_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,64}\Z")
BATCH_KEYS = frozenset({"batch_id", "terminal_id", "records"})
RECORD_KEYS = (
    "terminal_id",
    "terminal_seq",
    "issuer_id",
    "card_serial",
    "txn_type",
    "amount",
    "balance_before",
    "card_atc",
    "key_version",
    "algorithm",
    "txn_time",
    "state",
    "tac",
    "mac2",
    "mac2_verified",
    "resolution",
    "context",
)
_RECORD_KEYSET = frozenset(RECORD_KEYS)

# the columns a stored row carries after terminal_id, in this order
ROW_COLUMNS = (*RECORD_KEYS[1:], "content_hash")


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    terminal_id: str
    rows: list[tuple[Any, ...]]  # ROW_COLUMNS, validated and normalised


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    terminal_id: str
    replay: bool
    acks: list[tuple[int, str]]  # (terminal_seq, STORED | DUPLICATE | CONFLICT) in batch order

    def counts(self) -> dict[str, int]:
        out = {STORED: 0, DUPLICATE: 0, CONFLICT: 0}
        for _, status in self.acks:
            out[status] += 1
        return out


class _Bad(Exception):
    """One field of one record is wrong (turned into ``Invalid`` naming the record)."""


def _int(rec: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = rec.get(key)
    if type(v) is not int:
        raise _Bad(f"{key} must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _Bad(f"{key} {v} out of range {lo}..{hi}")
    return v


def _hex(rec: dict[str, Any], key: str, length: int, *, optional: bool = False) -> str | None:
    v = rec.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or len(v) != length or not _HEX_DIGITS.issuperset(v):
        raise _Bad(f"{key} must be {length} hex digits")
    return v.upper()


def _storable(text: str, key: str) -> None:
    """Text every store can hold (no NUL, no lone surrogate), else the record is refused."""
    try:
        storable_text(text)
    except ValueError as exc:
        raise _Bad(f"{key}: {exc}") from None


def _ok_int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _ok_hex(v: Any, length: int) -> bool:
    return type(v) is str and len(v) == length and _HEX_DIGITS.issuperset(v)


def _record(rec: Any, terminal_id: str, max_balance: int = MAX_BALANCE) -> tuple[Any, ...]:
    """One record, validated and normalised to ROW_COLUMNS plus its content hash.

    Each check takes a fast path for good values and asks the slow helper only to word
    the refusal, because a busy gateway validates tens of thousands of records a second.
    """
    if type(rec) is not dict:
        raise _Bad("a record must be a JSON object")
    if rec.keys() != _RECORD_KEYSET:
        extra = sorted(set(rec) - _RECORD_KEYSET)
        missing = sorted(_RECORD_KEYSET - set(rec))
        parts = [
            f"unknown field(s) {', '.join(extra)}" if extra else "",
            f"missing field(s) {', '.join(missing)}" if missing else "",
        ]
        raise _Bad("; ".join(p for p in parts if p))
    tid = rec["terminal_id"]
    if tid != terminal_id:
        tid = _hex(rec, "terminal_id", 12)
        if tid != terminal_id:
            raise Forbidden(
                "wrong_terminal", f"record claims terminal {tid}, batch is from {terminal_id}"
            )
    seq, txn_type, amount = rec["terminal_seq"], rec["txn_type"], rec["amount"]
    balance, atc = rec["balance_before"], rec["card_atc"]
    key_version, algorithm = rec["key_version"], rec["algorithm"]
    if not _ok_int(seq, 0, 0xFFFFFFFF):
        _int(rec, "terminal_seq", 0, 0xFFFFFFFF)
    if txn_type not in DEBIT_TYPES or type(txn_type) is not int:
        _int(rec, "txn_type", 0, 0xFF)
        raise _Bad(f"txn_type {txn_type:#04x} is not a known purchase type (05, 06, 09)")
    if not _ok_int(amount, 0, MAX_AMOUNT):
        _int(rec, "amount", 0, MAX_AMOUNT)
    if not _ok_int(balance, 0, max_balance):
        _int(rec, "balance_before", 0, max_balance)
    if amount > balance:
        raise _Bad(
            f"amount {amount} is more than the balance before {balance}: a purse never overdraws"
        )
    if not _ok_int(atc, 0, 0xFFFF):
        _int(rec, "card_atc", 0, 0xFFFF)
    if not _ok_int(key_version, 0, 0xFF):
        _int(rec, "key_version", 0, 0xFF)
    if not _ok_int(algorithm, 0, 0xFF):
        _int(rec, "algorithm", 0, 0xFF)
    issuer, serial = rec["issuer_id"], rec["card_serial"]
    issuer = issuer.upper() if _ok_hex(issuer, 16) else _hex(rec, "issuer_id", 16)
    serial = serial.upper() if _ok_hex(serial, 16) else _hex(rec, "card_serial", 16)
    when_text = rec["txn_time"]
    if type(when_text) is not str or len(when_text) > 32:
        raise _Bad("txn_time must be an ISO date-time string")
    try:
        when = datetime.fromisoformat(when_text)
    except ValueError:
        raise _Bad(f"txn_time {when_text!r} is not an ISO date-time") from None
    if when.tzinfo is not None or not 2000 <= when.year <= 2099:
        raise _Bad("txn_time must be a local card time (no zone) between 2000 and 2099")
    state = rec["state"]
    if state not in STATES:
        raise _Bad("state must be 'settled' or 'suspect'")
    tac, mac2 = rec["tac"], rec["mac2"]
    if tac is not None:
        tac = tac.upper() if _ok_hex(tac, 8) else _hex(rec, "tac", 8)
    elif state == "settled":
        raise _Bad("a settled record must carry the card's TAC")
    if mac2 is not None:
        mac2 = mac2.upper() if _ok_hex(mac2, 8) else _hex(rec, "mac2", 8)
    verified = rec["mac2_verified"]
    if verified is not None and type(verified) is not bool:
        raise _Bad("mac2_verified must be true, false or null")
    resolution = rec["resolution"]
    if resolution is not None:
        if type(resolution) is not str or len(resolution) > 200:
            raise _Bad("resolution must be a string of at most 200 characters, or null")
        if not resolution.isascii() or "\x00" in resolution:
            _storable(resolution, "resolution")
    context = rec["context"]
    if type(context) is not dict:
        raise _Bad("context must be a JSON object")
    context_json = (
        json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if context
        else "{}"
    )
    if not context_json.isascii():
        _storable(context_json, "context")
    if len(context_json) > MAX_CONTEXT_BYTES // 4 and (
        len(context_json.encode("utf-8")) > MAX_CONTEXT_BYTES
    ):
        raise _Bad(f"context larger than {MAX_CONTEXT_BYTES} bytes")
    row = [
        seq,
        issuer,
        serial,
        txn_type,
        amount,
        balance,
        atc,
        key_version,
        algorithm,
        when.isoformat(timespec="seconds"),
        state,
        tac,
        mac2,
        None if verified is None else int(verified),
        resolution,
        context_json,
    ]
    digest = hashlib.sha256("|".join(map(str, row)).encode("utf-8")).hexdigest()
    row.append(digest)
    return tuple(row)


def parse_batch(
    body: bytes,
    terminal: Terminal,
    *,
    max_records: int = MAX_BATCH_RECORDS,
    max_balance: int = MAX_BALANCE,
) -> Batch:
    """Validate a whole upload body; a refusal (``Malformed``, ``Invalid`` …) names the first
    bad record.

    ``max_balance`` is the purse ceiling (the gateway's ``LoadLimits.max_balance``)."""
    require_upload(terminal, PURCHASE)
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge("too_large", f"batch body over {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.keys() != BATCH_KEYS:
        raise Malformed(
            "bad_layout", "body must be an object with exactly batch_id, terminal_id, records"
        )
    batch_id, terminal_id, records = doc["batch_id"], doc["terminal_id"], doc["records"]
    if not isinstance(batch_id, str) or not _BATCH_ID.match(batch_id):
        raise Malformed("bad_layout", "batch_id must be 1-64 characters of [0-9A-Za-z_.:-]")
    if not isinstance(terminal_id, str) or terminal_id.upper() != terminal.terminal_id:
        raise Forbidden(
            "wrong_terminal",
            f"batch claims terminal {terminal_id!r} but the credentials are for "
            f"{terminal.terminal_id}",
        )
    if not isinstance(records, list) or not records:
        raise Malformed("bad_layout", "records must be a non-empty list")
    if len(records) > max_records:
        raise TooLarge(
            "too_many_records", f"{len(records)} records; a batch holds at most {max_records}"
        )
    rows = []
    seen: set[int] = set()
    for i, rec in enumerate(records):
        try:
            row = _record(rec, terminal.terminal_id, max_balance)
        except _Bad as exc:
            seq = rec.get("terminal_seq") if isinstance(rec, dict) else None
            raise Invalid("invalid_record", f"record {i} (terminal_seq {seq}): {exc}") from None
        if row[0] in seen:
            raise Invalid(
                "invalid_record", f"record {i}: terminal_seq {row[0]} appears twice in the batch"
            )
        seen.add(row[0])
        rows.append(row)
    return Batch(batch_id, terminal.terminal_id, rows)


def batch_digest(batch: Batch) -> str:
    """What a batch id is bound to: its records' content, whatever the JSON spacing."""
    h = hashlib.sha256(batch.terminal_id.encode())
    for row in batch.rows:
        h.update(row[-1].encode())
    return h.hexdigest()


_INSERT_COLUMNS = "terminal_id, operator_id, batch_id, received_at, " + ", ".join(ROW_COLUMNS)
_PG_TYPES = (
    "bigint",
    "text",
    "text",
    "int",
    "bigint",
    "bigint",
    "int",
    "int",
    "int",
    "text",
    "text",
    "text",
    "text",
    "int",
    "text",
    "text",
    "text",
)
# The rows travel as one JSON array of arrays: PostgreSQL unpacks it in C, which is many
# times faster than adapting 17 Python lists to SQL arrays parameter by parameter.
_PG_INSERT = (
    "WITH r AS (SELECT "
    + ", ".join(
        f"(e->>{i})::{t} AS {c}"
        for i, (c, t) in enumerate(zip(ROW_COLUMNS, _PG_TYPES, strict=True))
    )
    + " FROM jsonb_array_elements(?::jsonb) AS e), ins AS (INSERT INTO txn ("
    + _INSERT_COLUMNS
    + ") SELECT ?, ?, ?, ?, "
    + ", ".join(f"r.{c}" for c in ROW_COLUMNS)
    + " FROM r ON CONFLICT (terminal_id, terminal_seq) DO NOTHING RETURNING id, terminal_seq),"
    " ob AS (INSERT INTO outbox (kind, ref_id, created_at, available_at)"
    " SELECT 'txn', id, ?, ? FROM ins) SELECT terminal_seq FROM ins"
)
_SQLITE_INSERT = (
    "INSERT INTO txn ("
    + _INSERT_COLUMNS
    + ") VALUES ("
    + ", ".join("?" * (4 + len(ROW_COLUMNS)))
    + ") ON CONFLICT (terminal_id, terminal_seq) DO NOTHING"
)


def _insert_new(cur: Cursor, dialect: str, batch: Batch, operator_id: str, now: int) -> set[int]:
    """Insert the rows not yet held, with their outbox entries; returns their sequence numbers."""
    head = (batch.terminal_id, operator_id, batch.batch_id, now)
    if dialect == POSTGRES:
        cur.execute(_PG_INSERT, (json.dumps(batch.rows), *head, now, now))
        return {r[0] for r in cur.fetchall()}
    cur.execute("SELECT COALESCE(MAX(id), 0) FROM txn")
    before = cur.fetchone()[0]
    cur.executemany(_SQLITE_INSERT, [head + row for row in batch.rows])
    cur.execute(
        "INSERT INTO outbox (kind, ref_id, created_at, available_at)"
        " SELECT 'txn', id, ?, ? FROM txn WHERE id > ?",
        (now, now, before),
    )
    cur.execute("SELECT terminal_seq FROM txn WHERE id > ?", (before,))
    return {r[0] for r in cur.fetchall()}


def _held_hashes(cur: Cursor, dialect: str, terminal_id: str, seqs: list[int]) -> dict[int, str]:
    if dialect == POSTGRES:
        cur.execute(
            "SELECT terminal_seq, content_hash FROM txn"
            " WHERE terminal_id = ? AND terminal_seq = ANY(?::bigint[])",
            (terminal_id, seqs),
        )
        return dict(cur.fetchall())
    out: dict[int, str] = {}
    for i in range(0, len(seqs), 500):
        chunk = seqs[i : i + 500]
        cur.execute(
            "SELECT terminal_seq, content_hash FROM txn WHERE terminal_id = ?"
            f" AND terminal_seq IN ({','.join('?' * len(chunk))})",
            (terminal_id, *chunk),
        )
        out.update(dict(cur.fetchall()))
    return out


def store_batch(db: Database, terminal: Terminal, batch: Batch) -> BatchResult:
    """Store a validated batch in one transaction and say what happened to each record."""
    now = now_ms()
    body_hash = batch_digest(batch)
    with db.tx() as cur:
        cur.execute(
            "SELECT body_hash FROM batches WHERE terminal_id = ? AND batch_id = ?",
            (batch.terminal_id, batch.batch_id),
        )
        held = cur.fetchone()
        if held is not None and held[0] != body_hash:
            raise Conflict(
                "batch_replayed",
                f"batch {batch.batch_id} was already received with different content; "
                "a batch id is used for one body only",
            )
        new = _insert_new(cur, db.dialect, batch, terminal.operator_id, now)
        acks: list[tuple[int, str]] = []
        dups = [row[0] for row in batch.rows if row[0] not in new]
        hashes = _held_hashes(cur, db.dialect, batch.terminal_id, dups) if dups else {}
        conflicts = []
        for row in batch.rows:
            seq = row[0]
            if seq in new:
                acks.append((seq, STORED))
            elif hashes.get(seq) == row[-1]:
                acks.append((seq, DUPLICATE))
            else:
                acks.append((seq, CONFLICT))
                conflicts.append(row)
        for row in conflicts:
            record = dict(zip(ROW_COLUMNS, row, strict=True))
            cur.execute(
                "INSERT INTO txn_conflicts (terminal_id, terminal_seq, content_hash, record,"
                " batch_id, received_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (terminal_id, terminal_seq, content_hash) DO NOTHING",
                (
                    batch.terminal_id,
                    row[0],
                    row[-1],
                    json.dumps(record, sort_keys=True),
                    batch.batch_id,
                    now,
                ),
            )
        if held is None:
            cur.execute(
                "INSERT INTO batches (terminal_id, batch_id, body_hash, records, stored,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (terminal_id, batch_id) DO NOTHING",
                (batch.terminal_id, batch.batch_id, body_hash, len(batch.rows), len(new), now),
            )
    return BatchResult(batch.batch_id, batch.terminal_id, held is not None, acks)
