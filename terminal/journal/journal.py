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
from typing import Any

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

# the tables holding uploadable rows; upload_seq is one order across all of them
ROW_TABLES = ("txn", "ec_txn", "qr_txn")

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

    kind = PURCHASE

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
class EcJournalRow:
    """One Electronic Cash sale in the journal: the record's fields
    (``terminal.record.EC_PURCHASE``, byte fields as hex text, read with ``row["atc"]``)
    and the journal's own."""

    id: int
    values: dict[str, Any]
    upload_seq: int | None
    uploaded_at: str | None
    parked_reason: str | None = None

    kind = EC_PURCHASE

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
        """The sequence number of the row's identity (the terminal's EC sequence)."""
        return int(self.values["ec_seq"])

    @property
    def txn_time(self) -> datetime:
        return self.values["txn_time"]  # type: ignore[no-any-return]

    @property
    def card(self) -> str:
        """The card as listings show it (its PAN; "-" before GPO answered)."""
        return str(self.values["pan"] or "-")

    @property
    def amount(self) -> int:
        return int(self.values["amount"])

    @property
    def txn_type(self) -> int:
        return int(self.values["txn_type"])

    @property
    def balance_before(self) -> int:
        return int(self.values["ec_balance_before"])

    @property
    def resolution(self) -> str | None:
        return self.values["resolution"]  # type: ignore[no-any-return]

    def upload_record(self) -> dict[str, Any]:
        """The record as the gateway ingests it (identity: terminal id + EC sequence)."""
        return EC_PURCHASE.to_wire(self.values)


@dataclass(frozen=True, slots=True)
class QrJournalRow:
    """One ride paid by a QR code: the record's fields (``terminal.record.QR_RIDE``, byte
    fields as hex text, read with ``row["user_account"]``) and the journal's own."""

    id: int
    values: dict[str, Any]
    upload_seq: int | None
    uploaded_at: str | None
    parked_reason: str | None = None

    kind = QR_RIDE

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
        """The sequence number of the row's identity (the terminal's ride-code sequence)."""
        return int(self.values["qr_seq"])

    @property
    def txn_time(self) -> datetime:
        return self.values["txn_time"]  # type: ignore[no-any-return]

    @property
    def card(self) -> str:
        """The rider as listings show it (the code's user account)."""
        return str(self.values["user_account"])

    @property
    def amount(self) -> int:
        return int(self.values["amount"])

    @property
    def resolution(self) -> str | None:
        return self.values["resolution"]  # type: ignore[no-any-return]

    txn_type = None  # no card transaction type: the listing's column stays empty
    balance_before = None  # no purse: the platform is charged

    def upload_record(self) -> dict[str, Any]:
        """The record as the gateway ingests it (identity: terminal id + ride-code seq)."""
        return QR_RIDE.to_wire(self.values)


@dataclass(frozen=True, slots=True)
class LoadJournalRow:
    """One kiosk load in the journal: the ``terminal.record.LOAD`` fields (bytes as hex
    text, read with ``row["online_atc"]``) and the row id."""

    id: int
    values: dict[str, Any]

    kind = LOAD

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def state(self) -> str:
        return str(self.values["state"])

    @property
    def reference(self) -> str:
        return str(self.values["reference"])


def _load_row(r: sqlite3.Row) -> LoadJournalRow:
    return LoadJournalRow(id=r["id"], values=LOAD.from_columns(r))


_LOAD_INSERT = (
    f"INSERT INTO load_txn ({', '.join(LOAD.names)}, created_at)"
    f" VALUES ({', '.join('?' * (len(LOAD.names) + 1))})"
)


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
_INSERT = (
    f"INSERT INTO txn ({', '.join(PURCHASE.names)}, created_at)"
    f" VALUES ({', '.join('?' * (len(PURCHASE.names) + 1))})"
)


def _row(r: sqlite3.Row) -> JournalRow:
    return JournalRow(
        id=r["id"],
        **PURCHASE.from_columns(r),
        upload_seq=r["upload_seq"],
        uploaded_at=r["uploaded_at"],
        parked_reason=r["parked_reason"],
    )


def _ec_row(r: sqlite3.Row) -> EcJournalRow:
    return EcJournalRow(
        id=r["id"],
        values=EC_PURCHASE.from_columns(r),
        upload_seq=r["upload_seq"],
        uploaded_at=r["uploaded_at"],
        parked_reason=r["parked_reason"],
    )


_EC_INSERT = (
    f"INSERT INTO ec_txn ({', '.join(EC_PURCHASE.names)}, created_at)"
    f" VALUES ({', '.join('?' * (len(EC_PURCHASE.names) + 1))})"
)
_QR_INSERT = (
    f"INSERT INTO qr_txn ({', '.join(QR_RIDE.names)}, created_at, resolved_at, upload_seq)"
    f" VALUES ({', '.join('?' * (len(QR_RIDE.names) + 3))})"
)


def _qr_row(r: sqlite3.Row) -> QrJournalRow:
    return QrJournalRow(
        id=r["id"],
        values=QR_RIDE.from_columns(r),
        upload_seq=r["upload_seq"],
        uploaded_at=r["uploaded_at"],
        parked_reason=r["parked_reason"],
    )


_NEXT_UPLOAD_SEQ = (
    "SELECT COALESCE(MAX(s), 0) + 1 FROM ("
    + " UNION ALL ".join(f"SELECT MAX(upload_seq) AS s FROM {t}" for t in ROW_TABLES)
    + ")"
)


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
                finally:
                    probe.close()
            except sqlite3.Error as exc:
                raise self._fail(f"is damaged ({exc})") from None
        if result != "ok":
            raise self._fail(f"is damaged (quick_check: {result})")

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
                    f"terminal {terminal_id.hex().upper()} seq {terminal_seq} already journaled"
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
            cur = db.execute("SELECT state FROM txn WHERE id = ?", (row_id,)).fetchone()
            if cur is None:
                raise JournalError(f"no journal row {row_id}")
            if cur["state"] != INTENT:
                raise JournalError(f"row {row_id} is already {cur['state']}")
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
            return _row(db.execute("SELECT * FROM txn WHERE id=?", (row_id,)).fetchone())

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
        with self._read():
            ep = self._db.execute("SELECT * FROM txn WHERE parked_at IS NOT NULL").fetchall()
            ec = self._db.execute("SELECT * FROM ec_txn WHERE parked_at IS NOT NULL").fetchall()
            qr = self._db.execute("SELECT * FROM qr_txn WHERE parked_at IS NOT NULL").fetchall()
        rows: list[JournalRow | EcJournalRow | QrJournalRow] = [
            *map(_row, ep),
            *map(_ec_row, ec),
            *map(_qr_row, qr),
        ]
        return sorted(rows, key=lambda r: r.upload_seq or 0)

    # -- reads ------------------------------------------------------------------------------
    def get(self, row_id: int) -> JournalRow:
        with self._read():
            r = self._db.execute("SELECT * FROM txn WHERE id=?", (row_id,)).fetchone()
        if r is None:
            raise JournalError(f"no journal row {row_id}")
        return _row(r)

    def open_rows(self, card_serial: bytes | None = None) -> list[JournalRow]:
        """Rows still in intent: the torn transactions recovery must resolve."""
        with self._read():
            if card_serial is None:
                rows = self._db.execute("SELECT * FROM txn WHERE state='intent' ORDER BY id")
            else:
                rows = self._db.execute(
                    "SELECT * FROM txn WHERE state='intent' AND card_serial=? ORDER BY id",
                    (card_serial.hex().upper(),),
                )
            return [_row(r) for r in rows.fetchall()]

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
        with self._read():
            r = self._db.execute(
                f"SELECT * FROM txn WHERE card_serial=? AND state IN ({marks}){by_mode}"
                " ORDER BY txn_time DESC, id DESC LIMIT 1",
                (card_serial.hex().upper(), *states, *modes),
            ).fetchone()
        return None if r is None else _row(r)

    def export(self, *, limit: int = 500, include_uploaded: bool = False) -> list[JournalRow]:
        """Settled and suspect rows in upload order (not yet acknowledged nor parked unless
        asked)."""
        where = "upload_seq IS NOT NULL" + (
            "" if include_uploaded else " AND uploaded_at IS NULL AND parked_at IS NULL"
        )
        with self._read():
            rows = self._db.execute(
                f"SELECT * FROM txn WHERE {where} ORDER BY upload_seq LIMIT ?", (limit,)
            )
            return [_row(r) for r in rows.fetchall()]

    def rows(self, state: str | None = None) -> list[JournalRow]:
        with self._read():
            if state is None:
                cur = self._db.execute("SELECT * FROM txn ORDER BY id")
            else:
                cur = self._db.execute("SELECT * FROM txn WHERE state=? ORDER BY id", (state,))
            return [_row(r) for r in cur.fetchall()]

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
        unknown = set(values) - set(EC_PURCHASE.names)
        if unknown:
            raise JournalError(f"not EC record fields: {', '.join(sorted(unknown))}")
        row = dict.fromkeys(EC_PURCHASE.names)
        row.update(values, state=INTENT, resolution=None, context=values.get("context") or {})
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
            cur = db.execute("SELECT state FROM ec_txn WHERE id = ?", (row_id,)).fetchone()
            if cur is None:
                raise JournalError(f"no EC journal row {row_id}")
            if cur["state"] != INTENT:
                raise JournalError(f"EC row {row_id} is already {cur['state']}")
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
            return _ec_row(db.execute("SELECT * FROM ec_txn WHERE id=?", (row_id,)).fetchone())

    def ec_rows(self, state: str | None = None) -> list[EcJournalRow]:
        """EC sales in the order they were journaled (of one state when asked)."""
        with self._read():
            if state is None:
                cur = self._db.execute("SELECT * FROM ec_txn ORDER BY id")
            else:
                cur = self._db.execute("SELECT * FROM ec_txn WHERE state=? ORDER BY id", (state,))
            return [_ec_row(r) for r in cur.fetchall()]

    def ec_rows_after(self, row_id: int) -> list[EcJournalRow]:
        """EC sales journaled after row ``row_id`` (what a torn sale's card did here since)."""
        with self._read():
            cur = self._db.execute("SELECT * FROM ec_txn WHERE id > ? ORDER BY id", (row_id,))
            return [_ec_row(r) for r in cur.fetchall()]

    def open_ec_rows(self, pan: str | None = None) -> list[EcJournalRow]:
        """EC sales still in intent (a torn GPO): the card's next tap settles them by its ATC
        and balance, or they stay for the operator."""
        rows = self.ec_rows(INTENT)
        return [r for r in rows if pan is None or r["pan"] == pan]

    def export_ec(self, *, limit: int = 500, include_uploaded: bool = False) -> list[EcJournalRow]:
        """Settled and suspect EC sales in upload order (not yet acknowledged nor parked
        unless asked)."""
        where = "upload_seq IS NOT NULL" + (
            "" if include_uploaded else " AND uploaded_at IS NULL AND parked_at IS NULL"
        )
        with self._read():
            rows = self._db.execute(
                f"SELECT * FROM ec_txn WHERE {where} ORDER BY upload_seq LIMIT ?", (limit,)
            )
            return [_ec_row(r) for r in rows.fetchall()]

    # -- ride QR codes --------------------------------------------------------------------------
    def record_qr_ride(self, values: dict[str, Any]) -> QrJournalRow:
        """Journal an accepted ride code, settled, in one durable transaction, before the gate
        opens: no card is debited (clearing charges the issuing platform), so there is no
        intent to resolve. ``qr_seq`` is the terminal's next; a code already journaled is a
        JournalError (the replay check should have refused it first)."""
        unknown = set(values) - set(QR_RIDE.names)
        if unknown:
            raise JournalError(f"not QR ride fields: {', '.join(sorted(unknown))}")
        row = dict.fromkeys(QR_RIDE.names)
        row.update(values, state=SETTLED, context=values.get("context") or {})
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
            return _qr_row(
                db.execute("SELECT * FROM qr_txn WHERE id=?", (cur.lastrowid,)).fetchone()
            )

    def qr_rows(self) -> list[QrJournalRow]:
        """Ride-code rides in the order they were journaled."""
        with self._read():
            return [_qr_row(r) for r in self._db.execute("SELECT * FROM qr_txn ORDER BY id")]

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
        with self._read():
            r = self._db.execute(
                "SELECT * FROM qr_txn WHERE user_account=? ORDER BY txn_time DESC, id DESC LIMIT 1",
                (user_account.upper(),),
            ).fetchone()
        return None if r is None else _qr_row(r)

    def export_qr(self, *, limit: int = 500, include_uploaded: bool = False) -> list[QrJournalRow]:
        """Ride-code rides in upload order (not yet acknowledged nor parked unless asked)."""
        where = "upload_seq IS NOT NULL" + (
            "" if include_uploaded else " AND uploaded_at IS NULL AND parked_at IS NULL"
        )
        with self._read():
            rows = self._db.execute(
                f"SELECT * FROM qr_txn WHERE {where} ORDER BY upload_seq LIMIT ?", (limit,)
            )
            return [_qr_row(r) for r in rows.fetchall()]

    # -- kiosk loads ------------------------------------------------------------------------
    def record_load_intent(self, values: dict[str, Any]) -> int:
        """Write a load's intent row once the host gave MAC2 and before CREDIT FOR LOAD is
        sent: every ``LOAD`` field but the TAC and the resolution; returns its id."""
        unknown = set(values) - set(LOAD.names)
        if unknown:
            raise JournalError(f"not load record fields: {', '.join(sorted(unknown))}")
        row = dict.fromkeys(LOAD.names)
        row.update(values, state=INTENT, tac=None, resolution=None)
        row["context"] = values.get("context") or {}
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
            return _load_row(db.execute("SELECT * FROM load_txn WHERE id=?", (row_id,)).fetchone())

    def resolve_load(
        self, row_id: int, state: str, resolution: str, *, tac: bytes | None = None
    ) -> LoadJournalRow:
        """Settle (the gateway confirmed the TAC), mark suspect (credited, TAC refused) or
        void (the card never credited) an open load row."""
        if state not in (SETTLED, SUSPECT, VOID):
            raise JournalError(f"cannot resolve a load row to {state}")
        with self._tx() as db:
            cur = db.execute("SELECT state, tac FROM load_txn WHERE id=?", (row_id,)).fetchone()
            if cur is None:
                raise JournalError(f"no load journal row {row_id}")
            if cur["state"] != INTENT:
                raise JournalError(f"load row {row_id} is already {cur['state']}")
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
            return _load_row(db.execute("SELECT * FROM load_txn WHERE id=?", (row_id,)).fetchone())

    def load_rows(self, state: str | None = None) -> list[LoadJournalRow]:
        """Loads in the order they were journaled (of one state when asked)."""
        with self._read():
            if state is None:
                cur = self._db.execute("SELECT * FROM load_txn ORDER BY id")
            else:
                cur = self._db.execute("SELECT * FROM load_txn WHERE state=? ORDER BY id", (state,))
            return [_load_row(r) for r in cur.fetchall()]

    def open_loads(self, card_serial: bytes | None = None) -> list[LoadJournalRow]:
        """Loads still in intent (torn after MAC2): the card's next visit settles or voids
        them; those with a TAC only wait for the gateway's confirmation."""
        with self._read():
            if card_serial is None:
                cur = self._db.execute("SELECT * FROM load_txn WHERE state='intent' ORDER BY id")
            else:
                cur = self._db.execute(
                    "SELECT * FROM load_txn WHERE state='intent' AND card_serial=? ORDER BY id",
                    (card_serial.hex().upper(),),
                )
            return [_load_row(r) for r in cur.fetchall()]

    def check_integrity(self) -> None:
        """SQLite's own integrity check; raises JournalError on any problem."""
        with self._read():
            result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise JournalError(f"journal {self.path} failed integrity check: {result}")
