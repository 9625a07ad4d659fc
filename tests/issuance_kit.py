"""Shared builders for the issuance tests: a perso-capable HSM, blank cards, plans, a desk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway import numbers
from gateway.hsm import HostSecurityModule
from simulators.blank_card import SoftBlankCard
from simulators.profiles import (
    DEMO_ISSUERS,
    blank_card,
    demo_chip_id,
    demo_keyset,
    demo_psam,
    demo_transport_master,
)
from terminal.epurse.perso import PersoPlan
from terminal.readers.sim import SimReader
from terminal.roles.registry import NumberBlock
from terminal.roles.session import TerminalSession

SHANGHAI = DEMO_ISSUERS["shanghai"]
VALID_ID = "11010519491231002X"  # the GB 11643 worked example


def leased(gw: Any, desk_id: str, count: int = 100, issuer: bytes = SHANGHAI) -> NumberBlock:
    """A block of card numbers the gateway ``gw`` leased to ``desk_id`` (for a desk's book)."""
    doc = numbers.lease(gw.db, desk_id, issuer.hex(), count)
    return NumberBlock(doc["block_id"], issuer, desk_id, doc["first"], doc["last"])


def perso_hsm(clock: Callable[[], datetime]) -> HostSecurityModule:
    keysets = [demo_keyset(issuer) for issuer in DEMO_ISSUERS.values()]
    return HostSecurityModule(keysets, clock, transport_master=demo_transport_master())


def new_blank(number: int = 1) -> SoftBlankCard:
    return blank_card(demo_chip_id(number))


def plan(number: int = 1, name: str = "张三", id_number: str = VALID_ID, **kw: object) -> PersoPlan:
    return PersoPlan(SHANGHAI, f"31000290{number:011d}", name, id_number, **kw)  # type: ignore[arg-type]


def desk_session(card: object, clock: Callable[[], datetime]) -> TerminalSession:
    """A terminal session with the card in the reader and a software PSAM started."""
    s = TerminalSession(SimReader(card, name="desk"), SimReader(demo_psam()), clock=clock)  # type: ignore[arg-type]
    s.start()
    s.card_reader.connect()
    return s
