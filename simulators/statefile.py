"""State files of software cards and PSAMs: JSON, written atomically so a card survives a
power cut mid-write with either its old or its new state, never half of each."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_state(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` to ``path`` via a temp file, fsync and rename."""
    target = Path(path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def read_state(path: str | Path, kinds: tuple[str, ...], what: str) -> dict[str, Any]:
    """The document in ``path``, which must be of one of ``kinds``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("kind") not in kinds:
        raise ValueError(f"{path} is not a {what} file")
    return data
