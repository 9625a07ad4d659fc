"""A campus site's terminals on software parts, for the demo and the tests alike: each built
by the terminal's one assembly from its configuration, with a campus PSAM, the caller's
antenna, clock and gateway client, its lists, journal and ledgers as files in one folder
(``PREFIX`` names them apart), and the card presented by inserting it in the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from simulators.campus import campus_psam
from terminal.readers.sim import SimReader
from terminal.runtime.assembly import (
    LibraryDevice,
    Parts,
    Terminal,
    assemble,
    assemble_library,
)
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient

T = TypeVar("T")


def campus_parts(
    reader: SimReader, terminal_id: str, clock: Any, client: GatewayClient | None, **sam: Any
) -> Parts:
    """The caller's parts of a campus terminal: ``reader`` for the card, a campus PSAM of
    ``terminal_id`` (``sam``: its reader's options), the clock and the gateway client."""
    psam = SimReader(campus_psam(terminal_id), **sam)
    return Parts(card_reader=reader, sam_reader=psam, clock=clock, client=client)


def build_till(parts: Parts, rules: Path, folder: Path, prefix: str = "") -> Terminal:
    """A canteen till (``role``: a ``Canteen``) with its journal, hotlist and sales ledger in
    ``folder``, its meals and limits from ``rules``."""
    config = TerminalConfig(
        role="till",
        journal=str(folder / f"{prefix}journal.db"),
        hotlist=str(folder / f"{prefix}hotlist.db"),
        till_rules=str(rules),
        till_sales=str(folder / f"{prefix}sales.db"),
    )
    return assemble(config, parts=parts)


def build_desk(parts: Parts, rules: Path, folder: Path, prefix: str = "") -> LibraryDevice:
    """A library desk with its access list and loan numbers (one store), and its hotlist, in
    ``folder``, its loan limits from ``rules``."""
    config = TerminalConfig(
        role="library",
        journal=str(folder / f"{prefix}store.db"),
        hotlist=str(folder / f"{prefix}hotlist.db"),
        library_rules=str(rules),
    )
    return assemble_library(config, parts=parts)


def presented(reader: SimReader, card: Any, action: Callable[[], T]) -> T:
    """``action``'s result with ``card`` in ``reader``'s field (taken out again after)."""
    reader.insert(card)
    try:
        return action()
    finally:
        reader.remove()
