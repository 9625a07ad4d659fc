"""A campus site's terminals on software parts, for the demo and the tests alike: each a
campus PSAM in a started session, its lists, journal and ledgers as files in one folder
(``PREFIX`` names them apart), and the card presented by inserting it in the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from simulators.campus import campus_psam
from terminal.campus.canteen import Canteen, CanteenRules, SalesLedger
from terminal.campus.door import AccessList, Door, EventJournal
from terminal.campus.library import DeskNumbers, LibraryDesk, LibraryRules
from terminal.campus.rules import DoorRules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient

T = TypeVar("T")


def campus_session(reader: SimReader, terminal_id: str, clock: Any, **sam: Any) -> TerminalSession:
    """A started session: ``reader`` for the card, a campus PSAM of ``terminal_id``."""
    session = TerminalSession(reader, SimReader(campus_psam(terminal_id), **sam), clock=clock)
    session.start()
    return session


def build_door(session: TerminalSession, rules: DoorRules, folder: Path, prefix: str = "") -> Door:
    """A door controller with its access list, hotlist and event journal in ``folder``."""
    return Door(
        session,
        rules,
        AccessList(folder / f"{prefix}access.db"),
        Hotlist(folder / f"{prefix}hotlist.db"),
        EventJournal(folder / f"{prefix}events.db"),
    )


def build_till(
    session: TerminalSession,
    rules: CanteenRules,
    folder: Path,
    client: GatewayClient | None,
    prefix: str = "",
    **journal: Any,
) -> Canteen:
    """A canteen till with its journal (``journal``: its options), hotlist and sales ledger
    in ``folder``."""
    return Canteen(
        session,
        Journal(folder / f"{prefix}journal.db", **journal),
        rules,
        Hotlist(folder / f"{prefix}hotlist.db"),
        SalesLedger(folder / f"{prefix}sales.db"),
        client,
    )


def build_desk(
    session: TerminalSession,
    rules: LibraryRules,
    folder: Path,
    client: GatewayClient,
    prefix: str = "",
) -> LibraryDesk:
    """A library desk with its access list, hotlist and loan numbers in ``folder``."""
    return LibraryDesk(
        session,
        rules,
        AccessList(folder / f"{prefix}access.db"),
        Hotlist(folder / f"{prefix}hotlist.db"),
        DeskNumbers(folder / f"{prefix}numbers.db"),
        client,
    )


def presented(reader: SimReader, card: Any, action: Callable[[], T]) -> T:
    """``action``'s result with ``card`` in ``reader``'s field (taken out again after)."""
    reader.insert(card)
    try:
        return action()
    finally:
        reader.remove()
