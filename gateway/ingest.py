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
import operator
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn

import msgspec
import orjson

from gateway.auth import PURCHASE, UPLOAD_KINDS, Terminal, require_upload
from gateway.edges import storable_text
from gateway.errors import Conflict, Forbidden, Invalid, Malformed, TooLarge
from gateway.loads import LoadLimits
from gateway.storage import POSTGRES, RACED, Cursor, Database, now_ms, retried
from gateway.storage.schema import KIND_TABLES
from terminal.qr.checks import QrPolicy, check_record
from terminal.qr.code import QrError
from terminal.record import (
    CARD_YEARS,
    EC_PURCHASE,
    QR_RIDE,
    Field,
    RecordError,
    RecordKind,
    json_column,
)
from terminal.record import PURCHASE as RECORD

MAX_BATCH_RECORDS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_AMOUNT = RECORD["amount"].hi
MAX_BALANCE = LoadLimits().max_balance  # the gateway passes its own settings' ceiling
MAX_CONTEXT_BYTES = RECORD["context"].max_len

STORED = "stored"
DUPLICATE = "duplicate"
CONFLICT = "conflict"

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_BATCH_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,64}\Z")
BATCH_KEYS = frozenset({"batch_id", "terminal_id", "records"})
# a batch of another kind than purchases names it; one kind per batch
KINDED_BATCH_KEYS = BATCH_KEYS | {"kind"}
BATCH_KINDS = {k.name: k for k in (RECORD, EC_PURCHASE, QR_RIDE)}
RECORD_KEYS = RECORD.names
_sha256 = hashlib.sha256
# each kind's sequence field (the last of its identity), looked up once per ack
_SEQ_NAMES = {name: kind.identity[-1] for name, kind in BATCH_KINDS.items()}
_RECORD_KEYSET = frozenset(RECORD_KEYS)

# the columns a stored row carries after terminal_id, in this order
ROW_COLUMNS = (*RECORD_KEYS[1:], "content_hash")


def _int_range(name: str) -> tuple[int, int]:
    return RECORD[name].lo, RECORD[name].hi


def _hex_digits(name: str) -> int:
    return 2 * RECORD[name].length


# the fast path's bounds, taken from the record's declaration
_SEQ_LO, _SEQ_HI = _int_range("terminal_seq")
_AMOUNT_LO, _AMOUNT_HI = _int_range("amount")
_BALANCE_LO = RECORD["balance_before"].lo
_ATC_LO, _ATC_HI = _int_range("card_atc")
_KEYV_LO, _KEYV_HI = _int_range("key_version")
_ALG_LO, _ALG_HI = _int_range("algorithm")
_TYPES = frozenset(RECORD["txn_type"].choices)
_STATES = frozenset(RECORD["state"].choices)
_ISSUER_LEN, _SERIAL_LEN = _hex_digits("issuer_id"), _hex_digits("card_serial")
_TAC_LEN, _MAC2_LEN = _hex_digits("tac"), _hex_digits("mac2")
_RESOLUTION_MAX = RECORD["resolution"].max_len
_YEAR_LO, _YEAR_HI = CARD_YEARS


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    terminal_id: str
    rows: list[tuple[Any, ...]]  # ROW_COLUMNS (or kind_row_columns), validated and normalised
    kind: str = PURCHASE


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    terminal_id: str
    replay: bool
    acks: list[tuple[int, str]]  # (identity seq, STORED | DUPLICATE | CONFLICT) in batch order
    kind: str = PURCHASE

    @property
    def seq_name(self) -> str:
        """The record's sequence field each ack names (terminal_seq, ec_seq, qr_seq)."""
        return _SEQ_NAMES[self.kind]

    def counts(self) -> dict[str, int]:
        out = {STORED: 0, DUPLICATE: 0, CONFLICT: 0}
        for _, status in self.acks:
            out[status] += 1
        return out


class _Bad(Exception):
    """One field of one record is wrong (turned into ``Invalid`` naming the record)."""


def _refuse(rec: Any, max_balance: int) -> NoReturn:
    """Word the refusal of a record the fast path turned down, from the declaration."""
    try:
        RECORD.from_wire(rec, bounds={"balance_before": max_balance})
    except RecordError as exc:
        raise _Bad(str(exc)) from None
    raise _Bad("record does not match the purchase record's declaration")


def _storable(text: str, key: str) -> None:
    """Text every store can hold (no NUL, no lone surrogate), else the record is refused."""
    try:
        storable_text(text)
    except ValueError as exc:
        raise _Bad(f"{key}: {exc}") from None


def _ok_hex(v: Any, length: int) -> bool:
    return type(v) is str and len(v) == length and _HEX_DIGITS.issuperset(v)


# one C call takes a record's values in declaration order
_VALUES = operator.itemgetter(*RECORD_KEYS)
# a card time already in its column form (seconds, no zone) is stored as sent
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\Z")


def _record(rec: Any, terminal_id: str, max_balance: int = MAX_BALANCE) -> tuple[Any, ...]:
    """One record, validated against the record's declaration and normalised to its column
    form (ROW_COLUMNS) plus its content hash.

    The fast path checks good values inline, with the declaration's bounds; any record it
    turns down goes to ``RECORD.from_wire``, which says what is wrong. A busy gateway
    validates tens of thousands of records a second.
    """
    if type(rec) is not dict or rec.keys() != _RECORD_KEYSET:
        _refuse(rec, max_balance)
    (
        tid,
        seq,
        issuer,
        serial,
        txn_type,
        amount,
        balance,
        atc,
        key_version,
        algorithm,
        when_text,
        state,
        tac,
        mac2,
        verified,
        resolution,
        context,
    ) = _VALUES(rec)
    if tid != terminal_id:
        try:
            tid = RECORD["terminal_id"].check(tid)
        except RecordError as exc:
            raise _Bad(str(exc)) from None
        if tid != terminal_id:
            raise Forbidden(
                "wrong_terminal", f"record claims terminal {tid}, batch is from {terminal_id}"
            )
    if not (
        type(seq) is int
        and _SEQ_LO <= seq <= _SEQ_HI
        and type(txn_type) is int
        and txn_type in _TYPES
        and type(amount) is int
        and _AMOUNT_LO <= amount <= _AMOUNT_HI
        and type(balance) is int
        and _BALANCE_LO <= balance <= max_balance
        and amount <= balance
        and type(atc) is int
        and _ATC_LO <= atc <= _ATC_HI
        and type(key_version) is int
        and _KEYV_LO <= key_version <= _KEYV_HI
        and type(algorithm) is int
        and _ALG_LO <= algorithm <= _ALG_HI
        and _ok_hex(issuer, _ISSUER_LEN)
        and _ok_hex(serial, _SERIAL_LEN)
        and type(state) is str
        and state in _STATES
        and (_ok_hex(tac, _TAC_LEN) if tac is not None else state != "settled")
        and (mac2 is None or _ok_hex(mac2, _MAC2_LEN))
        and (verified is None or type(verified) is bool)
        and (resolution is None or (type(resolution) is str and len(resolution) <= _RESOLUTION_MAX))
        and type(context) is dict
        and type(when_text) is str
        and len(when_text) <= 32
    ):
        _refuse(rec, max_balance)
    try:
        when = datetime.fromisoformat(when_text)
    except ValueError:
        _refuse(rec, max_balance)
    if when.tzinfo is not None or not _YEAR_LO <= when.year <= _YEAR_HI:
        _refuse(rec, max_balance)
    if _CANONICAL_TIME.match(when_text) is None:
        when_text = when.isoformat(timespec="seconds")
    if resolution is not None and (not resolution.isascii() or "\x00" in resolution):
        _storable(resolution, "resolution")
    context_json = json_column(context)
    if not context_json.isascii():
        _storable(context_json, "context")
    if len(context_json) > MAX_CONTEXT_BYTES // 4 and (
        len(context_json.encode("utf-8")) > MAX_CONTEXT_BYTES
    ):
        _refuse(rec, max_balance)
    issuer, serial = issuer.upper(), serial.upper()
    if tac is not None:
        tac = tac.upper()
    if mac2 is not None:
        mac2 = mac2.upper()
    if verified is not None:
        verified = int(verified)
    return _row(
        seq,
        issuer,
        serial,
        txn_type,
        amount,
        balance,
        atc,
        key_version,
        algorithm,
        when_text,
        state,
        tac,
        mac2,
        verified,
        resolution,
        context_json,
    )


def _row(
    seq: int,
    issuer: str,
    serial: str,
    txn_type: int,
    amount: int,
    balance: int,
    atc: int,
    key_version: int,
    algorithm: int,
    when_text: str,
    state: str,
    tac: str | None,
    mac2: str | None,
    verified: int | None,
    resolution: str | None,
    context_json: str,
) -> tuple[Any, ...]:
    """A checked record's column values (ROW_COLUMNS) with its content hash: the values
    joined by "|" (None as "None"), as stored since the first schema - stored hashes and
    replays compare equal."""
    text = (
        f"{seq}|{issuer}|{serial}|{txn_type}|{amount}|{balance}|{atc}|{key_version}|"
        f"{algorithm}|{when_text}|{state}|{tac}|{mac2}|{verified}|{resolution}|{context_json}"
    )
    return (
        seq,
        issuer,
        serial,
        txn_type,
        amount,
        balance,
        atc,
        key_version,
        algorithm,
        when_text,
        state,
        tac,
        mac2,
        verified,
        resolution,
        context_json,
        _sha256(text.encode()).hexdigest(),
    )


def kind_row_columns(kind: RecordKind) -> tuple[str, ...]:
    """A stored row of a kind after purchases, after terminal_id: its fields in order, then
    its content hash."""
    return (*kind.names[1:], "content_hash")


# EC sales are stored as the ec_txn table; QR rides as qr_txn (gateway/storage/schema.py)
EC_ROW_COLUMNS = kind_row_columns(EC_PURCHASE)


def _ride_is_the_codes(values: dict[str, Any], policy: QrPolicy | None) -> None:
    """A ride record restates the code it carries and charges within its limit, at a time
    inside its validity by ``policy`` (the chain is clearing's to re-verify: the gateway
    holds no root keys)."""
    try:
        check_record(values, policy)
    except QrError as exc:
        raise _Bad(str(exc)) from None


# what a kind checks beyond its declaration, by kind name
_KIND_CHECKS = {QR_RIDE.name: _ride_is_the_codes}
# a field one record of the kind alone may hold, whatever its identity: a code pays one ride
_ONCE_ONLY = {QR_RIDE.name: ("code_hash", "a ride code pays one ride")}


def _kind_record(
    kind: RecordKind, rec: Any, terminal_id: str, qr_policy: QrPolicy | None
) -> tuple[Any, ...]:
    """One record of a kind after purchases checked against its declaration (and its kind's
    own check), as ``kind_row_columns(kind)``."""
    try:
        columns = kind.from_wire(rec)
    except RecordError as exc:
        raise _Bad(str(exc)) from None
    if columns[0] != terminal_id:
        raise Forbidden(
            "wrong_terminal", f"record claims terminal {columns[0]}, batch is from {terminal_id}"
        )
    for name, value in zip(kind.names, columns, strict=True):
        if type(value) is str and not value.isascii():
            _storable(value, name)
    extra = _KIND_CHECKS.get(kind.name)
    if extra is not None:
        extra(dict(zip(kind.names, columns, strict=True)), qr_policy)
    digest = hashlib.sha256("|".join(map(str, columns[1:])).encode("utf-8")).hexdigest()
    return (*columns[1:], digest)


class _Untyped(Exception):
    """The typed decode took a batch it must hand to the exact path (a rule between fields,
    a purse ceiling, a text to look at): ``json.loads`` and the checks decide."""


# The typed decode (msgspec, in C): each record's shape, types and bounds built from the
# declaration, stricter than the exact path (upper-case hex, the canonical card time, a flat
# context of text, integers, booleans and null), so what it takes the exact path takes with
# the same values; whatever it refuses goes to the exact path, which says what is wrong.
# bounds the gateway sets itself (its purse ceiling), checked after the decode
_GATEWAY_BOUNDS = frozenset({"balance_before"})
_FlatJson = str | int | bool | None  # no float: a float's text may be read otherwise
_TIME_LEN = len("YYYY-MM-DDTHH:MM:SS")


def _typed(f: Field) -> Any:
    """A field's type for the typed decode, from its declaration (texts by length: their
    digits are checked by ``_TYPED_TEXT`` in one match, cheaper than a pattern each)."""
    t: Any
    if f.type is bytes:
        t = Annotated[str, msgspec.Meta(min_length=2 * f.length, max_length=2 * f.length)]
    elif f.type is int and f.choices:
        t = Literal[f.choices]
    elif f.type is int:
        hi = None if f.name in _GATEWAY_BOUNDS else f.hi
        t = Annotated[int, msgspec.Meta(ge=f.lo, le=hi)]
    elif f.type is datetime:
        t = Annotated[str, msgspec.Meta(min_length=_TIME_LEN, max_length=_TIME_LEN)]
    elif f.type is str and f.choices:
        t = Literal[f.choices]
    elif f.type is str:
        t = Annotated[str, msgspec.Meta(max_length=f.max_len)]
    elif f.type is bool:
        t = bool
    else:
        t = dict[str, _FlatJson]
    return t | None if f.nullable else t


def _text_pattern(f: Field) -> str:
    """One field's text in ``_TYPED_TEXT``: upper-case hex (``None`` when null: a text
    "None" has not the length) or the canonical card time."""
    if f.type is datetime:
        return _CANONICAL_TIME.pattern.removesuffix("\\Z")
    return f"[0-9A-F]{{{2 * f.length}}}" + ("|None" if f.nullable else "")


# the texts the typed decode checks after it, in declaration order, joined with nothing
_TEXT_FIELDS = ("issuer_id", "card_serial", "tac", "mac2", "txn_time")
_TYPED_TEXT = re.compile("".join(f"(?:{_text_pattern(RECORD[n])})" for n in _TEXT_FIELDS) + "\\Z")


_TypedRecord = msgspec.defstruct(
    "TypedPurchase",
    [(f.name, _typed(f)) for f in RECORD.fields],
    forbid_unknown_fields=True,
    gc=False,
)
_TypedBatch = msgspec.defstruct(
    "TypedPurchaseBatch",
    [
        ("batch_id", Annotated[str, msgspec.Meta(pattern=_BATCH_ID.pattern)]),
        ("terminal_id", str),
        ("records", Annotated[list[_TypedRecord], msgspec.Meta(min_length=1)]),
    ],
    forbid_unknown_fields=True,
)
_typed_batch = msgspec.json.Decoder(_TypedBatch).decode
_astuple = msgspec.structs.astuple


def _parse_typed(body: bytes, terminal: Terminal, max_records: int, max_balance: int) -> Batch:
    """A purchase batch decoded typed and checked for what the types cannot say; raises
    (anything) for the exact path to decide."""
    doc = _typed_batch(body)
    require_upload(terminal, PURCHASE)
    terminal_id = terminal.terminal_id
    records = doc.records
    if doc.terminal_id.upper() != terminal_id or len(records) > max_records:
        raise _Untyped
    rows = []
    seen: set[int] = set()
    for rec in records:
        (
            tid,
            seq,
            issuer,
            serial,
            txn_type,
            amount,
            balance,
            atc,
            key_version,
            algorithm,
            when_text,
            state,
            tac,
            mac2,
            verified,
            resolution,
            context,
        ) = _astuple(rec)
        if (
            tid != terminal_id
            or balance > max_balance
            or amount > balance
            or (tac is None and state == "settled")
            or seq in seen
            or _TYPED_TEXT.match(f"{issuer}{serial}{tac}{mac2}{when_text}") is None
        ):
            raise _Untyped
        seen.add(seq)
        if resolution is not None and (not resolution.isascii() or "\x00" in resolution):
            storable_text(resolution)
        if not _YEAR_LO <= datetime.fromisoformat(when_text).year <= _YEAR_HI:
            raise _Untyped
        context_json = json_column(context)
        if not context_json.isascii():
            storable_text(context_json)
        if len(context_json) > MAX_CONTEXT_BYTES // 4 and (
            len(context_json.encode("utf-8")) > MAX_CONTEXT_BYTES
        ):
            raise _Untyped
        if verified is not None:
            verified = int(verified)
        rows.append(
            _row(
                seq,
                issuer,
                serial,
                txn_type,
                amount,
                balance,
                atc,
                key_version,
                algorithm,
                when_text,
                state,
                tac,
                mac2,
                verified,
                resolution,
                context_json,
            )
        )
    return Batch(doc.batch_id, terminal_id, rows)


def parse_batch(
    body: bytes,
    terminal: Terminal,
    *,
    max_records: int = MAX_BATCH_RECORDS,
    max_balance: int = MAX_BALANCE,
    qr_policy: QrPolicy | None = None,
) -> Batch:
    """Validate a whole upload body; a refusal (``Malformed``, ``Invalid`` …) names the first
    bad record.

    ``max_balance`` is the purse ceiling (the gateway's ``LoadLimits.max_balance``).

    A purchase batch is first decoded typed (``_parse_typed``) and kept only if every check
    passes; anything else - a body it refuses (NaN, a lone surrogate, a BOM, another
    encoding, lower-case hex, a float), any refusal, another kind - is decoded again by
    ``json.loads`` and checked from scratch, so every refusal and every stored value is the
    one ``json.loads`` gives."""
    if not UPLOAD_KINDS.get(terminal.role):  # a role that uploads nothing: refused unread
        require_upload(terminal, PURCHASE)
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge("too_large", f"batch body over {MAX_BODY_BYTES} bytes")
    try:
        return _parse_typed(body, terminal, max_records, max_balance)
    except Exception:  # json.loads below decides, and says what is wrong
        pass
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("malformed_json", f"body is not valid JSON: {exc}") from None
    return _parse_doc(doc, terminal, max_records, max_balance, qr_policy)


def _parse_doc(
    doc: Any,
    terminal: Terminal,
    max_records: int,
    max_balance: int,
    qr_policy: QrPolicy | None,
) -> Batch:
    """A body decoded by ``json.loads`` checked."""
    if not isinstance(doc, dict) or doc.keys() not in (BATCH_KEYS, KINDED_BATCH_KEYS):
        raise Malformed(
            "bad_layout",
            "body must be an object with exactly batch_id, terminal_id, records (and kind)",
        )
    batch_id, terminal_id, records = doc["batch_id"], doc["terminal_id"], doc["records"]
    kind = doc.get("kind", PURCHASE)
    if kind not in BATCH_KINDS:
        raise Malformed("bad_layout", f"kind must be one of {', '.join(sorted(BATCH_KINDS))}")
    require_upload(terminal, kind)
    seq_name = _SEQ_NAMES[kind]
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
    seen_once: set[Any] = set()
    for i, rec in enumerate(records):
        try:
            if kind == PURCHASE:
                row = _record(rec, terminal.terminal_id, max_balance)
            else:
                row = _kind_record(BATCH_KINDS[kind], rec, terminal.terminal_id, qr_policy)
        except _Bad as exc:
            seq = rec.get(seq_name) if isinstance(rec, dict) else None
            raise Invalid("invalid_record", f"record {i} ({seq_name} {seq}): {exc}") from None
        if row[0] in seen:
            raise Invalid(
                "invalid_record", f"record {i}: {seq_name} {row[0]} appears twice in the batch"
            )
        seen.add(row[0])
        once, _ = _ONCE_ONLY.get(kind, (None, ""))
        if once is not None:
            value = row[BATCH_KINDS[kind].names.index(once) - 1]
            if value in seen_once:
                raise Invalid("invalid_record", f"record {i}: {once} {value} appears twice")
            seen_once.add(value)
        rows.append(row)
    return Batch(batch_id, terminal.terminal_id, rows, kind)


def batch_digest(batch: Batch) -> str:
    """What a batch id is bound to: its kind and records' content, whatever the JSON spacing."""
    h = hashlib.sha256(batch.terminal_id.encode())
    if batch.kind != PURCHASE:
        h.update(batch.kind.encode())
    for row in batch.rows:
        h.update(row[-1].encode())
    return h.hexdigest()


_INSERT_COLUMNS = "terminal_id, operator_id, batch_id, received_at, " + ", ".join(ROW_COLUMNS)
# PostgreSQL casts per row column: integers (and flags, stored 0/1) as bigint, the rest text
_PG_TYPES = (
    *("bigint" if RECORD[c].type in (int, bool) else "text" for c in RECORD.names[1:]),
    "text",
)
# The rows travel as one JSON array of arrays: PostgreSQL unpacks it in C, which is many
# times faster than adapting 17 Python lists to SQL arrays parameter by parameter. orjson
# writes it (500 rows: 0.03 ms against json.dumps's 0.7 ms); the rows hold only ints,
# None and text already checked storable, which both encoders write as the same JSON values.
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
        cur.execute(_PG_INSERT, (orjson.dumps(batch.rows).decode(), *head, now, now))
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


def _kind_insert(kind: RecordKind) -> str:
    columns = kind_row_columns(kind)
    return (
        f"INSERT INTO {KIND_TABLES[kind.name]} (terminal_id, operator_id, batch_id, received_at, "
        + ", ".join(columns)
        + ") VALUES ("
        + ", ".join("?" * (4 + len(columns)))
        + f") ON CONFLICT ({', '.join(kind.identity)}) DO NOTHING RETURNING id"
    )


_KIND_INSERTS = {name: _kind_insert(BATCH_KINDS[name]) for name in KIND_TABLES}


def _store_kind(cur: Cursor, batch: Batch, operator_id: str, now: int) -> list[tuple[int, str]]:
    """Store rows of a kind after purchases, each new one with its clearing record in the
    outbox (the forwarder posts an outbox payload as is); conflicts go to ``txn_conflicts``."""
    kind = BATCH_KINDS[batch.kind]
    columns = kind_row_columns(kind)
    seq_name = kind.identity[-1]
    table = KIND_TABLES[kind.name]
    acks: list[tuple[int, str]] = []
    for row in batch.rows:
        once, why = _ONCE_ONLY.get(kind.name, (None, ""))
        if once is not None:
            cur.execute(
                f"SELECT terminal_id, {seq_name} FROM {table} WHERE {once} = ?",
                (row[columns.index(once)],),
            )
            held = cur.fetchone()
            if held is not None and tuple(held) != (batch.terminal_id, row[0]):
                raise Conflict(
                    f"{once}_held",
                    f"{seq_name} {row[0]}: its {once} is already held as terminal {held[0]}"
                    f" {seq_name} {held[1]}: {why}",
                )
        try:
            cur.execute(
                _KIND_INSERTS[kind.name],
                (batch.terminal_id, operator_id, batch.batch_id, now, *row),
            )
        except RACED:  # a concurrent batch stored the same once-only value first
            raise Conflict(
                f"{once}_held",
                f"{seq_name} {row[0]}: its {once} was stored meanwhile by another upload: {why}",
            ) from None
        new = cur.fetchone()
        if new is not None:
            values = dict(zip(columns, row, strict=True), terminal_id=batch.terminal_id)
            record = kind.clearing_record(values, operator_id)
            cur.execute(
                "INSERT INTO outbox (kind, ref_id, payload, created_at, available_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind.name, new[0], json.dumps(record, sort_keys=True), now, now),
            )
            acks.append((row[0], STORED))
            continue
        cur.execute(
            f"SELECT content_hash FROM {table} WHERE terminal_id = ? AND {seq_name} = ?",
            (batch.terminal_id, row[0]),
        )
        if cur.fetchone()[0] == row[-1]:
            acks.append((row[0], DUPLICATE))
            continue
        acks.append((row[0], CONFLICT))
        record = dict(zip(columns, row, strict=True), kind=kind.name)
        cur.execute(
            "INSERT INTO txn_conflicts (terminal_id, terminal_seq, content_hash, record,"
            " batch_id, received_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (terminal_id, terminal_seq, content_hash) DO NOTHING",
            (batch.terminal_id, row[0], row[-1], json.dumps(record, sort_keys=True),
             batch.batch_id, now),
        )  # fmt: skip
    return acks


@retried
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
        if batch.kind != PURCHASE:
            acks = _store_kind(cur, batch, terminal.operator_id, now)
            if held is None:
                stored = sum(status == STORED for _, status in acks)
                cur.execute(
                    "INSERT INTO batches (terminal_id, batch_id, body_hash, records, stored,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (terminal_id, batch_id) DO NOTHING",
                    (batch.terminal_id, batch.batch_id, body_hash, len(batch.rows), stored, now),
                )
            return BatchResult(
                batch.batch_id, batch.terminal_id, held is not None, acks, batch.kind
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
