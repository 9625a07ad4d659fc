"""A campus site for tests: door rules, a door controller and its lists, the back office."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulators.campus import campus_psam
from simulators.campus_site import build_desk, build_till, campus_parts, presented
from simulators.epurse_card import SoftEPurseCard
from terminal.campus.canteen import Canteen
from terminal.campus.door import Door, sync_access, upload_events
from terminal.campus.library import LibraryDesk
from terminal.readers.sim import SimReader
from terminal.runtime.assembly import DoorDevice, LibraryDevice, Parts, Terminal, assemble_door
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient
from tests.gateway_fixtures import ADMIN_TOKEN

DOOR_ID = "310000000101"
RULES = """
holidays = [2026-12-25]
[zones.daytime]
days = [1, 2, 3, 4, 5]
from = "07:00"
until = "22:00"
[zones.always]
holidays = true
[groups.students]
doors = ["east-in", "east-out"]
zone = "daytime"
[groups.staff]
doors = ["east-in", "east-out", "lab", "clock-in", "clock-out"]
zone = "always"
[doors.east-in]
area = "campus"
direction = "in"
paired = "east-out"
[doors.east-out]
area = "campus"
direction = "out"
paired = "east-in"
[doors.lab]
area = "lab"
[doors.clock-in]
area = "office"
purpose = "attendance"
[doors.clock-out]
area = "office"
direction = "out"
purpose = "attendance"
"""


def admin(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + path, json=body, headers={"X-Admin-Token": ADMIN_TOKEN})


def enrol(url: str, person_no: str, group: str, card: SoftEPurseCard) -> None:
    person = {
        "person_no": person_no,
        "name": person_no,
        "group": group,
        "valid_from": "2024-09-01",
        "valid_until": "2028-07-31",
    }
    assert admin(url, "/v1/admin/campus/people", person).status_code == 201
    bind = {
        "card_serial": card.serial.hex(),
        "issuer_id": card.issuer_id.hex(),
        "person_no": person_no,
    }
    assert admin(url, "/v1/admin/campus/cards", bind).status_code == 201


@dataclass
class Site:
    tmp: Path
    clock: Any
    url: str
    token: str
    reader: SimReader = field(init=False)
    device: DoorDevice = field(init=False)
    door: Door = field(init=False)
    client: GatewayClient = field(init=False)

    def __post_init__(self) -> None:
        """The door controller assembled as ``ykt run`` builds a door, on the site's reader,
        a campus PSAM of ``DOOR_ID`` and the site's clock; its store and hotlist in ``tmp``."""
        (self.tmp / "rules.toml").write_text(RULES, encoding="utf-8")
        self.reader = SimReader(name="door")
        config = TerminalConfig(
            role="door",
            journal=str(self.tmp / "door.db"),
            hotlist=str(self.tmp / "hotlist.db"),
            door_rules=str(self.tmp / "rules.toml"),
            door_point="east-in",  # the controller's readers: any of the rules' points
            gateway=self.url,
            token=self.token,
        )
        parts = Parts(
            card_reader=self.reader,
            sam_reader=SimReader(campus_psam(DOOR_ID)),
            clock=self.clock,
        )
        self.device = assemble_door(config, parts=parts)
        self.door = self.device.door
        assert self.device.client is not None
        self.client = self.device.client

    def tap(self, card: SoftEPurseCard, point: str) -> Any:
        return presented(self.reader, card, lambda: self.door.present(point))

    def sync(self) -> int:
        return sync_access(self.client, self.door.access, self.door.hotlist)

    def upload(self) -> int:
        return upload_events(self.client, self.door.journal, DOOR_ID)


CANTEEN_ID = "310000000301"
CANTEEN_RULES = """
day_limit = 4000
[meals.breakfast]
from = "06:30"
until = "09:00"
limit = 1000
[meals.lunch]
from = "11:00"
until = "13:30"
limit = 2500
"""


@dataclass
class Till:
    """A canteen till assembled as a ``till`` terminal: a campus SAM, its journal, rules,
    hotlist and sales ledger."""

    tmp: Path
    clock: Any
    url: str | None
    token: str
    reader: SimReader = field(init=False)
    device: Terminal = field(init=False)
    canteen: Canteen = field(init=False)

    def __post_init__(self) -> None:
        (self.tmp / "canteen.toml").write_text(CANTEEN_RULES, encoding="utf-8")
        self.reader = SimReader(name="till")
        client = GatewayClient(self.url, self.token, timeout=1.0) if self.url else None
        parts = campus_parts(self.reader, CANTEEN_ID, self.clock, client)
        self.device = build_till(parts, self.tmp / "canteen.toml", self.tmp, "till-")
        self.canteen = self.device.role
        self.hotlist = self.canteen.hotlist

    def sell(self, card: SoftEPurseCard, amount: int, purse: str) -> Any:
        return presented(self.reader, card, lambda: self.canteen.sell(amount, purse))


def credit(url: str, month: str, lines: list[dict[str, Any]], roster: str = "r1") -> httpx.Response:
    return admin(
        url, "/v1/admin/campus/allowance", {"month": month, "roster": roster, "lines": lines}
    )


def allowance_of(url: str, person_no: str) -> int:
    r = httpx.get(
        f"{url}/v1/admin/campus/allowance/{person_no}", headers={"X-Admin-Token": ADMIN_TOKEN}
    )
    return int(r.json()["balance_fen"])


LIBRARY_ID = "310000000401"


@dataclass
class LibrarySite:
    """A library desk assembled as a ``library`` terminal: a campus SAM, its synced lists,
    its numbers, limits 2 / 5."""

    tmp: Path
    clock: Any
    url: str
    token: str
    reader: SimReader = field(init=False)
    device: LibraryDevice = field(init=False)
    desk: LibraryDesk = field(init=False)

    def __post_init__(self) -> None:
        (self.tmp / "library.toml").write_text("[limits]\nstudents = 2\nstaff = 5\n")
        self.reader = SimReader(name="library")
        client = GatewayClient(self.url, self.token, timeout=1.0)
        parts = campus_parts(self.reader, LIBRARY_ID, self.clock, client)
        self.device = build_desk(parts, self.tmp / "library.toml", self.tmp, "library-")
        self.desk = self.device.desk

    def sync(self) -> int:
        return sync_access(self.desk.client, self.desk.access, self.desk.hotlist)

    def borrow(self, card: SoftEPurseCard, book: str) -> Any:
        return presented(self.reader, card, lambda: self.desk.borrow(book))
