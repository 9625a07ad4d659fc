"""The durable local journal: every debit is written before DEBIT is sent and after it returns.

SQLite in WAL mode with synchronous=FULL, one transaction per state change, so a power
cut between any two writes leaves a consistent journal. A row moves
intent -> settled | suspect | void, never backwards; settled and suspect rows get a
monotonically increasing ``upload_seq`` that fixes their upload order.

A journal that is lost is money lost, so the journal also watches its own file: it is
created 0600 (it holds card numbers), and ``verify()`` checks that the path still names
the file that was opened (st_dev, st_ino: not removed, not replaced) and that SQLite's
``quick_check`` passes on a fresh connection, so damage on disk is seen even when every
page is still cached. Owners call it at start and in idle time (never on the tap path);
every SQLite error in a write is a ``JournalUnavailable``. Either way the journal then
refuses all further writes: a terminal must stop taking cards rather than debit cards it
can no longer prove.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from terminal.apdu.errors import YikatongError
from terminal.record import EC_PURCHASE, LOAD, PURCHASE, QR_RIDE, RecordKind
from terminal.sqlite import NotDurable, connect, transaction

INTENT = "intent"
SETTLED = "settled"
SUSPECT = "suspect"
VOID = "void"
STATES = (INTENT, SETTLED, SUSPECT, VOID)
UPLOADABLE = (SETTLED, SUSPECT)

SCHEMA_VERSION = 5


def _kind_table(kind: RecordKind, table: str, holder: str = "pan") -> tuple[str, ...]:
    """A table holding one record kind's rows: the kind's fields as columns (a flag or a
    number as INTEGER, the rest as TEXT), the journal's bookkeeping, its identity unique;
    open rows are found by ``holder`` (whose card or account)."""
    columns = [
        f"{f.name} {'INTEGER' if f.type in (int, bool) else 'TEXT'}"
        + ("" if f.nullable or f.name == "state" else " NOT NULL")
        for f in kind.fields
        if f.name not in ("state", "context")
    ]
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        f" {', '.join(columns)},"
        " state TEXT NOT NULL CHECK (state IN ('intent','settled','suspect','void')),"
        " context TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, resolved_at TEXT,"
        " upload_seq INTEGER UNIQUE, uploaded_at TEXT, parked_at TEXT, parked_reason TEXT,"
        f" UNIQUE ({', '.join(kind.identity)}))",
        f"CREATE INDEX IF NOT EXISTS {table}_open ON {table} ({holder}) WHERE state = 'intent'",
        f"CREATE INDEX IF NOT EXISTS {table}_upload ON {table} (upload_seq)"
        " WHERE uploaded_at IS NULL",
    )


# schema version -> the statements that bring the previous version up to it
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # parked: the gateway refused the row's content (4xx); kept, no longer resent
    2: (
        "ALTER TABLE txn ADD COLUMN parked_at TEXT",
        "ALTER TABLE txn ADD COLUMN parked_reason TEXT",
    ),
    # Electronic Cash sales: their own record (``EC_PURCHASE``) and sequence, one upload order
    3: _kind_table(EC_PURCHASE, "ec_txn"),
    # ride QR codes: their own record (``QR_RIDE``), found by code and by account
    4: (
        *_kind_table(QR_RIDE, "qr_txn", "user_account"),
        "CREATE UNIQUE INDEX IF NOT EXISTS qr_txn_code ON qr_txn (code_hash)",
        "CREATE INDEX IF NOT EXISTS qr_txn_account ON qr_txn (user_account, generated)",
    ),
    # a kiosk's online loads (``LOAD``): intent before CREDIT FOR LOAD; never uploaded
    5: _kind_table(LOAD, "load_txn", "card_serial"),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txn (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    terminal_id     TEXT    NOT NULL,
    terminal_seq    INTEGER NOT NULL,
    issuer_id       TEXT    NOT NULL,
    card_serial     TEXT    NOT NULL,
    txn_type        INTEGER NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    balance_before  INTEGER NOT NULL,
    card_atc        INTEGER NOT NULL,
    key_version     INTEGER NOT NULL,
    algorithm       INTEGER NOT NULL,
    txn_time        TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('intent','settled','suspect','void')),
    tac             TEXT,
    mac2            TEXT,
    mac2_verified   INTEGER,
    resolution      TEXT,
    context         TEXT    NOT NULL DEFAULT '{}',
    created_at      TEXT    NOT NULL,
    resolved_at     TEXT,
    upload_seq      INTEGER UNIQUE,
    uploaded_at     TEXT,
    UNIQUE (terminal_id, terminal_seq)
);
CREATE INDEX IF NOT EXISTS txn_open ON txn (card_serial) WHERE state = 'intent';
CREATE INDEX IF NOT EXISTS txn_card_time ON txn (card_serial, txn_time);
CREATE INDEX IF NOT EXISTS txn_upload ON txn (upload_seq) WHERE uploaded_at IS NULL;
"""


class JournalError(YikatongError):
    """A journal operation that would break its invariants (unknown row, wrong state...)."""


class JournalUnavailable(JournalError):
    """The journal file is removed, replaced or damaged, or a write to it failed: the
    terminal must stop taking cards. The message names the file and what to do."""


_WHAT_TO_DO = (
    "keep the file and its -wal/-shm for the operator; restore the journal from its "
    "backup or move it aside, then start again"
)


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journal row: the record's fields (``terminal.record.PURCHASE``, byte fields as
    hex text) and the journal's own (``BOOKKEEPING``)."""

    id: int
    terminal_id: str
    terminal_seq: int
    issuer_id: str
    card_serial: str
    txn_type: int
    amount: int
    balance_before: int
    card_atc: int
    key_version: int
    algorithm: int
    txn_time: datetime
    state: str
    tac: str | None
    mac2: str | None
    mac2_verified: bool | None
    resolution: str | None
    context: dict[str, Any]
    upload_seq: int | None
    uploaded_at: str | None
    parked_reason: str | None = None

    kind: ClassVar[RecordKind] = PURCHASE
    table: ClassVar[str] = "txn"
    label: ClassVar[str] = ""

    @classmethod
    def read(cls, r: sqlite3.Row) -> Self:
        """The row as SQLite returned it."""
        return cls(
            id=r["id"],
            **cls.kind.from_columns(r),
            upload_seq=r["upload_seq"],
            uploaded_at=r["uploaded_at"],
            parked_reason=r["parked_reason"],
        )

    @property
    def seq(self) -> int:
        """The sequence number of the row's identity (the PSAM's)."""
        return self.terminal_seq

    @property
    def balance_after(self) -> int:
        return self.balance_before - self.amount

    @property
    def card(self) -> str:
        """The card as listings show it (its serial)."""
        return self.card_serial

    def upload_record(self) -> dict[str, Any]:
        """The record as the gateway ingests it (identity: terminal id + terminal seq)."""
        return PURCHASE.to_wire({name: getattr(self, name) for name in PURCHASE.names})


@dataclass(frozen=True, slots=True)
class KindRow:
    """One row of a record kind kept as its values (byte fields as hex text, read with
    ``row["name"]``) and the journal's own. A kind's row class declares only where it
    lives and which of its fields a listing shows: ``kind``, ``table``, ``label`` (for
    errors), ``seq_field`` (its identity's number), ``card_field`` and ``balance_field``."""

    id: int
    values: dict[str, Any]
    upload_seq: int | None = None
    uploaded_at: str | None = None
    parked_reason: str | None = None

    kind: ClassVar[RecordKind]
    table: ClassVar[str]
    label: ClassVar[str]
    seq_field: ClassVar[str]
    card_field: ClassVar[str]
    balance_field: ClassVar[str | None] = None

    @classmethod
    def read(cls, r: sqlite3.Row) -> Self:
        """The row as SQLite returned it."""
        return cls(
            id=r["id"],
            values=cls.kind.from_columns(r),
            upload_seq=r["upload_seq"],
            uploaded_at=r["uploaded_at"],
            parked_reason=r["parked_reason"],
        )

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def state(self) -> str:
        return str(self.values["state"])

    @property
    def terminal_id(self) -> str:
        return str(self.values["terminal_id"])

    @property
    def seq(self) -> int:
        """The sequence number of the row's identity."""
        return int(self.values[self.seq_field])

    @property
    def txn_time(self) -> datetime:
        return self.values["txn_time"]  # type: ignore[no-any-return]

    @property
    def card(self) -> str:
        """The card (or rider) as listings show it; "-" while not known yet."""
        return str(self.values[self.card_field] or "-")

    @property
    def amount(self) -> int:
        return int(self.values["amount"])

    @property
    def txn_type(self) -> int | None:
        """The card transaction type; None for a kind without one (the column stays empty)."""
        value = self.values.get("txn_type")
        return None if value is None else int(value)

    @property
    def balance_before(self) -> int | None:
        """The purse's balance before; None for a kind without a purse."""
        return None if self.balance_field is None else int(self.values[self.balance_field])

    @property
    def resolution(self) -> str | None:
        return self.values["resolution"]  # type: ignore[no-any-return]

    def upload_record(self) -> dict[str, Any]:
        """The record as the gateway ingests it (identity: the kind's)."""
        return self.kind.to_wire(self.values)


class EcJournalRow(KindRow):
    """One Electronic Cash sale (``EC_PURCHASE``): its sequence is the terminal's EC
    sequence, the card its PAN ("-" before GPO answered)."""

    __slots__ = ()
    kind = EC_PURCHASE
    table = "ec_txn"
    label = "EC "
    seq_field = "ec_seq"
    card_field = "pan"
    balance_field = "ec_balance_before"


class QrJournalRow(KindRow):
    """One ride paid by a QR code (``QR_RIDE``): the rider is the code's user account; no
    purse (the platform is charged) and no card transaction type."""

    __slots__ = ()
    kind = QR_RIDE
    table = "qr_txn"
    label = "QR "
    seq_field = "qr_seq"
    card_field = "user_account"


class LoadJournalRow(KindRow):
    """One kiosk load (``LOAD``), found by the gateway's reference; never uploaded."""

    __slots__ = ()
    kind = LOAD
    table = "load_txn"
    label = "load "
    seq_field = "online_atc"
    card_field = "card_serial"
    balance_field = "balance_before"

    @property
    def reference(self) -> str:
        return str(self.values["reference"])


AnyRow = JournalRow | EcJournalRow | QrJournalRow | LoadJournalRow
R = TypeVar("R", JournalRow, EcJournalRow, QrJournalRow, LoadJournalRow)

# the row classes of the uploadable kinds; upload_seq is one order across their tables
UPLOADED_ROWS: tuple[type[JournalRow | KindRow], ...] = (JournalRow, EcJournalRow, QrJournalRow)
ROW_TABLES = tuple(cls.table for cls in UPLOADED_ROWS)


def _insert_sql(kind: RecordKind, table: str, *extra: str) -> str:
    """``INSERT`` of a kind's fields and the journal's ``extra`` columns into ``table``."""
    columns = (*kind.names, *extra)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# the EC record's fields written after GPO: the card's proof and the row's resolution
EC_PROOF_FIELDS = (
    "pan",
    "pan_seq",
    "cryptogram",
    "cid",
    "atc",
    "iad",
    "aip",
    "tvr",
    "dol_data",
    "ec_balance_after",
)

# the record's fields the intent row is written with; the rest come with its resolution
RESOLUTION_FIELDS = ("state", "tac", "mac2", "mac2_verified", "resolution")
INTENT_FIELDS = tuple(n for n in PURCHASE.names if n not in (*RESOLUTION_FIELDS, "context"))

# the journal's own columns beside the record's (tests/terminal/test_record.py checks both)
BOOKKEEPING = (
    "id",
    "created_at",
    "resolved_at",
    "upload_seq",
    "uploaded_at",
    "parked_at",
    "parked_reason",
)
_INSERT = _insert_sql(PURCHASE, "txn", "created_at")
_EC_INSERT = _insert_sql(EC_PURCHASE, "ec_txn", "created_at")
_QR_INSERT = _insert_sql(QR_RIDE, "qr_txn", "created_at", "resolved_at", "upload_seq")
_LOAD_INSERT = _insert_sql(LOAD, "load_txn", "created_at")


_NEXT_UPLOAD_SEQ = (
    "SELECT COALESCE(MAX(s), 0) + 1 FROM ("
    + " UNION ALL ".join(f"SELECT MAX(upload_seq) AS s FROM {t}" for t in ROW_TABLES)
    + ")"
)


# every table whose rows the journal keeps for good (none is ever deleted)
KEPT_TABLES = ("txn", "ec_txn", "qr_txn", "load_txn")


def _missing_row(db: sqlite3.Connection) -> str | None:
    """The first row of a kept table that is gone, or None. Ids are AUTOINCREMENT and no
    row is ever deleted, so each table holds ids 1..n and ``sqlite_sequence`` says n: a
    deleted row (the newest too) shows without any key. Whether a row's content is true
    is the TAC's to prove, at clearing."""
    issued = dict(db.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    for table in KEPT_TABLES:
        count, top = db.execute(f"SELECT COUNT(*), COALESCE(MAX(id), 0) FROM {table}").fetchone()
        top = max(top, issued.get(table, 0))
        if count != top:
            ids = {r[0] for r in db.execute(f"SELECT id FROM {table}")}
            first = min(set(range(1, top + 1)) - ids)
            return f"row {first} of {table} is missing ({count} rows, ids up to {top})"
    return None


class Journal:
    """One terminal's journal file. Thread-safe; every method is one durable transaction."""

    def __init__(self, path: str | Path, *, clock: Any = datetime.now, autocheckpoint: bool = True):
        """``autocheckpoint=False`` keeps WAL checkpoints (and their fsyncs) off the tap path;
        the owner then calls ``checkpoint()`` when idle. Each commit is durable either way.
        A damaged or unreadable file is a JournalUnavailable saying so, never a raw
        sqlite3 error."""
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        self.failure: str | None = None
        self._identity: tuple[int, int] | None = None
        try:
            self._db = connect(
                self.path,
                autocheckpoint=autocheckpoint,
                foreign_keys=True,
                row_factory=sqlite3.Row,
            )
        except OSError as exc:
            raise JournalUnavailable(
                f"journal {self.path} cannot be opened ({exc.strerror})"
            ) from None
        except NotDurable as exc:
            raise JournalError(f"journal {exc}") from None
        except sqlite3.Error as exc:
            raise JournalUnavailable(
                f"journal {self.path} is damaged ({exc}); {_WHAT_TO_DO}"
            ) from None
        try:
            self._db.executescript(SCHEMA)
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', '1')")
                self._migrate(db)
        except JournalUnavailable:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise JournalUnavailable(
                f"journal {self.path} is damaged ({exc}); {_WHAT_TO_DO}"
            ) from None
        if self.path != ":memory:":
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
            self.verify()

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Bring a journal written by an older version up to SCHEMA_VERSION, step by step."""
        version = int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                db.execute(statement)
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(target),))

    # -- watching the file --------------------------------------------------------------------
    def _fail(self, reason: str) -> JournalUnavailable:
        """Remember the first failure (all later writes are refused) and return the error."""
        if self.failure is None:
            self.failure = f"journal {self.path} {reason}; {_WHAT_TO_DO}"
        return JournalUnavailable(self.failure)

    def check_identity(self) -> None:
        """The path still names the file this journal opened: not removed, not replaced
        (two stat calls; cheap enough for every idle moment)."""
        if self.failure is not None:
            raise JournalUnavailable(self.failure)
        if self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise self._fail("was removed while in use: rows written since are lost") from None
        except OSError as exc:
            raise self._fail(f"cannot be checked ({exc.strerror})") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise self._fail("was replaced by another file while in use")

    def verify(self) -> None:
        """``check_identity`` and SQLite's ``quick_check`` over the file as it is on disk
        (a fresh read-only connection, so cached pages cannot hide damage)."""
        self.check_identity()
        if self._identity is None:
            return
        with self._lock:
            try:
                uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro"
                probe = sqlite3.connect(uri, uri=True)
                try:
                    result = probe.execute("PRAGMA quick_check").fetchone()[0]
                    missing = _missing_row(probe) if result == "ok" else None
                finally:
                    probe.close()
            except sqlite3.Error as exc:
                raise self._fail(f"is damaged ({exc})") from None
        if result != "ok":
            raise self._fail(f"is damaged (quick_check: {result})")
        if missing is not None:
            raise self._fail(f"was edited: {missing} (rows are never deleted)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (idle time: after a card has left)."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                raise self._fail(f"could not be checkpointed ({exc})") from None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction; any SQLite failure makes the journal unavailable
        (after a look at the file, so the error says whether it was removed or replaced)."""
        with self._lock:
            if self.failure is not None:
                raise JournalUnavailable(self.failure)
            try:
                with transaction(self._db) as db:
                    yield db
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                self.check_identity()
                raise self._fail(f"could not be written ({exc})") from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read; a SQLite failure (damaged pages) makes the journal unavailable."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                self.check_identity()
                raise self._fail(f"could not be read ({exc})") from None

    def _now(self) -> str:
        return self._clock().isoformat(timespec="seconds")

    # -- one kind's rows, by its row class ------------------------------------------------
    def _select(
        self,
        cls: type[R],
        where: str = "1",
        params: tuple[Any, ...] = (),
        *,
        order: str = "id",
        limit: int | None = None,
    ) -> list[R]:
        """The rows of ``cls``'s table that meet ``where``, in ``order``."""
        sql = f"SELECT * FROM {cls.table} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql, params = sql + " LIMIT ?", (*params, limit)
        with self._read():
            return [cls.read(r) for r in self._db.execute(sql, params).fetchall()]

    def _rows_in(self, cls: type[R], state: str | None) -> list[R]:
        """The kind's rows in the order they were journaled (of one state when asked)."""
        return self._select(cls) if state is None else self._select(cls, "state=?", (state,))

    def _open_for(self, cls: type[R], holder: str, value: str | bytes | None) -> list[R]:
        """The kind's rows still in intent (of one card or account when asked; bytes as the
        hex text they are stored as)."""
        if value is None:
            return self._select(cls, "state='intent'")
        if isinstance(value, bytes):
            value = value.hex().upper()
        return self._select(cls, f"state='intent' AND {holder}=?", (value,))

    def _export(self, cls: type[R], limit: int, include_uploaded: bool) -> list[R]:
        """The kind's settled and suspect rows in upload order (not yet acknowledged nor
        parked unless asked)."""
        where = "upload_seq IS NOT NULL" + (
            "" if include_uploaded else " AND uploaded_at IS NULL AND parked_at IS NULL"
        )
        return self._select(cls, where, order="upload_seq", limit=limit)

    @staticmethod
    def _fetch(db: sqlite3.Connection, cls: type[R], row_id: int) -> R:
        return cls.read(db.execute(f"SELECT * FROM {cls.table} WHERE id=?", (row_id,)).fetchone())

    @staticmethod
    def _intent_row(
        db: sqlite3.Connection, cls: type[AnyRow], row_id: int, columns: str = "state"
    ) -> sqlite3.Row:
        """The ``columns`` of a row still in intent; a JournalError when there is none."""
        cur = db.execute(f"SELECT {columns} FROM {cls.table} WHERE id=?", (row_id,)).fetchone()
        if cur is None:
            raise JournalError(f"no {cls.label}journal row {row_id}")
        if cur["state"] != INTENT:
            raise JournalError(f"{cls.label}row {row_id} is already {cur['state']}")
        return cur

    @staticmethod
    def _new_values(
        kind: RecordKind, what: str, values: dict[str, Any], **fixed: Any
    ) -> dict[str, Any]:
        """A new row's values: the caller's (only the kind's fields), ``fixed``, None for
        the rest, and the context ({} when not given)."""
        unknown = set(values) - set(kind.names)
        if unknown:
            raise JournalError(f"not {what} fields: {', '.join(sorted(unknown))}")
        row = dict.fromkeys(kind.names)
        row.update(values, **fixed)
        row["context"] = values.get("context") or {}
        return row

    # -- writes ---------------------------------------------------------------------------
    def record_intent(
        self,
        *,
        terminal_id: bytes,
        terminal_seq: int,
        issuer_id: bytes,
        card_serial: bytes,
        txn_type: int,
        amount: int,
        balance_before: int,
        card_atc: int,
        key_version: int,
        algorithm: int,
        txn_time: datetime,
        context: dict[str, Any] | None = None,
    ) -> int:
        """Write the intent row before DEBIT is sent (the record's ``INTENT_FIELDS`` and the
        role's context); returns its id."""
        if amount < 0:
            raise JournalError("amount must be a non-negative number of fen")
        values = {
            "terminal_id": terminal_id,
            "terminal_seq": terminal_seq,
            "issuer_id": issuer_id,
            "card_serial": card_serial,
            "txn_type": txn_type,
            "amount": amount,
            "balance_before": balance_before,
            "card_atc": card_atc,
            "key_version": key_version,
            "algorithm": algorithm,
            "txn_time": txn_time,
            "state": INTENT,
            "tac": None,
            "mac2": None,
            "mac2_verified": None,
            "resolution": None,
            "context": context or {},
        }
        with self._tx() as db:
            try:
                cur = db.execute(_INSERT, (*PURCHASE.to_columns(values), self._now()))
            except sqlite3.IntegrityError as exc:
                raise JournalError(
                    f"terminal {terminal_id.hex().upper()} seq {terminal_seq} already journaled:"
                    " the PSAM gave a number it gave before (reset, restored from an older"
                    " state, or one that advances only on a completed purchase); nothing was"
                    " debited"
                ) from exc
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def _resolve(
        self,
        row_id: int,
        state: str,
        resolution: str,
        *,
        tac: bytes | None = None,
        mac2: bytes | None = None,
        mac2_verified: bool | None = None,
    ) -> JournalRow:
        with self._tx() as db:
            self._intent_row(db, JournalRow, row_id)
            seq = None
            if state in UPLOADABLE:
                seq = db.execute(_NEXT_UPLOAD_SEQ).fetchone()[0]
            db.execute(
                "UPDATE txn SET state=?, tac=?, mac2=?, mac2_verified=?, resolution=?,"
                " resolved_at=?, upload_seq=? WHERE id=?",
                (
                    state,
                    PURCHASE["tac"].to_column(tac or None),
                    PURCHASE["mac2"].to_column(mac2 or None),
                    PURCHASE["mac2_verified"].to_column(mac2_verified),
                    resolution,
                    self._now(),
                    seq,
                    row_id,
                ),
            )
            return self._fetch(db, JournalRow, row_id)

    def settle(
        self,
        row_id: int,
        *,
        tac: bytes,
        mac2: bytes,
        mac2_verified: bool,
        resolution: str = "online",
    ) -> JournalRow:
        """The card debited and returned its proof."""
        state = SETTLED if mac2_verified or resolution != "online" else SUSPECT
        if not mac2_verified and resolution == "online":
            resolution = "online: PSAM refused MAC2"
        return self._resolve(
            row_id, state, resolution, tac=tac, mac2=mac2, mac2_verified=mac2_verified
        )

    def mark_suspect(
        self, row_id: int, reason: str, *, tac: bytes | None = None, mac2: bytes | None = None
    ) -> JournalRow:
        """The card debited but its proof is missing or unverified; clearing decides."""
        return self._resolve(row_id, SUSPECT, reason, tac=tac, mac2=mac2)

    def void(self, row_id: int, reason: str) -> JournalRow:
        """The card never debited."""
        return self._resolve(row_id, VOID, reason)

    def _by_upload_seq(
        self, upload_seqs: list[int], assignments: str, condition: str, values: tuple[Any, ...]
    ) -> int:
        """``UPDATE … SET assignments`` on the rows of every kind with these upload numbers
        that meet ``condition``, in one transaction; how many rows changed."""
        if not upload_seqs:
            return 0
        marks = ",".join("?" * len(upload_seqs))
        with self._tx() as db:
            return sum(
                db.execute(
                    f"UPDATE {table} SET {assignments} WHERE upload_seq IN ({marks})"
                    f" AND {condition}",
                    (*values, *upload_seqs),
                ).rowcount
                for table in ROW_TABLES
            )

    def mark_uploaded(self, upload_seqs: list[int]) -> int:
        """Record the gateway's acknowledgement; returns how many rows it newly covered."""
        return self._by_upload_seq(
            upload_seqs, "uploaded_at=?", "uploaded_at IS NULL", (self._now(),)
        )

    def mark_parked(self, upload_seqs: list[int], reason: str) -> int:
        """Keep rows the gateway refused (4xx) aside: not resent, still here with the reason."""
        return self._by_upload_seq(
            upload_seqs,
            "parked_at=?, parked_reason=?",
            "uploaded_at IS NULL AND parked_at IS NULL",
            (self._now(), reason),
        )

    def unpark(self, upload_seqs: list[int]) -> int:
        """Queue parked rows for upload again (after the cause was fixed at the gateway)."""
        return self._by_upload_seq(
            upload_seqs, "parked_at=NULL, parked_reason=NULL", "parked_at IS NOT NULL", ()
        )

    def parked(self) -> list[JournalRow | EcJournalRow | QrJournalRow]:
        """Rows of every kind the gateway refused, in upload order, each with its
        ``parked_reason``."""
        rows: list[JournalRow | EcJournalRow | QrJournalRow] = [
            *self._select(JournalRow, "parked_at IS NOT NULL"),
            *self._select(EcJournalRow, "parked_at IS NOT NULL"),
            *self._select(QrJournalRow, "parked_at IS NOT NULL"),
        ]
        return sorted(rows, key=lambda r: r.upload_seq or 0)

    # -- reads ------------------------------------------------------------------------------
    def get(self, row_id: int) -> JournalRow:
        rows = self._select(JournalRow, "id=?", (row_id,))
        if not rows:
            raise JournalError(f"no journal row {row_id}")
        return rows[0]

    def open_rows(self, card_serial: bytes | None = None) -> list[JournalRow]:
        """Rows still in intent: the torn transactions recovery must resolve."""
        return self._open_for(JournalRow, "card_serial", card_serial)

    def last_for_card(
        self,
        card_serial: bytes,
        *,
        states: tuple[str, ...] = UPLOADABLE,
        modes: tuple[str, ...] = (),
    ) -> JournalRow | None:
        """The card's newest row in ``states``; with ``modes``, the newest whose context names
        one of them (a bike's rent and return, a car park's entry and exit)."""
        marks = ",".join("?" * len(states))
        by_mode = (
            f" AND json_extract(context, '$.mode') IN ({','.join('?' * len(modes))})"
            if modes
            else ""
        )
        rows = self._select(
            JournalRow,
            f"card_serial=? AND state IN ({marks}){by_mode}",
            (card_serial.hex().upper(), *states, *modes),
            order="txn_time DESC, id DESC",
            limit=1,
        )
        return rows[0] if rows else None

    def export(self, *, limit: int = 500, include_uploaded: bool = False) -> list[JournalRow]:
        """Settled and suspect rows in upload order (not yet acknowledged nor parked unless
        asked)."""
        return self._export(JournalRow, limit, include_uploaded)

    def rows(self, state: str | None = None) -> list[JournalRow]:
        return self._rows_in(JournalRow, state)

    def last_seq(self, terminal_id: bytes) -> int | None:
        """The highest terminal sequence number journaled for ``terminal_id`` (None: none):
        the PSAM must be past it, or its next purchase would reuse a number."""
        with self._read():
            r = self._db.execute(
                "SELECT MAX(terminal_seq) FROM txn WHERE terminal_id=?",
                (terminal_id.hex().upper(),),
            ).fetchone()
        return None if r[0] is None else int(r[0])

    def totals(self) -> dict[str, tuple[int, int]]:
        """(count, amount) per state."""
        with self._read():
            cur = self._db.execute(
                "SELECT state, COUNT(*), COALESCE(SUM(amount), 0) FROM txn GROUP BY state"
            )
            out = {s: (0, 0) for s in STATES}
            out.update({r[0]: (r[1], r[2]) for r in cur.fetchall()})
            return out

    def pending_upload(self) -> int:
        """Rows of every kind settled or suspect and not yet acknowledged nor parked."""
        with self._read():
            return sum(
                self._db.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE upload_seq IS NOT NULL"
                    " AND uploaded_at IS NULL AND parked_at IS NULL"
                ).fetchone()[0]
                for table in ROW_TABLES
            )

    # -- Electronic Cash sales ----------------------------------------------------------------
    def next_ec_seq(self, terminal_id: bytes) -> int:
        """The terminal's next EC transaction sequence number (9F41): its own number space,
        kept in the journal since an EC sale involves no PSAM."""
        with self._read():
            r = self._db.execute(
                "SELECT COALESCE(MAX(ec_seq), 0) + 1 FROM ec_txn WHERE terminal_id=?",
                (terminal_id.hex().upper(),),
            ).fetchone()
        return int(r[0])

    def record_ec_intent(self, values: dict[str, Any]) -> int:
        """Write an EC sale's intent row before GPO (where the card debits): every field of
        ``EC_PURCHASE`` but the proof and the resolution; returns its id."""
        row = self._new_values(EC_PURCHASE, "EC record", values, state=INTENT, resolution=None)
        with self._tx() as db:
            try:
                cur = db.execute(_EC_INSERT, (*EC_PURCHASE.to_columns(row), self._now()))
            except sqlite3.IntegrityError as exc:
                raise JournalError(
                    f"terminal {EC_PURCHASE['terminal_id'].to_wire(row['terminal_id'])}"
                    f" EC seq {row['ec_seq']} already journaled ({exc})"
                ) from exc
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def resolve_ec(
        self, row_id: int, state: str, resolution: str, proof: dict[str, Any] | None = None
    ) -> EcJournalRow:
        """Settle, mark suspect or void an EC intent row; ``proof`` holds what the card
        answered (``EC_PROOF_FIELDS``), as far as it answered."""
        proof = proof or {}
        unknown = set(proof) - set(EC_PROOF_FIELDS)
        if unknown or state not in (SETTLED, SUSPECT, VOID):
            raise JournalError(f"cannot resolve an EC row to {state} with {sorted(unknown)}")
        sets = ", ".join(f"{n}=?" for n in proof)
        with self._tx() as db:
            self._intent_row(db, EcJournalRow, row_id)
            seq = db.execute(_NEXT_UPLOAD_SEQ).fetchone()[0] if state in UPLOADABLE else None
            db.execute(
                f"UPDATE ec_txn SET {sets + ', ' if sets else ''}state=?, resolution=?,"
                " resolved_at=?, upload_seq=? WHERE id=?",
                (
                    *(EC_PURCHASE[n].to_column(v) for n, v in proof.items()),
                    state,
                    resolution,
                    self._now(),
                    seq,
                    row_id,
                ),
            )
            return self._fetch(db, EcJournalRow, row_id)

    def ec_rows(self, state: str | None = None) -> list[EcJournalRow]:
        """EC sales in the order they were journaled (of one state when asked)."""
        return self._rows_in(EcJournalRow, state)

    def ec_rows_after(self, row_id: int) -> list[EcJournalRow]:
        """EC sales journaled after row ``row_id`` (what a torn sale's card did here since)."""
        return self._select(EcJournalRow, "id > ?", (row_id,))

    def open_ec_rows(self, pan: str | None = None) -> list[EcJournalRow]:
        """EC sales still in intent (a torn GPO): the card's next tap settles them by its ATC
        and balance, or they stay for the operator."""
        return self._open_for(EcJournalRow, "pan", pan)

    def export_ec(self, *, limit: int = 500, include_uploaded: bool = False) -> list[EcJournalRow]:
        """Settled and suspect EC sales in upload order (not yet acknowledged nor parked
        unless asked)."""
        return self._export(EcJournalRow, limit, include_uploaded)

    # -- ride QR codes --------------------------------------------------------------------------
    def record_qr_ride(self, values: dict[str, Any]) -> QrJournalRow:
        """Journal an accepted ride code, settled, in one durable transaction, before the gate
        opens: no card is debited (clearing charges the issuing platform), so there is no
        intent to resolve. ``qr_seq`` is the terminal's next; a code already journaled is a
        JournalError (the replay check should have refused it first)."""
        row = self._new_values(QR_RIDE, "QR ride", values, state=SETTLED)
        tid = QR_RIDE["terminal_id"].to_wire(row["terminal_id"])
        with self._tx() as db:
            row["qr_seq"] = db.execute(
                "SELECT COALESCE(MAX(qr_seq), 0) + 1 FROM qr_txn WHERE terminal_id=?", (tid,)
            ).fetchone()[0]
            seq = db.execute(_NEXT_UPLOAD_SEQ).fetchone()[0]
            now = self._now()
            try:
                cur = db.execute(_QR_INSERT, (*QR_RIDE.to_columns(row), now, now, seq))
            except sqlite3.IntegrityError as exc:
                raise JournalError(f"ride code already journaled ({exc})") from exc
            return self._fetch(db, QrJournalRow, int(cur.lastrowid))  # type: ignore[arg-type]

    def qr_rows(self) -> list[QrJournalRow]:
        """Ride-code rides in the order they were journaled."""
        return self._rows_in(QrJournalRow, None)

    def qr_seen(self, code_hash: bytes, user_account: str, generated: int) -> bool:
        """This code, or the same account's code of the same generation time, was journaled."""
        with self._read():
            r = self._db.execute(
                "SELECT 1 FROM qr_txn WHERE code_hash=? OR (user_account=? AND generated=?)",
                (code_hash.hex().upper(), user_account.upper(), generated),
            ).fetchone()
        return r is not None

    def last_qr_ride(self, user_account: str) -> QrJournalRow | None:
        """This account's newest journaled ride."""
        rows = self._select(
            QrJournalRow,
            "user_account=?",
            (user_account.upper(),),
            order="txn_time DESC, id DESC",
            limit=1,
        )
        return rows[0] if rows else None

    def export_qr(self, *, limit: int = 500, include_uploaded: bool = False) -> list[QrJournalRow]:
        """Ride-code rides in upload order (not yet acknowledged nor parked unless asked)."""
        return self._export(QrJournalRow, limit, include_uploaded)

    # -- kiosk loads ------------------------------------------------------------------------
    def record_load_intent(self, values: dict[str, Any]) -> int:
        """Write a load's intent row once the host gave MAC2 and before CREDIT FOR LOAD is
        sent: every ``LOAD`` field but the TAC and the resolution; returns its id."""
        row = self._new_values(LOAD, "load record", values, state=INTENT, tac=None, resolution=None)
        with self._tx() as db:
            try:
                cur = db.execute(_LOAD_INSERT, (*LOAD.to_columns(row), self._now()))
            except sqlite3.IntegrityError as exc:
                raise JournalError(f"load {row['reference']} already journaled") from exc
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def note_load_tac(self, row_id: int, tac: bytes) -> LoadJournalRow:
        """The card credited and answered its TAC; the row stays open until the gateway has
        confirmed it (so a confirmation lost on the way is sent again)."""
        with self._tx() as db:
            n = db.execute(
                "UPDATE load_txn SET tac=? WHERE id=? AND state='intent'",
                (LOAD["tac"].to_column(tac), row_id),
            ).rowcount
            if n != 1:
                raise JournalError(f"no open load row {row_id}")
            return self._fetch(db, LoadJournalRow, row_id)

    def resolve_load(
        self, row_id: int, state: str, resolution: str, *, tac: bytes | None = None
    ) -> LoadJournalRow:
        """Settle (the gateway confirmed the TAC), mark suspect (credited, TAC refused) or
        void (the card never credited) an open load row."""
        if state not in (SETTLED, SUSPECT, VOID):
            raise JournalError(f"cannot resolve a load row to {state}")
        with self._tx() as db:
            cur = self._intent_row(db, LoadJournalRow, row_id, "state, tac")
            db.execute(
                "UPDATE load_txn SET state=?, tac=?, resolution=?, resolved_at=? WHERE id=?",
                (
                    state,
                    LOAD["tac"].to_column(tac) if tac else cur["tac"],
                    resolution,
                    self._now(),
                    row_id,
                ),
            )
            return self._fetch(db, LoadJournalRow, row_id)

    def load_rows(self, state: str | None = None) -> list[LoadJournalRow]:
        """Loads in the order they were journaled (of one state when asked)."""
        return self._rows_in(LoadJournalRow, state)

    def open_loads(self, card_serial: bytes | None = None) -> list[LoadJournalRow]:
        """Loads still in intent (torn after MAC2): the card's next visit settles or voids
        them; those with a TAC only wait for the gateway's confirmation."""
        return self._open_for(LoadJournalRow, "card_serial", card_serial)

    def check_integrity(self) -> None:
        """SQLite's own integrity check; raises JournalError on any problem."""
        with self._read():
            result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise JournalError(f"journal {self.path} failed integrity check: {result}")
