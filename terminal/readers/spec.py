"""Reader specs as the CLI takes them: ``sim``, ``replay:FILE``, ``pcsc:NAME``, ``nfc:...``.

Backends that need optional stacks are imported only when their prefix is used. ``sim``
needs a software card, which the caller (CLI, tests) supplies: terminal code never
imports the simulators.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from terminal.apdu.errors import YikatongError
from terminal.readers.base import Reader
from terminal.readers.sim import SimCard, SimReader

# prefix -> "module:function" taking the text after the prefix and returning a Reader
BACKENDS: dict[str, str] = {
    "replay": "terminal.readers.replay:from_spec",
    "pcsc": "terminal.readers.pcsc:from_spec",
    "nfc": "terminal.readers.nfc:from_spec",
}


class ReaderSpecError(YikatongError, ValueError):
    """A --reader value naming no known backend, or malformed for its backend."""


def open_reader(spec: str, *, sim_card: Callable[[], SimCard] | None = None) -> Reader:
    """Build the reader a spec names; ``sim_card`` supplies the card for ``sim``."""
    if spec == "sim":
        if sim_card is None:
            raise ReaderSpecError("the sim reader needs a software card")
        return SimReader(sim_card(), name="sim")
    prefix, _, rest = spec.partition(":")
    target = BACKENDS.get(prefix)
    if target is None:
        known = ", ".join(["sim", *(f"{p}:..." for p in BACKENDS)])
        raise ReaderSpecError(f"unknown reader {spec!r}; known kinds: {known}")
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(rest)
