"""The campus back office at a real gateway: allowance day limits per person and group
applied to canteen spends, the account review, entries/exits and sales reports."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.campus.allowance import CST
from simulators.campus import campus_card
from tests.campus_kit import CANTEEN_ID, DOOR_ID, Site, admin, allowance_of, credit, enrol
from tests.conftest import FrozenClock
from tests.gateway_fixtures import ADMIN_TOKEN, GatewayServer


def _get(url: str, path: str, **params: str) -> Any:
    r = httpx.get(url + path, params=params, headers={"X-Admin-Token": ADMIN_TOKEN})
    assert r.status_code == 200, r.text
    return r.json()


def _spend(url: str, token: str, seq: int, card: Any, person: str, amount: int, meal: str) -> Any:
    body = {
        "terminal_id": CANTEEN_ID,
        "sale_seq": seq,
        "card_serial": card.serial.hex().upper(),
        "person_no": person,
        "amount_fen": amount,
        "meal": meal,
    }
    return httpx.post(
        url + "/v1/campus/allowance/spend", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def test_day_limits_per_group_and_person_refuse_an_allowance_spend_over_them(
    gateway: GatewayServer,
) -> None:
    s1, s2 = campus_card(1, "S1"), campus_card(2, "S2")
    enrol(gateway.url, "S1", "students", s1)
    enrol(gateway.url, "S2", "students", s2)
    lines = [{"person_no": p, "amount_fen": 5_000} for p in ("S1", "S2")]
    credit(gateway.url, "2026-11", lines)
    limit = {"scope": "group", "name": "students", "day_limit_fen": 1_000}
    assert admin(gateway.url, "/v1/admin/campus/limits", limit).status_code == 200
    person = {"scope": "person", "name": "S1", "day_limit_fen": 1_500}
    assert admin(gateway.url, "/v1/admin/campus/limits", person).status_code == 200
    unknown = admin(gateway.url, "/v1/admin/campus/limits", {**limit, "name": "aliens"})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_group")
    token = gateway.register(CANTEEN_ID, "campus", role="pos")

    assert _spend(gateway.url, token, 1, s2, "S2", 800, "lunch").status_code == 200
    over = _spend(gateway.url, token, 2, s2, "S2", 300, "dinner")
    assert (over.status_code, over.json()["error"]) == (409, "over_limit")
    assert "spent 800 fen of the allowance today, the day limit is 1000" in over.json()["reason"]
    assert _spend(gateway.url, token, 3, s1, "S1", 1_200, "lunch").status_code == 200  # 1,500
    assert _spend(gateway.url, token, 4, s1, "S1", 400, "lunch").json()["error"] == "over_limit"
    assert (allowance_of(gateway.url, "S1"), allowance_of(gateway.url, "S2")) == (3_800, 4_200)

    review = {p["person_no"]: p for p in _get(gateway.url, "/v1/admin/campus/accounts")["people"]}
    assert review["S1"] == {
        "person_no": "S1",
        "name": "S1",
        "group": "students",
        "valid_from": "2024-09-01",
        "valid_until": "2028-07-31",
        "cards": [{"card_serial": s1.serial.hex().upper(), "state": "active"}],
        "allowance_fen": 3_800,
        "day_limit_fen": 1_500,
    }
    assert review["S2"]["day_limit_fen"] == 1_000

    today = datetime.now(CST).date().isoformat()  # the spends' day at the gateway
    sales = _get(gateway.url, "/v1/admin/campus/reports/sales", since=today)
    assert [(d["meal"], d["sales"], d["amount_fen"]) for d in sales["days"]] == [
        ("lunch", 2, 2_000)
    ]


def test_entries_and_exits_per_area_per_day(gateway: GatewayServer, tmp_path: Path) -> None:
    token = gateway.register(DOOR_ID, "campus", role="door")
    clock = FrozenClock(datetime(2026, 11, 30, 8, 30))
    site = Site(tmp_path, clock, gateway.url, token)
    card = campus_card(1, "T1")
    enrol(gateway.url, "T1", "staff", card)
    site.sync()
    assert site.tap(card, "east-in").granted and site.tap(card, "lab").granted
    clock.now = datetime(2026, 12, 1, 9, 0)
    assert site.tap(card, "east-out").granted and not site.tap(card, "east-out").granted
    assert site.tap(card, "clock-in").granted  # attendance: not an entry
    site.upload()
    days = _get(
        gateway.url, "/v1/admin/campus/reports/entries", since="2026-11-30", until="2026-12-01"
    )
    assert days["days"] == [
        {"day": "2026-11-30", "area": "campus", "in": 1, "out": 0},
        {"day": "2026-11-30", "area": "lab", "in": 1, "out": 0},
        {"day": "2026-12-01", "area": "campus", "in": 0, "out": 1},
    ]
    r = httpx.get(
        gateway.url + "/v1/admin/campus/reports/entries",
        params={"since": "2026-12-01", "until": "2026-11-01"},
        headers={"X-Admin-Token": ADMIN_TOKEN},
    )
    assert (r.status_code, r.json()["error"]) == (422, "bad_date")
