"""Subsidy pickup at kiosks through a real gateway (SQLite and PostgreSQL): paid only once
approved, paid once whatever happens - a card pulled before or after CREDIT and the pickup
retried here or at another kiosk, a replayed HTTP request, two kiosks racing - within the
purse's maximum, and the paid/pending report agrees with the cards and with clearing."""

from __future__ import annotations

import copy
import threading
from typing import Any

import httpx
import pytest

from gateway.forwarder import Forwarder
from gateway.hsm import HostSecurityModule, LocalLoadHost
from terminal.apdu.errors import CardError
from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined
from terminal.journal import Journal
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles.debit import CreditPath, LoadInterrupted
from terminal.roles.kiosk import KioskConfig
from terminal.roles.kiosk_host import HttpSubsidyHost
from terminal.roles.load_host import HttpLoadHost
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient
from tests.gateway_fixtures import demo_keysets
from tests.subsidy_kit import (
    KIOSK_A,
    KIOSK_B,
    Centre,
    admin,
    answer,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    publish_roster,
    roster,
)
from tests.terminal.roles.fleet import CREDIT


def declare(centre: Centre, *lines: str, person: int = 0) -> int:
    r = centre.records[person]
    prefix = holder_row(r)
    doc = import_roster(centre.gw, roster(*(f"{prefix},{line}" for line in lines)))
    assert doc["report"]["rejected"] == 0, doc["report"]
    return int(doc["roster"]["id"])


def report(gw: Any, roster_id: int | None = None) -> dict[str, Any]:
    params = {"roster_id": roster_id} if roster_id else {}
    r = admin(gw, "GET", "/v1/admin/subsidies/report", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def totals(doc: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k: (v["lines"], v["amount_fen"]) for k, v in doc["totals"].items() if v["lines"]}


def cleared_loads(gw: Any, clearing: Any) -> tuple[int, int]:
    Forwarder(gw.db, clearing.url).drain()
    t = clearing.settlement()["totals"]
    return t["loads"], t["load_amount"]


def test_paid_only_once_approved_then_never_again(gateway, clearing, centre):
    card = card_for(centre.records[0], balance=1_000)
    kiosk, _ = centre.kiosk(card=card)
    rid = declare(centre, "H18,20000,2026-10", "H17,5000,2026-10")
    early = kiosk.pick_up(answer(0))
    assert early.paid == [] and len(early.awaiting) == 2 and card.balance == 1_000
    assert early.message() == "2 line(s) await approval"
    publish_roster(gateway, rid)
    assert len(kiosk.pick_up(answer(0)).awaiting) == 2  # reviewed and published is not approved
    assert totals(report(gateway)) == {"awaiting_approval": (2, 25_000)}
    admin(gateway, "POST", f"/v1/admin/subsidies/rosters/{rid}/approve", json={"actor": "approver"})

    done = kiosk.pick_up(answer(0))
    assert [line["item"] for line in done.paid] == ["H18", "H17"]
    assert done.paid_fen == 25_000 and done.balance_after == card.balance == 26_000
    assert done.load is not None and done.message() == "paid 2 line(s), ¥250.00"
    again = kiosk.pick_up(answer(0))
    assert again.paid == [] and again.message() == "no subsidy to pick up"
    assert card.balance == 26_000

    doc = report(gateway, rid)
    assert totals(doc) == {"paid": (2, 25_000)}
    (line, _) = doc["lines"]
    assert line["status"] == "paid" and line["load_terminal"] == KIOSK_A
    assert line["load_reference"] == done.load.authorization.reference
    assert line["tac"] == done.load.tac.hex().upper() and line["paid_at_ms"] > 0
    assert cleared_loads(gateway, clearing) == (1, 25_000)


def test_requests_for_lines_that_are_not_payable_are_refused(gateway, centre, clock):
    zhang, li = card_for(centre.records[0]), card_for(centre.records[1])
    rid = declare(centre, "H18,20000,2026-10")
    (line_id,) = [line["line_id"] for line in report(gateway, rid)["lines"]]
    kiosk, reader = centre.kiosk(card=zhang)
    host = kiosk.subsidies
    assert host is not None

    def request(card: Any, amount: int) -> Any:
        reader.insert(card)
        reader.connect()
        info = kiosk.session.run(flows.select())
        return kiosk.session.run(flows.prepare_load(info, kiosk.terminal_id, amount, clock()))

    with pytest.raises(LoadDeclined, match="only once its roster is approved"):
        host.paying([line_id], answer(0)).authorize_load(request(zhang, 20_000))
    approve_roster(gateway, rid)
    with pytest.raises(LoadDeclined, match="is paid to card"):
        host.paying([line_id], answer(0)).authorize_load(request(li, 20_000))
    with pytest.raises(LoadDeclined, match="add up to 20000 fen, the load is 30000"):
        host.paying([line_id], answer(0)).authorize_load(request(zhang, 30_000))
    with pytest.raises(LoadDeclined, match="no subsidy line 999"):
        host.paying([999], answer(0)).authorize_load(request(zhang, 20_000))
    with pytest.raises(LoadDeclined, match="no subsidy lines or holder answer"):
        host.authorize_load(request(zhang, 20_000))
    pos = GatewayClient(gateway.url, gateway.register("310000000001", "shop", role="pos"))
    with pytest.raises(LoadDeclined, match="needs kiosk"):
        HttpSubsidyHost(pos).paying([line_id], answer(0)).authorize_load(request(zhang, 20_000))
    pos.close()
    assert gateway.count("loads") == 0 and zhang.balance == 0


def test_pickup_pays_what_fits_under_the_purse_maximum_and_leaves_the_rest(gateway, centre):
    card = card_for(centre.records[0], balance=90_000)
    kiosk, _ = centre.kiosk(card=card, config=KioskConfig(max_balance=100_000))
    rid = declare(centre, "H18,5000,2026-09", "H17,8000,2026-09", "H01,3000,2026-09")
    approve_roster(gateway, rid)
    got = kiosk.pick_up(answer(0))
    assert [x["item"] for x in got.paid] == ["H18", "H01"]  # the 80 yuan line does not fit
    assert [x["item"] for x in got.left] == ["H17"] and card.balance == 98_000
    assert "1 line(s), ¥80.00, left pending: the purse holds at most ¥1000.00" in got.message()
    assert totals(report(gateway, rid)) == {"paid": (2, 8_000), "pending": (1, 8_000)}
    full = kiosk.pick_up(answer(0))
    assert full.paid == [] and len(full.left) == 1 and card.balance == 98_000


@pytest.mark.parametrize("where", ["same kiosk", "another kiosk"])
def test_card_pulled_after_credit_and_pickup_retried_is_paid_once(gateway, clearing, centre, where):
    card = card_for(centre.records[0], balance=500)
    kiosk, reader = centre.kiosk(card=card)
    rid = declare(centre, "H18,20000,2026-10")
    approve_roster(gateway, rid)
    reader.tear_at_ins(CREDIT, AFTER)  # CREDIT reached the card, its answer did not
    with pytest.raises(LoadInterrupted):
        kiosk.pick_up(answer(0))
    assert card.balance == 20_500
    assert totals(report(gateway, rid)) == {"held": (1, 20_000)}
    if where == "another kiosk":
        kiosk, reader = centre.kiosk(KIOSK_B, card=card)
    reader.insert(card)
    retry = kiosk.pick_up(answer(0))
    assert retry.paid == [] and retry.settled[0][1] == "confirmed"
    assert [x["item"] for x in retry.completed] == ["H18"]
    assert retry.message().startswith("an interrupted pickup was completed: 1 line(s), ¥200.00")
    assert card.balance == 20_500 and kiosk.pick_up(answer(0)).paid == []
    assert totals(report(gateway, rid)) == {"paid": (1, 20_000)}
    assert cleared_loads(gateway, clearing) == (1, 20_000)


def test_card_pulled_before_credit_and_pickup_retried_is_paid_once(gateway, clearing, centre):
    card = card_for(centre.records[0], balance=500)
    kiosk, reader = centre.kiosk(card=card)
    rid = declare(centre, "H18,20000,2026-10")
    approve_roster(gateway, rid)
    reader.tear_at_ins(CREDIT, BEFORE)
    with pytest.raises(LoadInterrupted):
        kiosk.pick_up(answer(0))
    assert card.balance == 500 and totals(report(gateway, rid)) == {"held": (1, 20_000)}
    reader.insert(card)
    retry = kiosk.pick_up(answer(0))
    assert retry.settled[0][1] == "void" and [x["item"] for x in retry.paid] == ["H18"]
    assert card.balance == 20_500 and totals(report(gateway, rid)) == {"paid": (1, 20_000)}
    assert cleared_loads(gateway, clearing) == (1, 20_000)


class Recorder(httpx.BaseTransport):
    """Keeps every request a kiosk sends, so a test can replay one byte for byte."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append((request.method, str(request.url), body))
        return self.inner.handle_request(request)


def test_a_replayed_pickup_request_pays_nothing_more(gateway, centre, tmp_path):
    card = card_for(centre.records[0], balance=0)
    rid = declare(centre, "H18,20000,2026-10")
    approve_roster(gateway, rid)
    token = gateway.register("310000000092", "card-centre", role="kiosk")
    recorder = Recorder()
    client = GatewayClient(gateway.url, token, transport=recorder)
    host = HttpSubsidyHost(client)
    session = TerminalSession(SimReader(card), clock=centre.clock)
    from terminal.roles.pickup import pick_up

    with Journal(tmp_path / "kiosk.db") as journal:
        credits = CreditPath(session, journal, HttpLoadHost(client))
        done = pick_up(
            session,
            host,
            bytes.fromhex("310000000092"),
            holder=answer(0),
            max_balance=100_000,
            credits=credits,
        )
    assert done.paid_fen == 20_000 and card.balance == 20_000
    posts = [(url, body) for method, url, body in recorder.sent if method == "POST"]
    assert [url.rsplit("/v1/", 1)[1].split("/")[0] for url, _ in posts] == ["subsidies", "loads"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for url, body in posts * 2:  # the pickup and the confirmation, each replayed twice
        r = httpx.post(url, content=body, headers=headers)
        assert r.status_code == 200, r.text
    replayed = httpx.post(posts[0][0], content=posts[0][1], headers=headers).json()
    assert replayed["load"]["reference"] == done.load.authorization.reference  # type: ignore[union-attr]
    assert replayed["load"]["state"] == "confirmed"
    assert gateway.count("loads") == 1 and gateway.count("outbox") == 1
    assert totals(report(gateway, rid)) == {"paid": (1, 20_000)}
    # a fresh INITIALIZE FOR LOAD naming the paid line is refused
    session.card_reader.connect()
    info = session.run(flows.select())
    fresh = session.run(
        flows.prepare_load(info, bytes.fromhex("310000000092"), 20_000, centre.clock())
    )
    line_id = report(gateway, rid)["lines"][0]["line_id"]
    with pytest.raises(LoadDeclined, match=f"line {line_id} .* was paid by load"):
        host.paying([line_id], answer(0)).authorize_load(fresh)
    client.close()
    assert card.balance == 20_000


def test_a_card_moved_to_another_kiosk_mid_pickup_is_paid_once(gateway, centre):
    card = card_for(centre.records[0], balance=0)
    rid = declare(centre, "H18,20000,2026-10")
    approve_roster(gateway, rid)
    kiosk_a, reader_a = centre.kiosk(KIOSK_A, card=card)
    kiosk_b, _ = centre.kiosk(KIOSK_B, card=card)
    line_id = report(gateway, rid)["lines"][0]["line_id"]
    # kiosk A gets MAC2 for the line...
    reader_a.connect()
    info = kiosk_a.session.run(flows.select())
    req_a = kiosk_a.session.run(
        flows.prepare_load(info, kiosk_a.terminal_id, 20_000, centre.clock())
    )
    auth_a = kiosk_a.subsidies.paying([line_id], answer(0)).authorize_load(req_a)  # type: ignore[union-attr]
    # ...but the holder takes the card to kiosk B: only A may void A's load, so B pays
    # nothing and the line stays held (B's SELECT already ended A's session on the card)
    early = kiosk_b.pick_up(answer(0))
    assert early.paid == [] and early.unresolved == [auth_a.reference] and card.balance == 0
    assert totals(report(gateway, rid)) == {"held": (1, 20_000)}
    # kiosk A's CREDIT now fails on the card: its session is gone
    reader_a.connect()
    with pytest.raises(CardError):
        kiosk_a.session.run(flows.complete_load(req_a, auth_a))
    assert card.balance == 0
    # back at kiosk A the card voids A's load (void challenge), and B then pays the line
    back = kiosk_a.pick_up(answer(0))
    assert back.settled == [(auth_a.reference, "void")] and back.paid_fen == 20_000
    assert kiosk_b.pick_up(answer(0)).paid == [] and card.balance == 20_000
    doc = report(gateway, rid)
    assert totals(doc) == {"paid": (1, 20_000)} and doc["lines"][0]["load_terminal"] == KIOSK_A
    with gateway.db.tx() as cur:
        cur.execute("SELECT reference, state FROM loads ORDER BY id")
        states = dict(cur.fetchall())
    assert states == {auth_a.reference: "void", back.load.authorization.reference: "confirmed"}  # type: ignore[union-attr]


def test_two_kiosks_racing_at_the_gateway_get_one_load(gateway, centre):
    card = card_for(centre.records[0], balance=0)
    rid = declare(centre, "H18,20000,2026-10")
    approve_roster(gateway, rid)
    line_id = report(gateway, rid)["lines"][0]["line_id"]
    # the same card once more, one credit further on (another online counter), so both
    # requests are valid and neither supersedes the other at the gateway
    twin = copy.deepcopy(card)
    k_twin, _ = centre.kiosk(KIOSK_B, card=twin)
    local = LocalLoadHost(HostSecurityModule(demo_keysets()))
    info = k_twin.session.run(flows.select())
    k_twin.session.run(flows.load(info, bytes(6), 100, centre.clock(), local))
    requests = []
    kiosks = [centre.kiosk(KIOSK_A, card=card)[0], k_twin]
    for kiosk in kiosks:
        kiosk.session.card_reader.connect()
        info = kiosk.session.run(flows.select())
        requests.append(
            kiosk.session.run(flows.prepare_load(info, kiosk.terminal_id, 20_000, centre.clock()))
        )
    assert requests[0].online_atc != requests[1].online_atc
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def race(i: int) -> None:
        host = kiosks[i].subsidies.paying([line_id], answer(0))  # type: ignore[union-attr]
        barrier.wait()
        try:
            host.authorize_load(requests[i])
            outcomes.append("authorized")
        except LoadDeclined as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("authorized") == 1, outcomes
    (loser,) = (x for x in outcomes if x != "authorized")
    assert "is being paid by load" in loser or "a concurrent pickup took" in loser, outcomes
    assert totals(report(gateway, rid)) == {"held": (1, 20_000)}
    with gateway.db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM loads WHERE state = 'authorized' AND purpose <> ''")
        assert cur.fetchone()[0] == 1


def test_a_right_answer_clears_the_wrong_ones_before_the_lock(gateway, centre):
    card = card_for(centre.records[0], balance=0)
    rid = declare(centre, "H18,20000,2026-10")
    approve_roster(gateway, rid)
    kiosk, _ = centre.kiosk(card=card)
    wrong = answer(1)  # 李四's digits on 张三's card
    for left in (2, 1):
        with pytest.raises(LoadDeclined, match=f"{left} more wrong answer"):
            kiosk.pick_up(wrong)
    with gateway.db.tx() as cur:
        cur.execute("SELECT failures, locked_until FROM subsidy_pickup_guard")
        assert cur.fetchall() == [(2, None)]
    assert kiosk.pick_up(answer(0).lower()).paid_fen == 20_000 and card.balance == 20_000
    assert gateway.count("subsidy_pickup_guard") == 0 and gateway.count("loads") == 1
