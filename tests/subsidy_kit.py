"""Builders for the card book and subsidy tests: a desk's book whose card numbers match the
demo software cards, pushing it to a gateway, rosters, admin calls and kiosks over HTTP."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway.registry import SqliteCardRegistry
from gateway.subsidy.bank import BankKey
from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import demo_card, demo_psam
from terminal.identity import check_character
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.kiosk import Kiosk, KioskConfig
from terminal.roles.kiosk_host import HttpSubsidyHost
from terminal.roles.load_host import HttpLoadHost
from terminal.roles.registry import Applicant, CardRecord
from terminal.runtime.assembly import Parts, Terminal, assemble
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient
from terminal.uplink.issuance import push_issuance
from tests.gateway_fixtures import ADMIN_TOKEN, BANK_KEY
from tests.issuance_kit import SHANGHAI, leased

HEADER = "name,id_number,card_number,item,amount_fen,period"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
DESK = "310000000080"
KIOSK_A = "310000000090"
KIOSK_B = "310000000091"


def id_number(n: int, birth: str = "19800101") -> str:
    """A valid GB 11643 number (Beijing Dongcheng), sequence ``n``."""
    first17 = f"110101{birth}{n:03d}"
    return first17 + check_character(first17)


PEOPLE = [("张三", id_number(1)), ("李四", id_number(2)), ("王小五", id_number(3))]


def answer(person: int) -> str:
    """What ``PEOPLE[person]`` types at a kiosk pickup: their whole ID number."""
    return PEOPLE[person][1]


def book_cards(registry: SqliteCardRegistry, people: list[tuple[str, str]]) -> list[CardRecord]:
    """Active cards for ``people``, numbered from the registry's blocks (``card_for`` makes
    the demo software card of each number)."""
    out = []
    for i, (name, number) in enumerate(people):
        chip = bytes.fromhex(f"59460000{i + 1:08d}")
        rec = registry.begin_issue(SHANGHAI, Applicant(name, number), chip)
        out.append(registry.activate(rec.card_number))
    return out


def card_for(record: CardRecord, balance: int = 0) -> SoftEPurseCard:
    """The demo software card whose number is the record's."""
    card = demo_card(int(record.card_number[-11:]), balance=balance)
    assert card.public_info[10:20].hex()[1:] == record.card_number
    return card


def holder_row(record: CardRecord) -> str:
    """The 'name,id_number,card_number' start of a roster row for the card's holder."""
    return f"{record.holder.name},{record.holder.id_number},{record.card_number}"


def roster(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def admin(gw: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, gw.url + path, headers=ADMIN, timeout=30, **kw)


def import_roster(gw: Any, body: bytes, by: str = "declarer") -> dict[str, Any]:
    r = admin(
        gw,
        "POST",
        "/v1/admin/subsidies/rosters",
        params={"declared_by": by, "source": "roster.csv"},
        content=body,
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def publish_roster(gw: Any, roster_id: int, *, days_ago: int = 10) -> None:
    """Review a roster and record a finished 公示 with its sign-off (display period over)."""
    base = f"/v1/admin/subsidies/rosters/{roster_id}"
    r = admin(gw, "POST", f"{base}/review", json={"actor": "reviewer"})
    assert r.status_code == 200, r.text
    start = date.today() - timedelta(days=days_ago)
    body = {
        "actor": "clerk",
        "starts_on": start.isoformat(),
        "ends_on": (start + timedelta(days=7)).isoformat(),
        "place": "村委会公示栏",
    }
    r = admin(gw, "POST", f"{base}/publication", json=body)
    assert r.status_code == 201, r.text
    r = admin(gw, "POST", f"{base}/signoff", json={"actor": "clerk", "signatures": 3})
    assert r.status_code == 200, r.text


def approve_roster(gw: Any, roster_id: int) -> None:
    """declared → reviewed → 公示 over and signed → approved."""
    publish_roster(gw, roster_id)
    r = admin(
        gw, "POST", f"/v1/admin/subsidies/rosters/{roster_id}/approve", json={"actor": "approver"}
    )
    assert r.status_code == 200, r.text


@contextmanager
def client_for(gw: Any, terminal_id: str, role: str) -> Iterator[GatewayClient]:
    client = GatewayClient(gw.url, gw.register(terminal_id, "card-centre", role=role))
    try:
        yield client
    finally:
        client.close()


class Centre:
    """A desk's book pushed to the gateway, and kiosks talking to it over HTTP."""

    def __init__(self, gw: Any, clock: Any):
        self.gw = gw
        self.clock = clock
        self.registry = SqliteCardRegistry(clock=clock)
        self.registry.hold(leased(gw, DESK))
        self._clients: list[GatewayClient] = []
        self._journals: dict[str, Journal] = {}
        self._devices: list[Terminal] = []
        self._dir = Path(tempfile.mkdtemp(prefix="centre-"))
        self.desk = self._client(DESK, "issuance")
        self.records: list[CardRecord] = []  # every card ``issue`` booked, in order

    def journal(self, terminal_id: str) -> Journal:
        """The kiosk's journal (one per terminal id, shared by its kiosks in a test)."""
        if terminal_id not in self._journals:
            self._journals[terminal_id] = Journal(self._dir / f"{terminal_id}.db")
        return self._journals[terminal_id]

    def _client(self, terminal_id: str, role: str) -> GatewayClient:
        client = GatewayClient(self.gw.url, self.gw.register(terminal_id, "card-centre", role=role))
        self._clients.append(client)
        return client

    def issue(self, people: list[tuple[str, str]] = PEOPLE) -> list[CardRecord]:
        """Book a card for each of ``people``, push the book to the gateway; the new records."""
        records = book_cards(self.registry, people)
        push_issuance(self.desk, self.registry.export)
        self.records.extend(records)
        return records

    def kiosk(
        self, terminal_id: str = KIOSK_A, card: Any = None, config: KioskConfig | None = None
    ) -> tuple[Kiosk, SimReader]:
        """A kiosk assembled as ``ykt run`` builds one, with the centre's clock, this
        terminal's journal and its own gateway client (top-ups and pickups retried without
        sleeping); a software PSAM of ``terminal_id`` gives it its number."""
        client = self._client(terminal_id, "kiosk")
        limits = config or KioskConfig()
        reader = SimReader(card, name=f"kiosk {terminal_id}")
        parts = Parts(
            card_reader=reader,
            sam_reader=SimReader(demo_psam(terminal_id)),
            journal=self.journal(terminal_id),
            clock=self.clock,
            client=client,
            load_host=HttpLoadHost(client, sleep=lambda s: None),
            subsidy_host=HttpSubsidyHost(client, sleep=lambda s: None),
        )
        device = assemble(
            TerminalConfig(
                role="kiosk",
                journal=str(self._dir / f"{terminal_id}.db"),
                min_top_up=limits.min_top_up,
                max_top_up=limits.max_top_up,
                max_balance=limits.max_balance,
            ),
            parts=parts,
        )
        self._devices.append(device)
        kiosk: Kiosk = device.role
        return kiosk, reader

    def close(self) -> None:
        for device in self._devices:
            device.close(flush_timeout=0)
        for c in self._clients:
            c.close()
        for j in self._journals.values():
            j.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        self.registry.close()


def send_roster(gw: Any, roster_id: int) -> None:
    """Approve a roster and send it to finance (the agent bank may then be paid)."""
    approve_roster(gw, roster_id)
    r = admin(
        gw, "POST", f"/v1/admin/subsidies/rosters/{roster_id}/send", json={"actor": "finance"}
    )
    assert r.status_code == 200, r.text


SENT_LINES = ("H31,1500000,2026-10-08", "H18,45000,2026-10", "H21,58050,2026-10")


def sent_roster(gw: Any, centre: Centre, people: int = 3) -> int:
    """A roster sent to finance for the first ``people`` of the centre's records: 危房改造
    ¥15,000 for 张三's household, 五保 ¥450 for 李四, 城市低保 ¥580.50 for 王小五; its id."""
    pairs = zip(centre.records[:people], SENT_LINES[:people], strict=True)
    rows = [f"{holder_row(r)},{line}" for r, line in pairs]
    doc = import_roster(gw, roster(*rows))
    send_roster(gw, doc["roster"]["id"])
    return int(doc["roster"]["id"])


def sent_batch(gw: Any, centre: Centre, people: int = 3) -> tuple[str, str]:
    """``sent_roster``'s lines in a bank batch: (batch, payment CSV)."""
    sent_roster(gw, centre, people)
    ref = bank_batch(gw)["batch"]
    return ref, payment_file(gw, ref).decode()


def bank_batch(gw: Any, **body: Any) -> dict[str, Any]:
    r = admin(gw, "POST", "/v1/admin/subsidies/bank/batches", json={"actor": "finance", **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def payment_file(gw: Any, batch: str, fmt: str = "csv") -> bytes:
    r = admin(gw, "GET", f"/v1/admin/subsidies/bank/batches/{batch}/file", params={"format": fmt})
    assert r.status_code == 200, r.text
    return r.content


def bank_result(
    payment_csv: str, failed: dict[int, str] | None = None, key: BankKey | None = BANK_KEY
) -> bytes:
    """What the bank answers for a payment file: every line paid, or failed with a reason,
    signed with ``key`` (the test bank's; None: unsigned)."""
    failed = failed or {}
    rows = [line.split(",") for line in payment_csv.strip().splitlines()]
    out = [",".join(rows[0])]
    details = [r for r in rows if r[0] == "D"]
    for d in details:
        seq = int(d[1])
        state, why = ("F", failed[seq]) if seq in failed else ("S", "")
        out.append(f"D,{seq},{d[2]},{d[5]},{d[6]},{state},{why},BK{seq:08d}")
    out.append(f"T,{len(details)},{sum(int(d[5]) for d in details)}")
    body = ("\n".join(out) + "\n").encode()
    return body if key is None else key.signed(body)


def post_result(
    gw: Any, body: bytes, by: str = "finance", signature: str | None = None
) -> httpx.Response:
    headers = {**ADMIN, **({"X-Bank-Signature": signature} if signature else {})}
    return httpx.post(
        gw.url + "/v1/admin/subsidies/bank/results",
        params={"imported_by": by},
        content=body,
        headers=headers,
        timeout=30,
    )
