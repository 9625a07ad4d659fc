"""The canteen till against a real gateway: meals, limits, the allowance purse online, the
cash purse through the debit path, receipts, and what works offline."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from simulators.campus import campus_card
from terminal.campus.canteen import CanteenRefused
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
