"""The canteen till against a real gateway: meals, limits, the allowance purse online, the
cash purse through the debit path, receipts, what works offline, and a stopped gateway
holding no sale up while a void waits for it."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from simulators.campus import campus_card
from terminal.campus.canteen import VOID_PATH, VOID_WAIT, CanteenRefused
from terminal.uplink import GatewayClient
from tests.campus_kit import CANTEEN_ID, Till, allowance_of, credit, enrol
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer

LUNCH = datetime(2026, 11, 30, 12, 0)


@pytest.fixture
def till(gateway: GatewayServer, tmp_path: Path) -> Till:
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    return Till(tmp_path, FrozenClock(LUNCH), gateway.url, token)


def test_lunch_from_the_allowance_and_from_the_cash_purse(
    till: Till, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    assert credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}]).json() == {
        "credited": 1,
        "already_held": 0,
    }
    sale = till.sell(card, 1_200, "allowance")
    assert (sale.meal, sale.balance_after, card.balance) == ("lunch", 1_800, 5_000)
    assert allowance_of(gateway.url, "S1") == 1_800
    assert "allowance" in sale.receipt.text() and "12.00" in sale.receipt.text()
    cash = till.sell(card, 800, "cash")
    assert (cash.balance_after, card.balance) == (4_200, 4_200)
    assert till.canteen.pos.journal.totals()["settled"] == (1, 800)
    with pytest.raises(CanteenRefused, match=r"over the lunch limit: ¥20\.00 spent of ¥25\.00"):
        till.sell(card, 600, "cash")
    assert (card.balance, allowance_of(gateway.url, "S1")) == (4_200, 1_800)
    till.canteen.session.clock.now = datetime(2026, 11, 30, 16, 0)  # type: ignore[attr-defined]
    with pytest.raises(CanteenRefused, match="no meal is served at 16:00"):
        till.sell(card, 100, "cash")


def test_offline_the_cash_purse_works_and_the_allowance_does_not(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    till = Till(tmp_path, FrozenClock(LUNCH), "http://127.0.0.1:9", token)  # gateway down
    with pytest.raises(CanteenRefused, match="allowance purse needs the gateway"):
        till.sell(card, 1_000, "allowance")
    assert till.sell(card, 1_000, "cash").balance_after == 4_000
    assert (card.balance, allowance_of(gateway.url, "S1")) == (4_000, 3_000)
    assert gateway.count("campus_allowance_spends") == 0


def test_a_stopped_gateway_holds_no_cash_sale_up_and_the_void_waits_in_the_ledger(
    till: Till, gateway: GatewayServer
) -> None:
    """The gateway stops answering (its port takes the connection, nothing replies) while an
    allowance sale is out: that sale is unanswered, to be voided. The cash sales after it do
    not each wait the gateway's timeout (5 s here) for the void: the first waits at most
    ``VOID_WAIT``, the next ones not at all; the void stays in the ledger and goes out at
    the next allowance sale once the gateway is back, refunding nothing twice."""
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    good = till.canteen.client
    stopped = socket.socket()  # a stopped gateway: the connection is taken, never answered
    stopped.bind(("127.0.0.1", 0))
    stopped.listen(16)
    try:
        url = f"http://127.0.0.1:{stopped.getsockname()[1]}"
        till.canteen.client = GatewayClient(url, "token", timeout=5.0)
        with pytest.raises(CanteenRefused, match=r"did not answer.*sale 1 is voided"):
            till.sell(card, 1_000, "allowance")
        started = time.monotonic()
        paid = [till.sell(card, 100, "cash").balance_after for _ in range(3)]
        waited = time.monotonic() - started
    finally:
        till.canteen.client.close()
        stopped.close()
    assert paid == [4_900, 4_800, 4_700]
    assert waited < VOID_WAIT + 2.0, f"three cash sales waited {waited:.1f} s for the gateway"
    assert till.canteen.ledger.unanswered() == [1]  # the void is kept, not dropped
    till.canteen.client = good
    assert till.sell(card, 500, "allowance").balance_after == 2_500
    assert till.canteen.ledger.state(1) == "voided"
    with gateway.db.tx() as cur:
        cur.execute("SELECT sale_seq, refunded FROM campus_allowance_voids")
        assert [tuple(r) for r in cur.fetchall()] == [(1, 0)]
    assert (allowance_of(gateway.url, "S1"), card.balance) == (2_500, 4_700)


class AnswersVoids(httpx.BaseTransport):
    """A gateway (or a proxy before it) answering every void with ``status`` and ``code``
    without passing it on; the spends reach the gateway, their answers lost while ``lose``."""

    def __init__(self, status: int, code: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.status, self.code, self.lose = status, code, True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == VOID_PATH:
            return httpx.Response(self.status, json={"error": self.code, "reason": "not now"})
        response = self.inner.handle_request(request)
        if self.lose:
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "unavailable"),
        (401, "unauthenticated"),
        (403, "wrong_role"),
        (409, "concurrent_update"),
    ],
)
def test_a_void_not_answered_for_good_stays_queued(
    till: Till, gateway: GatewayServer, status: int, code: str
) -> None:
    """A 5xx, or a refusal of who asks (the till's token or role) or of the moment, is not the
    gateway's word on the void: the sale stays unanswered, to be voided at the next chance,
    and is not recorded refused."""
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    good = till.canteen.client
    answers = AnswersVoids(status, code)
    till.canteen.client = GatewayClient(gateway.url, "token", transport=answers)
    with pytest.raises(CanteenRefused, match="did not answer"):
        till.sell(card, 1_000, "allowance")  # taken by the gateway, the answer lost
    answers.lose = False
    assert till.canteen.resolve_unanswered() == 0
    assert (till.canteen.ledger.unanswered(), till.canteen.ledger.refused_voids()) == ([1], [])
    till.canteen.client = good
    assert till.sell(card, 500, "allowance").balance_after == 2_500  # voided first: refunded
    assert (till.canteen.ledger.state(1), allowance_of(gateway.url, "S1")) == ("voided", 2_500)
