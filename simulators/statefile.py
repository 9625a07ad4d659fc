"""State files of software cards and PSAMs: JSON, written atomically so a card survives a
power cut mid-write with either its old or its new state, never half of each. They hold
keys and PINs, so they are owner-only (0600)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from terminal.private_files import write_private


def write_state(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` to ``path`` (mode 0600) via a temp file, fsync and rename."""
    return write_private(path, json.dumps(document, indent=1))


def read_state(path: str | Path, kinds: tuple[str, ...], what: str) -> dict[str, Any]:
    """The document in ``path``, which must be of one of ``kinds``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("kind") not in kinds:
        raise ValueError(f"{path} is not a {what} file")
    return data
