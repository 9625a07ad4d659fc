"""Load any software card or PSAM from its state file, whatever its kind."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from simulators.statefile import read_document
from terminal.text import FileError

# kind -> "module:Class" with a classmethod load(path)
KINDS: dict[str, str] = {
    "epurse": "simulators.epurse_card:SoftEPurseCard",
    "psam": "simulators.psam:SoftPsam",
    "emv": "simulators.multiapp_card:SoftIcc",
    "resident": "simulators.multiapp_card:SoftIcc",
    "ssse": "simulators.multiapp_card:SoftIcc",
    "fmcos-blank": "simulators.blank_card:SoftBlankCard",
}


def load_device(path: str | Path) -> Any:
    """The device saved in ``path``; any problem with the file is one ``FileError``
    (``<file>:<line>: <what>``), never a traceback."""
    doc = read_document(path, None, "software card or PSAM")
    kind = doc.data.get("kind")
    target = KINDS.get(kind) if isinstance(kind, str) else None
    if target is None:
        raise doc.fail("kind", f"unknown software device kind {kind!r}")
    module, cls = target.split(":")
    try:
        return getattr(importlib.import_module(module), cls).load(path)
    except FileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        key = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else "state"
        raise doc.fail(key, f"not a usable {kind} file: {exc!r}") from None
