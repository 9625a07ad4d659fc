"""A lost card's purchases that reach the gateway after its balance was carried onto the
replacement: the issuer paid them twice (the carry and the debit), so /health, the metrics,
the admin route and ``ykt gateway late-after-carry`` say which, by card, with the amounts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.carried_late import late_after_carry
from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import DEMO_ISSUERS, CardProfile, demo_keyset, issue_card
from terminal.roles.load_host import HttpLoadHost, resolve_load
from terminal.roles.registry import CARRY_PURPOSE
from terminal.uplink import GatewayClient
from tests.adversarial.test_hostile_desk import CARRIED, DESK_A, CarryScene, bearer, carry
from tests.adversarial.test_hostile_validator import BUS, forged_suspect
from tests.cli_kit import ykt
from tests.gateway.test_conflicts import upload
from tests.gateway_fixtures import ADMIN_TOKEN
from tests.traffic import JournaledTerminal

__all__ = ["carry"]  # the fixture: a lost card topped up, hotlisted, its replacement claimed

LATE_BUS = "310000000202"  # a validator that was offline: it uploads days after its rides
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
ROUTE = "/v1/admin/late-after-carry"


def lost_chip(scene: CarryScene) -> SoftEPurseCard:
    """The lost card as the kiosk left it (the scene keeps no card object): its number and
    keys, the balance it was topped up to and the online counter that load moved."""
    chip = scene.card(scene.lost)
    chip.state.balance, chip.state.online_atc = CARRIED, 1
    return chip


def twin_chip(scene: CarryScene) -> SoftEPurseCard:
    """A card of another issuer whose serial is the lost card's: not the lost card."""
    other = DEMO_ISSUERS["beijing"]
    profile = CardProfile(card_number=scene.lost, issuer_id=other, balance=1_000)
    return issue_card(profile, demo_keyset(other))


def shown(scene: CarryScene, **params: str) -> dict[str, Any]:
    r = httpx.get(scene.gw.url + ROUTE, params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return dict(r.json())


def health_count(scene: CarryScene) -> int:
    return int(httpx.get(scene.gw.url + "/health").json()["late_after_carry"])


def test_a_purchase_uploaded_after_the_carry_is_listed_by_card(carry, clock, tmp_path: Path):
    """Bus A uploads its ride of the lost card before the carry (counted: not listed); bus B,
    offline, took a ride of the card before the loss and uploads it after the carry (listed
    with its amount); a forged suspect row for the card comes after it too (listed apart, it
    may not have debited); a twin of another issuer rides after the carry (not the card)."""
    old, twin = lost_chip(carry), twin_chip(carry)
    bus_a = JournaledTerminal(BUS, tmp_path / "a.db", clock)
    bus_b = JournaledTerminal(LATE_BUS, tmp_path / "b.db", clock)
    clock.advance(minutes=2)
    counted = bus_a.tap(old, 300).upload_record()
    clock.advance(minutes=3)
    late = bus_b.tap(old, 450).upload_record()
    token_a = carry.gw.register(BUS, "bus-co", role="validator")
    token_b = carry.gw.register(LATE_BUS, "bus-co", role="validator")
    assert upload(carry.gw, token_a, "a1", [counted]) == ["stored"]

    replacement = carry.card(carry.replacement)
    load = carry.credit(carry.tokens[DESK_A], replacement, DESK_A, CARRIED - 300, CARRY_PURPOSE)
    assert replacement.balance == CARRIED - 300  # the ride of bus B was not in the count
    assert health_count(carry) == 0

    clock.advance(minutes=1)
    twin_ride = bus_a.tap(twin, 200).upload_record()
    assert twin_ride["card_serial"] == counted["card_serial"] != ""
    assert twin_ride["issuer_id"] != counted["issuer_id"]
    issuer, serial = counted["issuer_id"], counted["card_serial"]
    forged = dict(forged_suspect(serial, issuer, counted["terminal_seq"] + 10), amount=120)
    assert upload(carry.gw, token_a, "a2", [twin_ride, forged]) == ["stored", "stored"]
    assert upload(carry.gw, token_b, "b1", [late]) == ["stored"]
    bus_a.close()
    bus_b.close()

    doc = shown(carry)
    (card,) = doc["cards"]
    assert doc["late_after_carry"] == 2
    assert (
        card["lost_card_number"],
        card["replacement_card_number"],
        card["carry_reference"],
        card["carry_state"],
        card["carried_fen"],
    ) == (carry.lost, carry.replacement, load["reference"], "confirmed", CARRIED - 300)
    assert [(r["terminal_id"], r["seq"], r["amount"], r["state"]) for r in card["late"]] == [
        (BUS, forged["terminal_seq"], 120, "suspect"),
        (LATE_BUS, late["terminal_seq"], 450, "settled"),
    ]
    assert card["late"][1]["txn_time"] == late["txn_time"]
    assert (card["late_settled_fen"], card["late_suspect_fen"]) == (450, 120)
    # both times are the gateway's epoch milliseconds: the upload came after the carry, now
    now_ms = time.time() * 1000
    for r in card["late"]:
        assert card["carried_at_ms"] < r["received_at_ms"] <= now_ms < r["received_at_ms"] + 60_000

    assert health_count(carry) == 2
    assert "\nykt_gateway_late_after_carry 2\n" in httpx.get(carry.gw.url + "/metrics").text
    cli = json.loads(ykt("gateway", "late-after-carry", "--db", carry.gw.db.url).stdout)
    assert cli == doc
    assert shown(carry, card=carry.replacement) == doc
    by_lost = ykt("gateway", "late-after-carry", "--db", carry.gw.db.url, "--card", carry.lost)
    assert json.loads(by_lost.stdout) == doc
    assert shown(carry, card=f"{carry.lost[:-1]}9") == {"late_after_carry": 0, "cards": []}


def test_a_void_carry_lists_nothing(carry, clock, tmp_path: Path):
    """The carry is authorised (the card may hold it): a ride uploaded after it is listed
    under that carry. The card proves it never credited the carry, which is voided: no money
    moved, nothing is listed; the lost card's balance is still to be carried, ride included."""
    desk = carry.tokens[DESK_A]
    old = lost_chip(carry)
    bus = JournaledTerminal(LATE_BUS, tmp_path / "b.db", clock)
    clock.advance(minutes=2)
    ride = bus.tap(old, 450).upload_record()
    bus.close()
    session, request = carry.initialize(carry.card(carry.replacement), DESK_A, CARRIED)
    asked = carry.ask(desk, request, CARRY_PURPOSE)
    assert asked.status_code == 200, asked.text
    token = carry.gw.register(LATE_BUS, "bus-co", role="validator")
    assert upload(carry.gw, token, "b1", [ride]) == ["stored"]
    (card,) = late_after_carry(carry.gw.db)["cards"]
    assert (card["carry_reference"], card["carry_state"], card["late_settled_fen"]) == (
        asked.json()["reference"],
        "authorized",
        450,
    )
    assert health_count(carry) == 1

    with GatewayClient(carry.gw.url, desk) as client:
        host = HttpLoadHost(client, sleep=lambda s: None)
        (pending,) = host.pending()
        assert resolve_load(session, host, pending) == "void"
    assert shown(carry) == {"late_after_carry": 0, "cards": []}
    assert health_count(carry) == 0
    assert "\nykt_gateway_late_after_carry 0\n" in httpx.get(carry.gw.url + "/metrics").text
    proven = httpx.get(f"{carry.gw.url}/v1/cards/{carry.lost}/balance", headers=bearer(desk))
    assert proven.json()["balance_fen"] == CARRIED - 450, proven.text


def test_the_list_is_the_admins_only(carry):
    """A desk's token, a wrong admin token and none are refused; a card number that is not
    one is refused with the reason."""
    for headers in (bearer(carry.tokens[DESK_A]), {"X-Admin-Token": "guess"}, {}):
        r = httpx.get(carry.gw.url + ROUTE, headers=headers)
        assert (r.status_code, r.json()["error"]) == (401, "unauthenticated"), r.text
        assert "admin token" in r.json()["reason"]
    r = httpx.get(carry.gw.url + ROUTE, params={"card": "12345"}, headers=ADMIN)
    assert (r.status_code, r.json()["error"]) == (422, "bad_card_number"), r.text
    assert "19" in r.json()["reason"]
