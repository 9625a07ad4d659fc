"""Shared builders for the issuance tests: a perso-capable HSM, blank cards, plans, a desk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway import numbers
from gateway.hsm import HostSecurityModule
from gateway.registry import SqliteCardRegistry
from simulators.blank_card import SoftBlankCard
from simulators.profiles import (
    DEMO_ISSUERS,
    blank_card,
    demo_chip_id,
    demo_keyset,
    demo_psam,
    demo_transport_master,
)
from terminal.cli.desk_parts import DeskParts
from terminal.epurse.perso import PersoHost, PersoPlan
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.registry import CardRegistry, NumberBlock
from terminal.roles.session import TerminalSession
from terminal.runtime.assembly import Parts, Terminal, assemble
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient

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


class KitDesk(DeskParts):
    """The desk's outside parts as ``ykt run`` takes them, but the test's own key host and
    card registry (shared with the test, on its clock) instead of ones opened from files."""

    def __init__(self, host: PersoHost, registry: CardRegistry):
        self.host = host
        self.book = registry

    def perso_host(self, keys: str | None, transport_master: str | None) -> PersoHost:
        return self.host

    def registry(self, path: str, replacement_wait_days: int) -> CardRegistry:
        return self.book


OFFLINE = "http://127.0.0.1:9"  # a card centre that never answers: the desk is offline


def assemble_desk(
    clock: Callable[[], datetime],
    *,
    reader: SimReader | None = None,
    terminal_id: str = "310000000001",
    host: PersoHost | None = None,
    registry: CardRegistry | None = None,
    client: GatewayClient | None = None,
    journal: Journal | None = None,
    hotlist: Hotlist | None = None,
) -> Terminal:
    """An issuance desk built by the one assembly as ``ykt run`` builds it: a software PSAM
    of ``terminal_id`` (the desk's number), the card in ``reader``, talking to the card
    centre through ``client`` (None: an offline desk, its centre never answers)."""
    config = TerminalConfig(role="desk", journal=":memory:", issuer_id=SHANGHAI.hex().upper())
    if client is None:
        config.gateway, config.token = OFFLINE, "offline"
    parts = Parts(
        card_reader=reader or SimReader(name="desk"),
        sam_reader=SimReader(demo_psam(terminal_id)),
        journal=journal,
        hotlist=hotlist,
        clock=clock,
        client=client,
    )
    devices = KitDesk(
        host or perso_hsm(clock),
        registry or SqliteCardRegistry(clock=clock),
    )
    return assemble(config, desk=devices, parts=parts)


def desk_session(card: object, clock: Callable[[], datetime]) -> TerminalSession:
    """The assembled desk's session with ``card`` in its reader, connected."""
    desk = assemble_desk(clock, reader=SimReader(card, name="desk"))  # type: ignore[arg-type]
    desk.session.card_reader.connect()
    return desk.session
