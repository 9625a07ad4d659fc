"""One number across desks: two desks with their own books issue against one real gateway,
concurrently; a desk offline issues from the block it holds, or refuses; a restart keeps
the position in the block; an offline card the central book refuses comes back as a
conflict with its reason."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from gateway.hsm import HostSecurityModule
from gateway.registry import SqliteCardRegistry
from terminal.identity import check_character
from terminal.readers.sim import SimReader
from terminal.roles.issuance import DeskConfig, IssuanceDesk, IssuanceError
from terminal.roles.registry import Applicant, card_number_for
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient
from terminal.uplink.issuance import GatewayCentre, push_issuance
from tests.gateway_fixtures import GatewayServer, start_gateway
from tests.issuance_kit import SHANGHAI, new_blank, perso_hsm

FIRST = 10_000_001  # the gateway's first sequence of an issuer
DEAD = "http://127.0.0.1:9"  # nothing listens there: the desk is offline


def person(n: int) -> Applicant:
    first17 = f"11010119800101{n:03d}"
    return Applicant(f"人{n}", first17 + check_character(first17))


@dataclass
class Desk:
    """A desk with its own registry file and reader, talking to the gateway at ``url``."""

    desk_id: str
    path: Path
    url: str
    token: str
    hsm: HostSecurityModule
    chips: int
    block_size: int = 3
    issued: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.registry = SqliteCardRegistry(self.path)
        self.client = GatewayClient(self.url, self.token, timeout=5)
        self.reader = SimReader(name=f"desk {self.desk_id}")
        config = DeskConfig(
            SHANGHAI, bytes.fromhex(self.desk_id), block_size=self.block_size, low_water=1
        )
        self.desk = IssuanceDesk(
            TerminalSession(self.reader),
            self.hsm,
            self.registry,
            config,
            centre=GatewayCentre(self.client),
        )

    def issue(self, who: Applicant) -> str:
        self.chips += 1
        self.reader.insert(new_blank(self.chips))
        number = self.desk.issue(who).record.card_number
        self.issued.append(number)
        return number

    def try_issue(self, who: Applicant) -> None:
        try:
            self.issue(who)
        except IssuanceError as exc:
            self.refused.append(str(exc))

    def push(self) -> dict[str, int]:
        return push_issuance(self.client, self.registry.export, desk_id=self.desk_id).counts

    def close(self) -> None:
        self.client.close()
        self.registry.close()


@pytest.fixture
def gw(db) -> Iterator[GatewayServer]:  # type: ignore[no-untyped-def]
    server = start_gateway(db)
    yield server
    server.server.stop()


@pytest.fixture
def desks(gw: GatewayServer, tmp_path: Path) -> Iterator[list[Desk]]:
    hsm = perso_hsm(datetime.now)
    made = []
    for i, desk_id in enumerate(("310000000080", "310000000081")):
        token = gw.register(desk_id, "card-centre", role="issuance")
        made.append(Desk(desk_id, tmp_path / f"{desk_id}.db", gw.url, token, hsm, 1000 * i))
    yield made
    for d in made:
        d.close()


def live_cards(gw: GatewayServer) -> list[tuple[str, str]]:
    with gw.db.tx() as cur:
        cur.execute(
            "SELECT card_number, id_number FROM cards WHERE desk_state IN ('pending', 'active')"
        )
        return sorted((r[0], r[1]) for r in cur.fetchall())


def test_two_desks_issuing_at_once_never_share_a_number_or_a_person(gw, desks) -> None:  # type: ignore[no-untyped-def]
    people = [person(n) for n in range(1, 9)]
    orders = [people, people[::-1]]  # both desks try everyone, from opposite ends
    threads = [
        threading.Thread(target=lambda d=d, o=o: [d.try_issue(p) for p in o])
        for d, o in zip(desks, orders, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    issued = desks[0].issued + desks[1].issued
    assert len(issued) == len(set(issued)) == len(people)  # every person once, no number twice
    assert len(desks[0].refused) + len(desks[1].refused) == len(people)
    assert all("one person, one card" in r for r in desks[0].refused + desks[1].refused)
    assert desks[0].push().get("conflict", 0) == desks[1].push().get("conflict", 0) == 0
    book = live_cards(gw)
    assert sorted(n for n, _ in book) == sorted(issued)
    assert sorted(i for _, i in book) == sorted(p.id_number for p in people)
    with gw.db.tx() as cur:  # each desk's cards lie in that desk's blocks
        cur.execute("SELECT desk_id, first_seq, last_seq FROM number_blocks")
        blocks = cur.fetchall()
    for d in desks:
        mine = [(f, last) for desk_id, f, last in blocks if desk_id == d.desk_id]
        for number in d.issued:
            assert any(
                card_number_for(SHANGHAI, f) <= number <= card_number_for(SHANGHAI, last)
                for f, last in mine
            )


def test_offline_desk_issues_from_its_block_then_refuses_and_a_restart_keeps_the_place(
    gw, desks, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    online = desks[0]
    assert online.desk.lease(SHANGHAI, 3) == 3
    assert online.issue(person(1)) == card_number_for(SHANGHAI, FIRST)
    online.registry.close()
    offline = Desk(online.desk_id, online.path, DEAD, online.token, online.hsm, 500)
    try:  # the same book after a restart, with the gateway out of reach
        assert [offline.issue(person(2)), offline.issue(person(3))] == [
            card_number_for(SHANGHAI, FIRST + n) for n in (1, 2)
        ]
        with pytest.raises(IssuanceError, match="holds no unused card number") as exc:
            offline.issue(person(4))
        assert "the card centre did not answer" in str(exc.value)
        assert offline.registry.export(0)[-1]["holder"]["id_number"] == person(3).id_number
    finally:
        offline.close()
    again = Desk(online.desk_id, online.path, gw.url, online.token, online.hsm, 600)
    try:  # back online: the next block follows every block leased before
        assert again.issue(person(4)) == card_number_for(SHANGHAI, FIRST + 3)
        assert again.push() == {"stored": 4}
    finally:
        again.close()


def test_a_card_issued_offline_to_someone_who_holds_one_comes_back_as_a_conflict(gw, desks) -> None:  # type: ignore[no-untyped-def]
    a, b = desks
    b.desk.lease(SHANGHAI, 3)
    first = a.issue(person(1))
    assert a.push() == {"stored": 1}
    b.registry.close()
    offline = Desk(b.desk_id, b.path, DEAD, b.token, b.hsm, 700)
    try:
        second = offline.issue(person(1))  # offline: no person check possible
    finally:
        offline.close()
    back = Desk(b.desk_id, b.path, gw.url, b.token, b.hsm, 800)
    try:
        result = push_issuance(back.client, back.registry.export, desk_id=back.desk_id)
    finally:
        back.close()
    assert result.counts == {"conflict": 1}
    (refused,) = result.refused
    assert (refused["card_number"], refused["code"]) == (second, "same_person")
    assert f"already holds live card {first}" in refused["reason"]
    assert live_cards(gw) == [(first, person(1).id_number)]
