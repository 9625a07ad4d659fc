"""Durable SQLite, set up one way for every store (journal, hotlist, desk registry, gateway
storage, clearing ledger).

``connect`` opens a file created 0600 (journals and registries hold card numbers and names;
SQLite gives its -wal and -shm files the database file's mode, and existing ones are
tightened too), in autocommit mode so transactions are explicit, in WAL mode (an error if
the file cannot switch: a store that is not durable must not start) with synchronous=FULL:
a committed transaction survives a power cut. ``transaction`` is one BEGIN IMMEDIATE ...
COMMIT block, rolled back on any exception.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from terminal.private_files import PRIVATE_MODE, private_sqlite

MEMORY = ":memory:"


class NotDurable(sqlite3.OperationalError):
    """The file could not be switched to WAL mode."""


def connect(
    path: str | Path | None,
    *,
    autocheckpoint: bool = True,
    foreign_keys: bool = False,
    row_factory: type | None = None,
    busy_timeout: float = 5.0,
) -> sqlite3.Connection:
    """A connection to ``path`` (None: in memory) shared across threads: the owner holds a
    lock around its use. ``autocheckpoint=False`` keeps WAL checkpoints (and their fsyncs)
    for the owner to run when idle."""
    name = str(path) if path else MEMORY
    conn = sqlite3.connect(
        private_sqlite(name), isolation_level=None, check_same_thread=False, timeout=busy_timeout
    )
    try:
        if row_factory is not None:
            conn.row_factory = row_factory
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if name != MEMORY and str(mode).lower() != "wal":
            raise NotDurable(f"{name} could not switch to WAL (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
    except BaseException:
        conn.close()
        raise
    if name != MEMORY:
        for suffix in ("-wal", "-shm"):
            tighten(name + suffix)
    return conn


def tighten(path: str) -> None:
    """Make an existing file owner-only (a missing one is left missing)."""
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            os.chmod(path, PRIVATE_MODE)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (the write lock up front, so two writers never deadlock), COMMIT at the
    end, ROLLBACK if anything raised (the original error is what the caller sees)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
