"""Files that hold secrets or personal data (keys, PINs, names, ID numbers): owner-only, 0600.

``private_path`` makes sure a file exists with mode 0600 before anything opens it (a SQLite
database then creates its -wal and -shm files with the same mode); ``write_private``
replaces a file's content atomically, the new file 0600 from its first byte.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from terminal.text import FileError

PRIVATE_MODE = 0o600


def private_path(path: str | Path) -> Path:
    """Create ``path`` empty with mode 0600 if it is missing, or tighten it to 0600.

    An existing file is never opened here: closing any descriptor of a file drops every
    POSIX lock this process holds on it, including the locks of a SQLite connection already
    open on it - which let SQLite reset a live WAL and lose committed transactions."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        os.chmod(target, PRIVATE_MODE)
        return target
    try:
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
    return target


def private_sqlite(path: str) -> str:
    """A SQLite path made private before connecting (``:memory:`` and URIs are left alone)."""
    if path and path != ":memory:" and not path.startswith("file:"):
        private_path(path)
    return path


def write_private(path: str | Path, data: str | bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` via a 0600 temp file and a rename (never half written)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def owner_only(path: str | Path) -> None:
    """Refuse a secret file (key, token) that group or others may read or write (FileError
    with the mode): a secret anyone on the machine can read is not one; it is never read."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise FileError(path, None, f"cannot read it: {exc.strerror}") from None
    if mode & 0o077:
        raise FileError(
            path,
            None,
            f"is open to group or others (mode {mode:04o}): a secret file must be owner-only;"
            f" chmod 600 {path}",
        )


def read_secret_file(path: str | Path) -> str:
    """The first line of an owner-only token file, stripped (a trailing newline is not part
    of it); FileError if it is open to others (``owner_only``), cannot be read or is empty."""
    owner_only(path)
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(
            path, None, f"cannot read the token: {getattr(exc, 'strerror', exc)}"
        ) from None
    if not secret:
        raise FileError(path, 1, "holds no token")
    return secret
