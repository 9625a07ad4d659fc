"""One SQLite set-up for every store: private file, WAL, synchronous FULL, explicit
BEGIN IMMEDIATE transactions that roll back on any error."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.registry import DEFAULT_FIRST_SEQUENCE, SqliteCardRegistry
from gateway.storage.db import SqliteDatabase
from simulators.clearing.ledger import Ledger
from simulators.clearing.verify import TacVerifier
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.private_files import private_path
from terminal.sqlite import connect, transaction


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def settings(conn: sqlite3.Connection) -> tuple[str, int]:
    return (
        conn.execute("PRAGMA journal_mode").fetchone()[0],
        conn.execute("PRAGMA synchronous").fetchone()[0],
    )


def test_a_connection_is_private_durable_and_explicit(tmp_path: Path):
    path = tmp_path / "store.db"
    conn = connect(path, autocheckpoint=False, foreign_keys=True)
    conn.execute("CREATE TABLE t (x INTEGER)")
    assert settings(conn) == ("wal", 2)  # 2 = FULL
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert [mode(p) for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))] == [0o600] * 3
    with transaction(conn) as db:
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError), transaction(conn) as db:
        db.execute("INSERT INTO t VALUES (2)")
        _ = 1 / 0
    assert not conn.in_transaction
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    conn.close()


def test_an_existing_lax_file_is_tightened(tmp_path: Path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    os.chmod(path, 0o644)
    connect(path).close()
    assert mode(path) == 0o600


def test_a_failed_commit_is_rolled_back_and_raised(tmp_path: Path):
    conn = connect(tmp_path / "fk.db", foreign_keys=True)
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError), transaction(conn) as db:
        db.execute("INSERT INTO c VALUES (7)")  # the deferred check fails at COMMIT
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM c").fetchone()[0] == 0
    conn.close()


def test_every_store_opens_through_it(tmp_path: Path, keysets):
    journal = Journal(tmp_path / "journal.db", autocheckpoint=False)
    hotlist = Hotlist(tmp_path / "hotlist.db")
    registry = SqliteCardRegistry(tmp_path / "registry.db", first_sequence=DEFAULT_FIRST_SEQUENCE)
    storage = SqliteDatabase(str(tmp_path / "gateway.db"))
    ledger = Ledger(str(tmp_path / "clearing.db"), TacVerifier(keysets))
    conns = [journal._db, hotlist._db, registry._db, storage._conn, ledger._db]
    try:
        assert [settings(c) for c in conns] == [("wal", 2)] * 5
        assert journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for name in ("journal", "hotlist", "registry", "gateway", "clearing"):
            assert mode(tmp_path / f"{name}.db") == 0o600, name
    finally:
        for store in (journal, hotlist, registry, storage, ledger):
            store.close()


def test_making_a_database_private_keeps_the_open_connections_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it: a
    second connection made private by opening and closing the file let another connection
    believe it was the last, reset the WAL and lose committed transactions (a restarted
    gateway acknowledged batches it then did not hold)."""
    path = tmp_path / "g.db"
    conn = connect(path)
    conn.execute("CREATE TABLE t (v INTEGER)")
    conn.execute("SELECT * FROM t").fetchall()  # the connection holds its shared lock
    private_path(path)  # what a second connect() does first
    grab = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(path)!r}, timeout=0, isolation_level=None)\n"
        "c.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
    )
    other = subprocess.run([sys.executable, "-c", grab], capture_output=True, text=True)
    conn.close()
    assert other.returncode != 0 and "locked" in other.stderr  # our lock still stood
