"""One small database handle over sqlite3 or psycopg: transactions, ``?`` placeholders, a pool.

The gateway writes plain SQL once, with ``?`` placeholders; the PostgreSQL handle turns
them into ``%s``. SQLite is one connection behind a lock (SQLite has one writer anyway),
plus a read connection for ``read()``; PostgreSQL is a small pool so request threads and the
forwarder work side by side.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, Protocol, TypeVar

import psycopg

from terminal.retry import backoff_delay
from terminal.sqlite import NotDurable, connect, transaction

SQLITE = "sqlite"
POSTGRES = "postgres"


class StorageError(Exception):
    """The storage URL is not understood or the database is not usable."""


# PostgreSQL rolled the transaction back to break a deadlock or a serialization conflict
# (SQLSTATE class 40): nothing of it was stored, and running it again is safe.
ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
TX_ATTEMPTS = 5  # the first run and four more, 20..400 ms apart (jittered): then it is raised
_P = ParamSpec("_P")
_T = TypeVar("_T")
_log = logging.getLogger("gateway.storage")
_rng = random.Random()


def retried(work: Callable[_P, _T]) -> Callable[_P, _T]:
    """``work`` (one ``tx()`` and what it decides from it) run again when PostgreSQL rolls
    its transaction back for a deadlock or a serialization failure, so two requests that
    lock rows in opposite order both get the rules' answer instead of a storage error."""

    @functools.wraps(work)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for attempt in range(1, TX_ATTEMPTS + 1):
            try:
                return work(*args, **kwargs)
            except ROLLED_BACK as exc:
                if attempt == TX_ATTEMPTS:
                    raise
                _log.info("%s: %s; running it again", work.__qualname__, exc.sqlstate)
                time.sleep(backoff_delay(attempt, 0.02, 0.4, _rng))
        raise AssertionError("unreachable")  # pragma: no cover

    return run


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Database:
    """Base: ``tx()`` yields a cursor inside one transaction; ``dialect`` says which SQL."""

    dialect: str
    url: str

    @contextmanager
    def tx(self) -> Iterator[Cursor]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor for one read-only statement outside any explicit transaction: one round
        trip, and on SQLite not behind the writer's lock (WAL readers see the last commit)."""
        with self.tx() as cur:  # pragma: no cover - both handles override it
            yield cur

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _PgCursor:
    """Adapts a psycopg cursor to ``?`` placeholders (no SQL here contains a literal ``?``)."""

    _cache: dict[str, str] = {}  # noqa: RUF012 - a process-wide translation cache

    def __init__(self, cur: Any):
        self._cur = cur

    @classmethod
    def _sql(cls, sql: str) -> str:
        out = cls._cache.get(sql)
        if out is None:
            out = cls._cache[sql] = sql.replace("?", "%s")
        return out

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(self._sql(sql), params, prepare=True)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(self._sql(sql), params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class SqliteDatabase(Database):
    """A SQLite file in WAL mode with synchronous=FULL: an acknowledged batch is on disk.

    Gateway worker processes writing one file queue on an ``flock`` of a side file
    (``FILE-writer``) before BEGIN IMMEDIATE: the kernel wakes the next writer the moment
    the lock is free, where SQLite's busy handler sleeps in steps of up to 100 ms (two
    workers ran at a third of one worker's rate). BEGIN IMMEDIATE and the busy timeout
    still guard every other writer of the file."""

    dialect = SQLITE

    def __init__(self, path: str):
        self.url = f"sqlite:///{path}"
        self.path = path
        self._lock = threading.RLock()
        try:
            self._conn = connect(path, busy_timeout=30)
            self._reader = connect(path, busy_timeout=30)
        except NotDurable as exc:
            raise StorageError(str(exc)) from None
        self._reader.execute("PRAGMA query_only=ON")
        self._read_lock = threading.Lock()
        self._writer = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        with self._lock:
            fcntl.flock(self._writer, fcntl.LOCK_EX)
            try:
                with transaction(self._conn) as conn:
                    yield conn.cursor()
            finally:
                fcntl.flock(self._writer, fcntl.LOCK_UN)

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        with self._read_lock:
            yield self._reader.cursor()

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._conn.close()
            os.close(self._writer)


class PostgresDatabase(Database):
    """A bounded pool of psycopg connections; each ``tx()`` is one transaction on one of them."""

    dialect = POSTGRES

    def __init__(self, url: str, pool_size: int = 8):
        self._psycopg = psycopg
        self.url = url
        self._size = pool_size
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._made = 0
        self._made_lock = threading.Lock()
        self._closed = False
        self._pool.put(self._connect())  # fail fast on a bad URL

    def _connect(self) -> Any:
        with self._made_lock:
            self._made += 1
        return self._psycopg.connect(self.url, autocommit=True)

    def _get(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._made_lock:
            can_make = self._made < self._size
        if can_make:
            return self._connect()
        return self._pool.get(timeout=60)

    def _put(self, conn: Any) -> None:
        if self._closed or conn.closed or conn.broken:
            with self._made_lock:
                self._made -= 1
            conn.close()
            return
        self._pool.put(conn)

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        conn = self._get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield _PgCursor(cur)
        finally:
            self._put(conn)

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        conn = self._get()  # autocommit: the statement alone, no BEGIN/COMMIT round trips
        try:
            with conn.cursor() as cur:
                yield _PgCursor(cur)
        finally:
            self._put(conn)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break


def open_database(url: str, *, pool_size: int = 8) -> Database:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, a plain path, or ``postgresql://``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, pool_size=pool_size)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
        if not path:
            raise StorageError(f"no file in storage URL {url!r}")
        return SqliteDatabase(path)
    if "://" in url:
        raise StorageError(f"unsupported storage URL {url!r} (sqlite:///FILE or postgresql://)")
    return SqliteDatabase(url)
