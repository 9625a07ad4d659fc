"""The local hotlist (挂失 / blacklist): a versioned set of blocked card serials.

Membership is a binary search in a sorted ``array('Q')`` of 8-byte serials: 8 bytes per
entry, so half a million cards cost 4 MB and a lookup about a microsecond. The set and
its version persist in SQLite; deltas from the gateway apply atomically and in order.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path

from terminal.apdu.errors import YikatongError
from terminal.sqlite import connect, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS hotlist (serial INTEGER PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hotlist_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class HotlistError(YikatongError):
    """A delta that does not follow the local version, or a malformed serial."""


def serial_key(serial: bytes) -> int:
    if len(serial) != 8:
        raise HotlistError(f"card serial must be 8 bytes, got {len(serial)}")
    # stored as signed 64-bit in SQLite; the array holds the unsigned value
    return int.from_bytes(serial, "big")


def _to_sql(key: int) -> int:
    return key - (1 << 64) if key >= 1 << 63 else key


def _from_sql(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class Hotlist:
    """Blocked serials with a version number; ``path`` None keeps it in memory only."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.RLock()
        self._db = connect(path)
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT value FROM hotlist_meta WHERE key='version'").fetchone()
        self.version = row[0] if row else 0
        keys = sorted(_from_sql(r[0]) for r in self._db.execute("SELECT serial FROM hotlist"))
        self._keys = array("Q", keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, serial: bytes) -> bool:
        key = serial_key(serial)
        keys = self._keys
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    def apply(
        self,
        version: int,
        added: Iterable[bytes] = (),
        removed: Iterable[bytes] = (),
        *,
        from_version: int | None = None,
    ) -> None:
        """Apply a delta taking the list to ``version``. A delta built on another version
        than ours (``from_version``) is refused: ask the gateway for a full list instead."""
        add = {serial_key(s) for s in added}
        remove = {serial_key(s) for s in removed}
        with self._lock:
            if from_version is not None and from_version != self.version:
                raise HotlistError(
                    f"delta is from version {from_version}, local hotlist is at {self.version}"
                )
            if version <= self.version:
                raise HotlistError(f"version {version} is not newer than {self.version}")
            with transaction(self._db) as db:
                db.executemany(
                    "INSERT OR IGNORE INTO hotlist VALUES (?)", ((_to_sql(k),) for k in add)
                )
                db.executemany(
                    "DELETE FROM hotlist WHERE serial = ?", ((_to_sql(k),) for k in remove - add)
                )
                db.execute("INSERT OR REPLACE INTO hotlist_meta VALUES ('version', ?)", (version,))
            self._merge(add, remove - add)
            self.version = version

    def _merge(self, add: set[int], remove: set[int]) -> None:
        """Small deltas edit the sorted array in place; large ones rebuild it."""
        keys = self._keys
        if len(add) + len(remove) > 1000:
            self._keys = array("Q", sorted((set(keys) | add) - remove))
            return
        for key in remove:
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                keys.pop(i)
        for key in add:
            i = bisect_left(keys, key)
            if i == len(keys) or keys[i] != key:
                keys.insert(i, key)

    def replace_all(self, version: int, serials: Iterable[bytes]) -> None:
        """Install a full list (first sync, or after a version gap)."""
        keys = sorted({serial_key(s) for s in serials})
        with self._lock:
            with transaction(self._db) as db:
                db.execute("DELETE FROM hotlist")
                db.executemany("INSERT INTO hotlist VALUES (?)", ((_to_sql(k),) for k in keys))
                db.execute("INSERT OR REPLACE INTO hotlist_meta VALUES ('version', ?)", (version,))
            self._keys = array("Q", keys)
            self.version = version

    def close(self) -> None:
        self._db.close()
