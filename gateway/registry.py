"""The card centre's book of cards in a local SQLite file (a ``CardRegistry``).

One person one card is enforced twice: by the checks in ``begin_issue`` (which give the
operator a reason) and by a partial unique index on (ID number, card kind) over pending
and active records, so no interleaving of two desks can create a second live card.
Every change bumps a registry-wide revision stored on the changed row; ``export``
returns records changed after a revision, as JSON the gateway can ingest.

Card numbers (``card_number_for``: ``3100`` ‖ the issuer's city ‖ an 11-digit sequence)
come from blocks the card centre leased to this desk (``hold``), used in order, oldest
block first; a desk without an unused number refuses (``NoNumbers``). The blocks and the
position in them are rows of this file, so a restart goes on where the desk stopped.
Only a book made with ``first_sequence`` numbers cards itself: a card centre with one desk
and no gateway (the demo, tests); such numbers are refused by a gateway.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from terminal.roles.registry import (
    Applicant,
    CardRecord,
    CardState,
    DuplicateCard,
    IssuanceInProgress,
    NoNumbers,
    NotThisDesk,
    NumberBlock,
    RegistryRefused,
    ReplacementRefused,
    UnknownCard,
    card_number_for,
    serial_of,
)
from terminal.sqlite import connect, transaction

DEFAULT_FIRST_SEQUENCE = 10_000_001

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    card_number     TEXT PRIMARY KEY,
    serial          TEXT NOT NULL UNIQUE,
    issuer_id       TEXT NOT NULL,
    chip_id         TEXT,
    name            TEXT NOT NULL,
    id_type         INTEGER NOT NULL,
    id_number       TEXT NOT NULL,
    card_kind       INTEGER NOT NULL,
    card_type       INTEGER NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('pending', 'active', 'lost', 'replaced', 'void')),
    created_at      TEXT NOT NULL,
    activated_at    TEXT,
    lost_at         TEXT,
    hotlist_version INTEGER,
    replaces        TEXT REFERENCES cards (card_number),
    replaced_by     TEXT REFERENCES cards (card_number),
    carry_fen       INTEGER NOT NULL DEFAULT 0 CHECK (carry_fen >= 0),
    carry_loaded_at TEXT,
    balance_fen     INTEGER CHECK (balance_fen >= 0),
    balance_as_of   TEXT,
    revision        INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_card_per_kind
    ON cards (id_number, card_kind) WHERE state IN ('pending', 'active');
CREATE INDEX IF NOT EXISTS cards_by_id ON cards (id_number);
CREATE INDEX IF NOT EXISTS cards_by_revision ON cards (revision);
CREATE TABLE IF NOT EXISTS sequences (issuer_id TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    block_id  INTEGER PRIMARY KEY,
    issuer_id TEXT NOT NULL,
    desk_id   TEXT NOT NULL,
    first     INTEGER NOT NULL,
    last      INTEGER NOT NULL,
    next      INTEGER NOT NULL CHECK (next BETWEEN first AND last + 1)
);
CREATE TABLE IF NOT EXISTS desk (one INTEGER PRIMARY KEY CHECK (one = 1), desk_id TEXT NOT NULL);
"""

_COLUMNS = (
    "card_number, issuer_id, chip_id, name, id_type, id_number, card_kind, card_type, state, "
    "created_at, activated_at, lost_at, hotlist_version, replaces, replaced_by, carry_fen, "
    "carry_loaded_at, balance_fen, balance_as_of, revision"
)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _record(row: sqlite3.Row) -> CardRecord:
    return CardRecord(
        card_number=row["card_number"],
        issuer_id=bytes.fromhex(row["issuer_id"]),
        chip_id=bytes.fromhex(row["chip_id"]) if row["chip_id"] else None,
        holder=Applicant(
            name=row["name"],
            id_number=row["id_number"],
            card_kind=row["card_kind"],
            id_type=row["id_type"],
            card_type=row["card_type"],
        ),
        state=CardState(row["state"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        revision=row["revision"],
        activated_at=_ts(row["activated_at"]),
        lost_at=_ts(row["lost_at"]),
        hotlist_version=row["hotlist_version"],
        replaces=row["replaces"],
        replaced_by=row["replaced_by"],
        carry_fen=row["carry_fen"],
        carry_loaded_at=_ts(row["carry_loaded_at"]),
        balance_fen=row["balance_fen"],
        balance_as_of=_ts(row["balance_as_of"]),
    )


class SqliteCardRegistry:
    """A ``CardRegistry`` in one SQLite file (``None`` keeps it in memory).

    ``replacement_wait`` is the time between a loss report and the earliest replacement:
    offline terminals may still upload the lost card's last debits during it, and the
    carried balance is the last known one when the replacement starts.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        clock: Callable[[], datetime] = datetime.now,
        replacement_wait: timedelta = timedelta(0),
        first_sequence: int | None = None,
    ):
        self._clock = clock
        self.replacement_wait = replacement_wait
        self._first_sequence = first_sequence
        self._lock = threading.RLock()
        self._db = connect(path, foreign_keys=True, row_factory=sqlite3.Row)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- plumbing -------------------------------------------------------------------------
    def _now(self) -> str:
        return self._clock().replace(microsecond=0).isoformat()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db) as db:
            yield db

    def _revision(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        revision = (row[0] if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (revision,))
        return revision

    def _update(self, db: sqlite3.Connection, card_number: str, **fields: Any) -> None:
        fields["revision"] = self._revision(db)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        db.execute(
            f"UPDATE cards SET {assignments} WHERE card_number = ?",
            (*fields.values(), card_number),
        )

    def _get(self, db: sqlite3.Connection, card_number: str) -> CardRecord:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM cards WHERE card_number = ?", (card_number,)
        ).fetchone()
        if row is None:
            raise UnknownCard(f"no card {card_number} in the registry")
        return _record(row)

    def _where(self, db: sqlite3.Connection, clause: str, *args: Any) -> list[CardRecord]:
        rows = db.execute(f"SELECT {_COLUMNS} FROM cards WHERE {clause}", args).fetchall()
        return [_record(r) for r in rows]

    def _allocate(self, db: sqlite3.Connection, issuer_id: bytes) -> str:
        key = issuer_id.hex().upper()
        block = db.execute(
            "SELECT block_id, next FROM blocks WHERE issuer_id = ? AND next <= last"
            " ORDER BY block_id LIMIT 1",
            (key,),
        ).fetchone()
        if block is not None:
            db.execute("UPDATE blocks SET next = next + 1 WHERE block_id = ?", (block[0],))
            return card_number_for(issuer_id, block[1])
        if self._first_sequence is None:
            raise NoNumbers(
                f"this desk holds no unused card number of issuer {key}: lease a block from "
                "the card centre while online (ykt issue --lease N --gateway URL)"
            )
        row = db.execute("SELECT next FROM sequences WHERE issuer_id = ?", (key,)).fetchone()
        sequence = row[0] if row else self._first_sequence
        db.execute("INSERT OR REPLACE INTO sequences VALUES (?, ?)", (key, sequence + 1))
        return card_number_for(issuer_id, sequence)

    # -- numbers leased from the card centre ----------------------------------------------
    @property
    def desk_id(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT desk_id FROM desk").fetchone()
        return None if row is None else str(row[0])

    def hold(self, block: NumberBlock) -> None:
        with self._tx() as db:
            row = db.execute("SELECT desk_id FROM desk").fetchone()
            if row is not None and row[0] != block.desk_id:
                raise NotThisDesk(
                    f"this book belongs to desk {row[0]}; block {block.block_id} was leased "
                    f"to desk {block.desk_id}"
                )
            if row is None:
                db.execute("INSERT INTO desk VALUES (1, ?)", (block.desk_id,))
            db.execute(
                "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                (
                    block.block_id,
                    block.issuer_id.hex().upper(),
                    block.desk_id,
                    block.first,
                    block.last,
                    block.first,
                ),
            )

    def numbers_left(self, issuer_id: bytes) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(last - next + 1), 0) FROM blocks WHERE issuer_id = ?",
                (issuer_id.hex().upper(),),
            ).fetchone()
        return int(row[0])

    def blocks(self) -> list[tuple[NumberBlock, int]]:
        """Every block held, oldest first, with its next unused sequence."""
        with self._lock:
            rows = self._db.execute(
                "SELECT block_id, issuer_id, desk_id, first, last, next FROM blocks"
                " ORDER BY block_id"
            ).fetchall()
        return [(NumberBlock(r[0], bytes.fromhex(r[1]), r[2], r[3], r[4]), r[5]) for r in rows]

    def _insert(
        self,
        db: sqlite3.Connection,
        issuer_id: bytes,
        applicant: Applicant,
        chip_id: bytes,
        *,
        replaces: str | None = None,
        carry_fen: int = 0,
    ) -> CardRecord:
        number = self._allocate(db, issuer_id)
        db.execute(
            "INSERT INTO cards (card_number, serial, issuer_id, chip_id, name, id_type, "
            "id_number, card_kind, card_type, state, created_at, replaces, carry_fen, revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                number,
                _serial_hex(number),
                issuer_id.hex().upper(),
                chip_id.hex().upper(),
                applicant.name,
                applicant.id_type,
                applicant.id_number,
                applicant.card_kind,
                applicant.card_type,
                self._now(),
                replaces,
                carry_fen,
                self._revision(db),
            ),
        )
        return self._get(db, number)

    def _void_other_pending_on_chip(
        self, db: sqlite3.Connection, chip_id: bytes, keep: str | None
    ) -> None:
        for r in self._where(db, "chip_id = ? AND state = 'pending'", chip_id.hex().upper()):
            if r.card_number != keep:
                self._update(db, r.card_number, state=CardState.VOID.value)

    # -- issuing --------------------------------------------------------------------------
    def begin_issue(self, issuer_id: bytes, applicant: Applicant, chip_id: bytes) -> CardRecord:
        with self._tx() as db:
            mine = self._where(
                db,
                "id_number = ? AND card_kind = ? AND state IN ('pending', 'active', 'lost')",
                applicant.id_number,
                applicant.card_kind,
            )
            for r in mine:
                if r.state == CardState.ACTIVE:
                    raise DuplicateCard(
                        f"ID number already holds active card {r.card_number} of kind "
                        f"{applicant.card_kind} (one person, one card)"
                    )
                if r.state == CardState.LOST:
                    raise DuplicateCard(
                        f"card {r.card_number} of this person is reported lost: "
                        "replace it so its balance carries over"
                    )
                if r.chip_id != chip_id:
                    raise IssuanceInProgress(
                        f"card {r.card_number} for this person is being personalised on chip "
                        f"{(r.chip_id or b'').hex().upper()}: finish it on that card, or "
                        "abandon it if that chip is destroyed"
                    )
                if r.replaces is not None:
                    raise IssuanceInProgress(
                        f"card {r.card_number} on this chip replaces {r.replaces}: "
                        "resume the replacement"
                    )
                self._void_other_pending_on_chip(db, chip_id, keep=r.card_number)
                return r
            self._void_other_pending_on_chip(db, chip_id, keep=None)
            return self._insert(db, issuer_id, applicant, chip_id)

    def begin_replacement(self, old_card_number: str, chip_id: bytes) -> CardRecord:
        with self._tx() as db:
            old = self._get(db, old_card_number)
            if old.state == CardState.REPLACED:
                raise ReplacementRefused(
                    f"card {old_card_number} was already replaced by {old.replaced_by}"
                )
            under_way = self._where(
                db, "replaces = ? AND state IN ('pending', 'active')", old_card_number
            )
            for r in under_way:
                if r.state == CardState.PENDING and r.chip_id == chip_id:
                    return r
                raise ReplacementRefused(
                    f"card {old_card_number} is already being replaced by {r.card_number} "
                    f"({r.state.value})"
                )
            if old.state != CardState.LOST:
                raise ReplacementRefused(
                    f"card {old_card_number} is {old.state.value}; only a lost card is replaced"
                )
            if old.hotlist_version is None:
                raise ReplacementRefused(f"card {old_card_number} is not in the hotlist yet")
            earliest = (old.lost_at or old.created_at) + self.replacement_wait
            if self._clock() < earliest:
                raise ReplacementRefused(
                    f"card {old_card_number} can be replaced from {earliest:%Y-%m-%d %H:%M} "
                    "(late offline transactions are still arriving)"
                )
            self._void_other_pending_on_chip(db, chip_id, keep=None)
            return self._insert(
                db,
                old.issuer_id,
                old.holder,
                chip_id,
                replaces=old_card_number,
                carry_fen=old.balance_fen or 0,
            )

    def _move(self, card_number: str, came: CardState, to: CardState, **fields: Any) -> CardRecord:
        """Move a card that ``came`` to state ``to`` (setting ``fields`` too); a card already
        there is answered as it is (the step is repeated safely), any other is refused."""
        with self._tx() as db:
            r = self._get(db, card_number)
            if r.state == to:
                return r
            if r.state != came:
                raise RegistryRefused(f"card {card_number} is {r.state.value}, not {came.value}")
            self._update(db, card_number, state=to.value, **fields)
            return self._get(db, card_number)

    def activate(self, card_number: str) -> CardRecord:
        now = self._now()
        return self._move(
            card_number,
            CardState.PENDING,
            CardState.ACTIVE,
            activated_at=now,
            balance_fen=0,
            balance_as_of=now,
        )

    def record_carry_loaded(self, card_number: str) -> CardRecord:
        with self._tx() as db:
            r = self._get(db, card_number)
            if r.replaces is None or r.state != CardState.ACTIVE:
                raise RegistryRefused(f"card {card_number} is no active replacement")
            if r.carry_loaded_at is not None:
                return r
            now = self._now()
            self._update(
                db, card_number, carry_loaded_at=now, balance_fen=r.carry_fen, balance_as_of=now
            )
            self._update(db, r.replaces, state=CardState.REPLACED.value, replaced_by=card_number)
            return self._get(db, card_number)

    def abandon(self, card_number: str) -> CardRecord:
        with self._tx() as db:
            r = self._get(db, card_number)
            if r.state != CardState.PENDING:
                raise RegistryRefused(f"card {card_number} is {r.state.value}; only pending")
            self._update(db, card_number, state=CardState.VOID.value)
            return self._get(db, card_number)

    # -- loss and balances ----------------------------------------------------------------
    def report_lost(self, card_number: str) -> CardRecord:
        return self._move(card_number, CardState.ACTIVE, CardState.LOST, lost_at=self._now())

    def mark_hotlisted(self, card_number: str, version: int) -> CardRecord:
        with self._tx() as db:
            r = self._get(db, card_number)
            if r.state not in (CardState.LOST, CardState.REPLACED):
                raise RegistryRefused(f"card {card_number} is {r.state.value}, not lost")
            if r.hotlist_version is None:
                self._update(db, card_number, hotlist_version=version)
            return self._get(db, card_number)

    def report_balance(self, card_number: str, balance_fen: int, as_of: datetime) -> CardRecord:
        if balance_fen < 0:
            raise RegistryRefused("a purse balance is never negative")
        with self._tx() as db:
            r = self._get(db, card_number)
            if r.balance_as_of is None or as_of >= r.balance_as_of:
                self._update(
                    db,
                    card_number,
                    balance_fen=balance_fen,
                    balance_as_of=as_of.replace(microsecond=0).isoformat(),
                )
            return self._get(db, card_number)

    # -- lookups and export ---------------------------------------------------------------
    def get(self, card_number: str) -> CardRecord:
        with self._lock:
            return self._get(self._db, card_number)

    def by_serial(self, serial: bytes) -> CardRecord | None:
        with self._lock:
            found = self._where(self._db, "serial = ?", serial.hex().upper())
        return found[0] if found else None

    def by_id_number(self, id_number: str) -> list[CardRecord]:
        with self._lock:
            return self._where(
                self._db, "id_number = ? ORDER BY created_at, card_number", id_number
            )

    def export(self, since_revision: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            records = self._where(self._db, "revision > ? ORDER BY revision", since_revision)
        return [r.to_json() for r in records]


def _serial_hex(card_number: str) -> str:
    return serial_of(card_number).hex().upper()
