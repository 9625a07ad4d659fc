"""Load any software card or PSAM from its state file, whatever its kind."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

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
    kind = json.loads(Path(path).read_text(encoding="utf-8")).get("kind")
    target = KINDS.get(kind)
    if target is None:
        raise ValueError(f"{path}: unknown software device kind {kind!r}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls).load(path)
