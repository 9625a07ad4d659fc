"""Gateway storage: SQLite by default, PostgreSQL by URL; one schema, migrated on open."""

from __future__ import annotations

import sqlite3
import time

import psycopg

from gateway.storage.db import (
    POSTGRES,
    SQLITE,
    Cursor,
    Database,
    StorageError,
    open_database,
    retried,
)
from gateway.storage.schema import migrate

# a unique index refused a row: a concurrent transaction stored its twin first
RACED = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def now_ms() -> int:
    """Server time as epoch milliseconds, the unit of every server timestamp column."""
    return time.time_ns() // 1_000_000


def open_storage(url: str, *, pool_size: int = 8) -> Database:
    """Open the database at ``url`` and bring its schema up to date."""
    db = open_database(url, pool_size=pool_size)
    with db.tx() as cur:
        migrate(cur, db.dialect, now_ms())
    return db


__all__ = [
    "POSTGRES",
    "SQLITE",
    "Cursor",
    "Database",
    "StorageError",
    "now_ms",
    "open_database",
    "open_storage",
    "retried",
]
