"""The settled-transaction record, declared once: its fields, their types, bounds, wire form.

A terminal journals it, uploads it, the gateway validates and stores it, and forwards it to
clearing. Every one of those derives its columns, keys and checks from the ``RecordKind``
here, so a field is added or changed in one place (tests/terminal/test_record.py proves
the journal, ingest, storage and forwarder agree with it).

Three forms of each value:
  - **value**: what Python code holds: ``int``, ``str``, ``bool``, ``dict``, ``datetime``;
    a ``bytes`` field is held as upper-case hex text once it leaves the card (journal rows,
    gateway rows), because every reader of it (operators, URLs, keys) wants the text;
  - **wire**: the upload JSON (and clearing's JSON): hex text for bytes, ISO 8601 text for
    times (seconds, no zone: the card's local clock), JSON types for the rest;
  - **column**: what SQLite and PostgreSQL store: as the wire, except ``bool`` as 0/1 and a
    ``dict`` as compact JSON text with sorted keys.

A record kind is a declaration: ``PURCHASE`` is the e-purse purchase a POS or validator
settles with the card's TAC; ``EC_PURCHASE`` is an Electronic Cash sale a POS settles with
the card's application cryptogram; ``QR_RIDE`` is a ride paid by a transport QR code,
charged to the code's issuing platform (no card is debited: the code is the proof).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from terminal.epurse.commands import PURCHASE_TYPES

MAX_AMOUNT = 1_000_000  # 10,000 yuan: far above any purse ceiling, far below overflow
MAX_BALANCE = 100_000  # the usual purse ceiling; a gateway applies its own configured one
MAX_CONTEXT_BYTES = 2048
MAX_RESOLUTION = 200
CARD_YEARS = (2000, 2099)  # a card time outside these years is not one a card wrote

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class RecordError(ValueError):
    """One field of a record is wrong; the message names the field and what is wrong."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field: its Python type, its bounds, whether it may be null, and its wire form.

    ``lo``/``hi`` bound an int (inclusive); ``length`` is a bytes field's size in bytes
    (wire: twice as many hex digits); ``max_len`` bounds a text in characters or a dict's
    JSON in bytes; ``choices`` lists the only values allowed."""

    name: str
    type: type
    doc: str
    lo: int = 0
    hi: int = 0
    length: int = 0
    max_len: int = 0
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    identity: bool = False

    @property
    def wire_type(self) -> str:
        """The JSON type on the wire (for documents and the OpenAPI check)."""
        return {
            bytes: "string",
            datetime: "string",
            str: "string",
            int: "integer",
            bool: "boolean",
            dict: "object",
        }[self.type]

    # -- conversions ----------------------------------------------------------------------
    def to_column(self, value: Any) -> Any:
        """A value (bytes as bytes or hex text) as stored in a column: its wire form, with a
        flag as 0/1 and an object as JSON text."""
        wire = self.to_wire(value)
        if wire is None:
            return None
        if self.type is bool:
            return int(wire)
        if self.type is dict:
            return json_column(wire)
        return wire

    def from_column(self, value: Any) -> Any:
        """A column as a value (bytes stay hex text)."""
        if value is None:
            return None
        if self.type is datetime:
            return datetime.fromisoformat(value)
        if self.type is bool:
            return bool(value)
        if self.type is dict:
            return json.loads(value)
        return value

    def decode(self, value: Any) -> Any:
        """A wire value as its Python type (hex text to bytes, ISO text to datetime); no
        bounds are checked (``check`` does that)."""
        if value is None:
            return None
        if self.type is bytes:
            return bytes.fromhex(value)
        if self.type is datetime:
            return datetime.fromisoformat(value)
        return value

    def to_wire(self, value: Any) -> Any:
        """A value as the upload JSON carries it."""
        if value is None:
            return None
        if self.type is bytes:
            return value.hex().upper() if isinstance(value, bytes | bytearray) else value.upper()
        if self.type is datetime:
            return value.isoformat(timespec="seconds")
        if self.type is int:
            return int(value)  # an IntEnum (TxnType) becomes its number
        return value

    def check(self, v: Any, *, hi: int | None = None) -> Any:
        """A wire value checked against the declaration and returned in column form; raises
        RecordError saying what is wrong. ``hi`` overrides an int's upper bound (a
        gateway's own purse ceiling)."""
        if v is None:
            if self.nullable:
                return None
            raise RecordError(f"{self.name} must not be null")
        if self.type is int:
            if type(v) is not int:
                raise RecordError(f"{self.name} must be an integer, got {type(v).__name__}")
            top = self.hi if hi is None else hi
            if not self.lo <= v <= top:
                raise RecordError(f"{self.name} {v} out of range {self.lo}..{top}")
            if self.choices and v not in self.choices:
                raise RecordError(f"{self.name} {v:#04x} is not a known {self.doc}")
            return v
        if self.type is bytes:
            digits = 2 * self.length
            if type(v) is not str or len(v) != digits or not _HEX_DIGITS.issuperset(v):
                raise RecordError(f"{self.name} must be {digits} hex digits")
            return v.upper()
        if self.type is datetime:
            return _check_time(self.name, v)
        if self.type is bool:
            if type(v) is not bool:
                raise RecordError(f"{self.name} must be true, false or null")
            return int(v)
        if self.type is str:
            if self.choices:
                if v not in self.choices:
                    allowed = " or ".join(repr(c) for c in self.choices)
                    raise RecordError(f"{self.name} must be {allowed}")
                return v
            if type(v) is not str or len(v) > self.max_len:
                raise RecordError(
                    f"{self.name} must be a string of at most {self.max_len} characters"
                    + (", or null" if self.nullable else "")
                )
            return v
        if type(v) is not dict:
            raise RecordError(f"{self.name} must be a JSON object")
        text = json_column(v)
        if len(text.encode("utf-8")) > self.max_len:
            raise RecordError(f"{self.name} larger than {self.max_len} bytes")
        return text


# json.dumps with these arguments builds this very encoder on every call (3x the cost)
_JSON_COLUMN = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# ``encode`` itself builds its C encoder on every call; this is the same one, built once,
# without the circular-reference markers (a shared markers dict keeps stale entries after
# an error). Anything it cannot encode goes to ``encode``, which raises as it always did.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_JSON_COLUMN_TEXT = json.encoder.encode_basestring  # what ensure_ascii=False writes text with
_JSON_COLUMN_C = (
    _c_make_encoder(
        None, _JSON_COLUMN.default, _JSON_COLUMN_TEXT, None, ":", ",", True, False, True
    )
    if _c_make_encoder is not None
    else None
)


def json_column(value: dict[str, Any]) -> str:
    """A dict's column form: compact, sorted keys, UTF-8 as is ("{}" when empty)."""
    if not value:
        return "{}"
    if _JSON_COLUMN_C is not None:
        try:
            return "".join(_JSON_COLUMN_C(value, 0))
        except Exception:  # a cycle, too deep, or not JSON: encode says which
            pass
    return _JSON_COLUMN.encode(value)


def _check_time(name: str, v: Any) -> str:
    if type(v) is not str or len(v) > 32:
        raise RecordError(f"{name} must be an ISO date-time string")
    try:
        when = datetime.fromisoformat(v)
    except ValueError:
        raise RecordError(f"{name} {v!r} is not an ISO date-time") from None
    lo, hi = CARD_YEARS
    if when.tzinfo is not None or not lo <= when.year <= hi:
        raise RecordError(f"{name} must be a local card time (no zone) between {lo} and {hi}")
    return when.isoformat(timespec="seconds")


@dataclass(frozen=True)
class RecordKind:
    """One kind of record: its fields in order, which form its identity, which clearing
    receives, and the rules that tie fields together (each raises RecordError)."""

    name: str
    key_prefix: str
    fields: tuple[Field, ...]
    cleared: tuple[str, ...] | Callable[[tuple[Field, ...]], tuple[str, ...]]
    rules: tuple[Callable[[Mapping[str, Any]], None], ...] = ()
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        if callable(self.cleared):
            object.__setattr__(self, "cleared", self.cleared(self.fields))
        unknown = set(self.cleared) - set(self.by_name)
        if unknown:
            raise ValueError(f"{self.name}: cleared field(s) {sorted(unknown)} not declared")
        if any(self.by_name[n].type in (bool, dict) for n in self.cleared):
            raise ValueError(f"{self.name}: a cleared field's column form must be its wire form")

    @property
    def names(self) -> tuple[str, ...]:
        """The field names in order: journal columns, upload keys and storage columns."""
        return tuple(f.name for f in self.fields)

    @property
    def identity(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.identity)

    def __getitem__(self, name: str) -> Field:
        return self.by_name[name]

    def key(self, values: Mapping[str, Any]) -> str:
        """The idempotency key clearing de-duplicates on: the prefix and the identity."""
        parts = (str(self[n].to_wire(values[n])) for n in self.identity)
        return ":".join((self.key_prefix, *parts))

    def to_columns(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """Values (all fields) in column form, in field order."""
        return tuple(f.to_column(values[f.name]) for f in self.fields)

    def from_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A stored row (sqlite3.Row or a dict keyed by column) as values."""
        return {f.name: f.from_column(row[f.name]) for f in self.fields}

    def to_wire(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values as the upload JSON."""
        return {f.name: f.to_wire(values[f.name]) for f in self.fields}

    def check_keys(self, doc: Mapping[str, Any]) -> None:
        """Exactly the declared keys, else a RecordError naming the unknown and missing."""
        if doc.keys() == self.by_name.keys():
            return
        extra = sorted(set(doc) - set(self.by_name))
        missing = sorted(set(self.by_name) - set(doc))
        parts = [
            f"unknown field(s) {', '.join(extra)}" if extra else "",
            f"missing field(s) {', '.join(missing)}" if missing else "",
        ]
        raise RecordError("; ".join(p for p in parts if p))

    def from_wire(self, doc: Any, *, bounds: Mapping[str, int] | None = None) -> tuple[Any, ...]:
        """A wire record checked field by field and by the kind's rules, in column form and
        field order. ``bounds`` overrides int upper bounds by field name."""
        if type(doc) is not dict:
            raise RecordError("a record must be a JSON object")
        self.check_keys(doc)
        bounds = bounds or {}
        columns = tuple(f.check(doc[f.name], hi=bounds.get(f.name)) for f in self.fields)
        named = dict(zip(self.names, columns, strict=True))
        for rule in self.rules:
            rule(named)
        return columns

    def clearing_record(self, row: Mapping[str, Any], operator_id: str) -> dict[str, Any]:
        """What clearing receives for a stored row or an upload (the cleared fields' column
        form is their wire form): those fields, the operator, the kind and the key."""
        out = {n: row[n] for n in self.cleared}
        out.update(key=self.key(row), kind=self.name, operator_id=operator_id)
        return out

    def read_cleared(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """A clearing record's fields as Python values (bytes as bytes, times as datetime);
        RecordError names the fields missing."""
        missing = [n for n in (*self.cleared, "operator_id") if n not in rec]
        if missing:
            raise RecordError(f"missing field(s) {', '.join(missing)}")
        return {n: self[n].decode(rec[n]) for n in self.cleared}


# -- the e-purse purchase ------------------------------------------------------------------
UPLOADED_STATES = ("settled", "suspect")


def _never_overdraws(r: Mapping[str, Any]) -> None:
    if r["amount"] > r["balance_before"]:
        raise RecordError(
            f"amount {r['amount']} is more than the balance before {r['balance_before']}:"
            " a purse never overdraws"
        )


def withholding(*names: str) -> Callable[[tuple[Field, ...]], tuple[str, ...]]:
    """``cleared`` for a kind whose every field goes to clearing but ``names`` (the
    terminal's own notes), so the list of fields is written once, in ``fields``."""
    return lambda fields: tuple(f.name for f in fields if f.name not in names)


def _settled_has_tac(r: Mapping[str, Any]) -> None:
    if r["state"] == "settled" and r["tac"] is None:
        raise RecordError("a settled record must carry the card's TAC")


PURCHASE = RecordKind(
    name="purchase",
    key_prefix="P",
    fields=(
        Field("terminal_id", bytes, "the PSAM's terminal id", length=6, identity=True),
        Field("terminal_seq", int, "the PSAM's transaction number", hi=0xFFFFFFFF, identity=True),
        Field("issuer_id", bytes, "card issuer", length=8),
        Field("card_serial", bytes, "card application serial", length=8),
        Field(
            "txn_type",
            int,
            "purchase type (05 ED, 06 EP, 09 CAPP)",
            hi=0xFF,
            choices=tuple(sorted(PURCHASE_TYPES)),
        ),
        Field("amount", int, "fen", hi=MAX_AMOUNT),
        Field("balance_before", int, "fen", hi=MAX_BALANCE),
        Field("card_atc", int, "the card's offline counter before the purchase", hi=0xFFFF),
        Field("key_version", int, "purchase key version", hi=0xFF),
        Field("algorithm", int, "purchase key algorithm", hi=0xFF),
        Field("txn_time", datetime, "card local time, ISO 8601 without zone"),
        Field("state", str, "settled or suspect", choices=UPLOADED_STATES),
        Field("tac", bytes, "the card's TAC", length=4, nullable=True),
        Field("mac2", bytes, "the card's MAC2", length=4, nullable=True),
        Field("mac2_verified", bool, "the PSAM accepted MAC2", nullable=True),
        Field("resolution", str, "how the row was settled", max_len=MAX_RESOLUTION, nullable=True),
        Field("context", dict, "the role's own notes (line, station)", max_len=MAX_CONTEXT_BYTES),
    ),
    cleared=withholding("mac2_verified", "resolution", "context"),
    rules=(_never_overdraws, _settled_has_tac),
)


# -- the Electronic Cash sale ---------------------------------------------------------------
MAX_HEX_TEXT = 512  # a DOL's data or an IAD as hex text: far above what any card sends


def _hex_text(name: str, *, even: bool = True) -> Callable[[Mapping[str, Any]], None]:
    """A rule: ``name`` (a text field) is hex digits, an even number of them."""

    def rule(r: Mapping[str, Any]) -> None:
        v = r[name]
        if v is not None and (not _HEX_DIGITS.issuperset(v) or (even and len(v) % 2)):
            raise RecordError(f"{name} must be hex digits, whole bytes")

    return rule


def _pan_digits(r: Mapping[str, Any]) -> None:
    if r["pan"] is None:
        return
    if not (r["pan"].isdigit() and r["pan"].isascii() and 12 <= len(r["pan"]) <= 19):
        raise RecordError("pan must be 12 to 19 digits")


def _ec_never_overdraws(r: Mapping[str, Any]) -> None:
    if r["amount"] > r["ec_balance_before"]:
        raise RecordError(
            f"amount {r['amount']} is more than the EC balance before {r['ec_balance_before']}"
        )


def _settled_has_cryptogram(r: Mapping[str, Any]) -> None:
    if r["state"] == "settled" and None in (r["cryptogram"], r["atc"], r["pan"]):
        raise RecordError("a settled EC record must carry the card's PAN, cryptogram and ATC")


EC_PURCHASE = RecordKind(
    name="ec_purchase",
    key_prefix="E",
    fields=(
        Field("terminal_id", bytes, "the terminal's id (its PSAM's)", length=6, identity=True),
        Field(
            "ec_seq",
            int,
            "the terminal's EC transaction sequence counter (9F41), its own number space",
            lo=1,
            hi=0xFFFFFFFF,
            identity=True,
        ),
        Field(
            "pan", str, "application PAN (5A), digits: read after GPO", max_len=19, nullable=True
        ),
        Field("pan_seq", int, "PAN sequence number (5F34)", hi=0xFF, nullable=True),
        Field("aid", str, "the EMV application's AID, hex", max_len=32),
        Field("txn_type", int, "transaction type (9C)", hi=0xFF),
        Field("amount", int, "authorised amount (9F02), fen", lo=1, hi=MAX_AMOUNT),
        Field("amount_other", int, "amount other (9F03), fen", hi=MAX_AMOUNT),
        Field("currency", int, "transaction currency code (5F2A)", hi=999),
        Field("country", int, "terminal country code (9F1A)", hi=999),
        Field("txn_time", datetime, "terminal local time (9A, 9F21), ISO 8601 without zone"),
        Field("ec_balance_before", int, "EC balance read before GPO (9F79), fen", hi=MAX_AMOUNT),
        Field(
            "unpredictable_number", bytes, "the terminal's unpredictable number (9F37)", length=4
        ),
        Field("state", str, "settled or suspect", choices=UPLOADED_STATES),
        Field(
            "cryptogram", bytes, "the card's application cryptogram (9F26)", length=8, nullable=True
        ),
        Field("cid", int, "cryptogram information data (9F27)", hi=0xFF, nullable=True),
        Field(
            "atc",
            int,
            "the card's application transaction counter (9F36)",
            hi=0xFFFF,
            nullable=True,
        ),
        Field("iad", str, "issuer application data (9F10), hex", max_len=64, nullable=True),
        Field("aip", bytes, "application interchange profile (82)", length=2, nullable=True),
        Field("tvr", bytes, "terminal verification results (95)", length=5, nullable=True),
        Field(
            "dol_data",
            str,
            "the PDOL data sent with GPO, hex: what the AC covers",
            max_len=MAX_HEX_TEXT,
            nullable=True,
        ),
        Field(
            "ec_balance_after", int, "EC balance after (9F5D), fen", hi=MAX_AMOUNT, nullable=True
        ),
        Field("resolution", str, "how the row was settled", max_len=MAX_RESOLUTION, nullable=True),
        Field("context", dict, "the role's own notes (merchant, lane)", max_len=MAX_CONTEXT_BYTES),
    ),
    cleared=withholding("resolution", "context"),
    rules=(
        _pan_digits,
        _hex_text("aid"),
        _hex_text("iad"),
        _hex_text("dol_data"),
        _ec_never_overdraws,
        _settled_has_cryptogram,
    ),
)


# -- the campus access event ------------------------------------------------------------------
ACCESS_EVENT = RecordKind(
    name="access_event",
    key_prefix="A",
    fields=(
        Field("terminal_id", bytes, "the door's or clock's terminal id", length=6, identity=True),
        Field("event_seq", int, "the terminal's own event number", lo=1, hi=2**53, identity=True),
        Field(
            "card_serial",
            bytes,
            "the card's serial (as claimed if refused)",
            length=8,
            nullable=True,
        ),
        Field("person_no", str, "the person the card proved to be", max_len=16, nullable=True),
        Field("point", str, "the door or clock's name", max_len=32),
        Field("area", str, "the area the point leads into", max_len=32),
        Field("purpose", str, "door or attendance", choices=("door", "attendance")),
        Field("direction", str, "in or out", choices=("in", "out")),
        Field("result", str, "granted or refused", choices=("granted", "refused")),
        Field("reason", str, "why (refused: what was wrong)", max_len=MAX_RESOLUTION),
        Field("event_time", datetime, "terminal local time, ISO 8601 without zone"),
    ),
    cleared=(),  # campus events stay with the campus back office: nothing to clear
)

# -- the ride QR code ------------------------------------------------------------------------
MAX_QR_HEX = 2 * 364  # a ride code's bytes as hex text (332..364 bytes)


def _whole_code(r: Mapping[str, Any]) -> None:
    v = r["code"]
    if not (2 * 332 <= len(v) <= MAX_QR_HEX) or len(v) % 2 or not _HEX_DIGITS.issuperset(v):
        raise RecordError("code must be the ride code's 332..364 bytes as hex digits")


QR_RIDE = RecordKind(
    name="qr_ride",
    key_prefix="Q",
    fields=(
        Field(
            "terminal_id",
            bytes,
            "the validator's terminal id (its PSAM's)",
            length=6,
            identity=True,
        ),
        Field(
            "qr_seq",
            int,
            "the terminal's ride-code sequence number, its own number space",
            lo=1,
            hi=0xFFFFFFFF,
            identity=True,
        ),
        Field(
            "code",
            str,
            "the ride code's bytes, hex: what the issuer re-verifies",
            max_len=MAX_QR_HEX,
        ),
        Field("code_hash", bytes, "SM3 of the code's bytes", length=32),
        Field("user_account", bytes, "the code's user account", length=10),
        Field("issuer_code", bytes, "issuer code (assigned by clearing)", length=4),
        Field("platform_code", bytes, "issuing platform: clearing charges it", length=4),
        Field("account_type", int, "account type (JT/T 978 card kind)", hi=0xFF),
        Field("generated", int, "the code's generation time, Unix seconds", hi=0xFFFFFFFF),
        Field("txn_time", datetime, "terminal local time, ISO 8601 without zone"),
        Field("amount", int, "fare charged to the platform, fen", hi=MAX_AMOUNT),
        Field("state", str, "settled", choices=("settled",)),
        Field("resolution", str, "how the row was settled", max_len=MAX_RESOLUTION, nullable=True),
        Field("context", dict, "the role's own notes (line, station)", max_len=MAX_CONTEXT_BYTES),
    ),
    cleared=withholding("resolution", "context"),
    rules=(_whole_code,),
)

KINDS = {k.name: k for k in (PURCHASE, EC_PURCHASE, QR_RIDE)}


# -- the kiosk's online load (top-up) ---------------------------------------------------------
LOAD_STATES = ("intent", "settled", "suspect", "void")

LOAD = RecordKind(
    name="load",
    key_prefix="L",
    fields=(
        Field("reference", str, "the gateway's reference for the load", max_len=64, identity=True),
        Field("terminal_id", bytes, "the kiosk's terminal id", length=6),
        Field("issuer_id", bytes, "card issuer", length=8),
        Field("card_serial", bytes, "card application serial", length=8),
        Field("online_atc", int, "the card's online counter before the load", hi=0xFFFF),
        Field("amount", int, "fen", lo=1, hi=MAX_AMOUNT),
        Field("balance_before", int, "fen", hi=MAX_AMOUNT),
        Field("key_version", int, "load key version", hi=0xFF),
        Field("algorithm", int, "load key algorithm", hi=0xFF),
        Field("txn_time", datetime, "the host's time the card credits at (CREDIT FOR LOAD)"),
        Field("purpose", str, "what the load pays (empty: a top-up)", max_len=64),
        Field("state", str, "intent, settled, suspect or void", choices=LOAD_STATES),
        Field("tac", bytes, "the card's TAC (once it credited)", length=4, nullable=True),
        Field("resolution", str, "how the row was settled", max_len=MAX_RESOLUTION, nullable=True),
        Field("context", dict, "the role's own notes", max_len=MAX_CONTEXT_BYTES),
    ),
    cleared=(),
)
"""A kiosk's load as its journal keeps it: written after the gateway's MAC2 and before CREDIT
FOR LOAD, settled with the TAC the gateway confirmed, or voided when the card proved it never
credited. Not uploaded: the gateway's own ``loads`` table (gateway/loads.py) is the load's
record, built from the authorise/confirm/prove/void calls, so it is never counted twice."""


# -- what clearing settles a record against, and its fingerprint, for reconciliation --------
def ec_issuer_id(pan: str) -> str:
    """The EC issuer a PAN settles with (its first six digits, the issuer's BIN)."""
    return f"EC{pan[:6]}"


def qr_platform_id(platform_code: str) -> str:
    """The issuing platform a QR ride is charged to, in the settlement's issuer column."""
    return f"QR{platform_code.upper()}"


def settled_against(rec: Mapping[str, Any]) -> tuple[str, str]:
    """(issuer charged, card or account) of a clearing record: an EC sale its EMV issuer and
    PAN, a QR ride its issuing platform and the rider's account, else the card's issuer and
    serial. Clearing books by it; the gateway derives the same from what it posted."""
    if rec["kind"] == EC_PURCHASE.name:
        pan = rec["pan"] or ""  # a settled EC sale has one; clearing books no other
        return ec_issuer_id(pan), pan
    if rec["kind"] == QR_RIDE.name:
        return qr_platform_id(rec["platform_code"]), rec["user_account"]
    return rec["issuer_id"], rec["card_serial"]


def business_day(rec: Mapping[str, Any]) -> str:
    """The day a clearing record is settled in: a load's host time's date, else the card's
    (or terminal's) transaction time's."""
    when = rec["host_time"] if rec["kind"] == LOAD.name else rec["txn_time"]
    return datetime.fromisoformat(when).date().isoformat()


def cleared_body(rec: Mapping[str, Any]) -> str:
    """A clearing record as clearing keeps it: its JSON, keys sorted, no spaces. The gateway
    rebuilds the same text from what it posted (the wire form is JSON values only), so both
    sides hold it byte for byte without storing anything more."""
    return json.dumps(dict(rec), sort_keys=True, separators=(",", ":"))


def body_hash(body: str) -> str:
    """SHA-256 of a cleared body (hex): every field clearing verified and settles on."""
    return hashlib.sha256(body.encode()).hexdigest()


class SettledLine(NamedTuple):
    """One record's line in a reconciliation digest: its key, the columns clearing settles
    it on (its own, apart from the body: how much, who is paid, who is charged, which card,
    which day) and its body's hash."""

    key: str
    amount: int
    operator_id: str
    issuer_id: str
    card_serial: str
    business_day: str
    body_hash: str


SETTLED_COLUMNS = SettledLine._fields[1:-1]  # clearing's columns beside the body
DIGEST_COVERS = SettledLine._fields  # what a digest's line holds: clearing's report says so


def settled_line(rec: Mapping[str, Any]) -> SettledLine:
    """A clearing record's line as clearing books it when it accepts it (JSON values only)."""
    issuer_id, card = settled_against(rec)
    return SettledLine(
        rec["key"],
        int(rec["amount"]),
        rec["operator_id"],
        issuer_id,
        card,
        business_day(rec),
        body_hash(cleared_body(rec)),
    )


def records_digest(lines: Iterable[SettledLine]) -> str:
    """SHA-256 over the settled lines of a terminal's records of one kind, in key order:
    equal only when both sides hold the same records with the same content, settled on the
    same columns (clearing settles on its own, beside the body). The gateway's values never
    hold the separators, so with the counts equal no line can be shifted into another."""
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(("\x1f".join(map(str, line)) + "\n").encode())
    return h.hexdigest()
