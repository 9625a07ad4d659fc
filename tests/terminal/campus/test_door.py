"""The door role against a real gateway: rules, time zones, anti-passback, clones, loss, events."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from simulators.campus import campus_card, clone
from terminal.runtime.door import decision_line, decision_text
from terminal.words import set_lang
from tests.campus_kit import DOOR_ID, Site, admin, enrol
from tests.conftest import FrozenClock
from tests.gateway_fixtures import ADMIN_TOKEN, GatewayServer
from tests.terminal.cli.test_words import english

MONDAY_MORNING = datetime(2026, 11, 30, 8, 30)


@pytest.fixture
def site(gateway: GatewayServer, tmp_path: Path) -> Site:
    token = gateway.register(DOOR_ID, "campus", role="door")
    return Site(tmp_path, FrozenClock(MONDAY_MORNING), gateway.url, token)


def test_door_decisions_events_and_counts(site: Site, gateway: GatewayServer) -> None:
    student, staff = campus_card(1, "S1"), campus_card(2, "T1")
    enrol(gateway.url, "S1", "students", student)
    enrol(gateway.url, "T1", "staff", staff)
    assert site.sync() == 2

    first = site.tap(student, "east-in")
    assert (first.granted, first.person_no) == (True, "S1")
    again = site.tap(student, "east-in")
    assert (again.granted, again.reason) == (False, "anti-passback: already inside 'campus'")
    assert site.tap(student, "east-out").granted
    by_rule = site.tap(student, "lab")
    assert (by_rule.granted, by_rule.reason) == (False, "group 'students' may not use door 'lab'")
    assert site.tap(staff, "lab").granted

    site.door.session.clock.now = datetime(2026, 11, 30, 23, 0)  # type: ignore[attr-defined]
    late = site.tap(student, "east-in")
    assert (late.granted, late.reason) == (False, "outside time zone 'daytime' (Mon 23:00)")
    assert site.tap(staff, "east-in").granted

    fake = site.tap(clone(student), "east-in")
    assert not fake.granted and "not a genuine campus card" in fake.reason
    assert fake.card_serial == student.serial.hex().upper()

    assert site.door.counts == {"campus": {"in": 2, "out": 1}, "lab": {"in": 1, "out": 0}}
    assert site.door.journal.count() == 8
    assert site.upload() == 8
    assert gateway.count("campus_events") == 8
    counts = httpx.get(
        gateway.url + "/v1/admin/campus/counts", headers={"X-Admin-Token": ADMIN_TOKEN}
    ).json()
    assert counts == {"campus": {"in": 2, "out": 1}, "lab": {"in": 1, "out": 0}}


def test_a_card_reported_lost_is_refused_once_synced(site: Site, gateway: GatewayServer) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    site.sync()
    assert site.tap(card, "east-in").granted
    serial = card.serial.hex().upper()
    r = admin(gateway.url, f"/v1/admin/campus/cards/{serial}/loss", {"reason": "lost at gym"})
    assert r.status_code == 200
    assert site.tap(card, "east-out").granted  # offline: the door has not heard yet
    site.sync()
    refused = site.tap(card, "east-in")
    assert (refused.granted, refused.reason) == (False, "card reported lost or blocked (hotlist)")
    admin(gateway.url, f"/v1/admin/campus/cards/{serial}/unblock", {})
    site.sync()
    assert site.tap(card, "east-in").granted


def test_offline_events_are_uploaded_once(site: Site, gateway: GatewayServer) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    site.sync()
    site.client.close()
    from terminal.uplink import GatewayClient, GatewayUnavailable

    site.client = GatewayClient("http://127.0.0.1:9", site.token, timeout=0.5)  # gateway down
    for point in ("east-in", "east-out", "east-in"):
        assert site.tap(card, point).granted
    with pytest.raises(GatewayUnavailable):
        site.upload()
    assert (site.door.journal.count(uploaded=False), gateway.count("campus_events")) == (3, 0)
    site.client = GatewayClient(gateway.url, site.token)
    batch = site.door.journal.pending()
    assert site.upload() == 3
    assert site.upload() == 0
    again = site.client.request(
        "POST", "/v1/campus/events", json={"terminal_id": DOOR_ID, "events": batch}
    )
    assert again == {"stored": 0, "duplicates": 3}
    assert gateway.count("campus_events") == 3


def test_door_refusals_are_in_the_terminals_language(site: Site, gateway: GatewayServer) -> None:
    student, stranger = campus_card(1, "S1"), campus_card(3, "X9")
    enrol(gateway.url, "S1", "students", student)
    site.sync()
    assert site.tap(student, "east-in").granted
    counts = {area: dict(n) for area, n in site.door.counts.items()}
    refused = [
        site.tap(student, "east-in"),  # anti-passback
        site.tap(student, "lab"),  # the group's rules
        site.tap(stranger, "east-in"),  # not enrolled
        site.tap(clone(student), "east-out"),  # not genuine
    ]
    site.door.session.clock.now = datetime(2026, 11, 30, 23, 0)  # type: ignore[attr-defined]
    refused.append(site.tap(student, "east-out"))  # outside the time zone
    try:
        set_lang("zh")
        lines = [decision_text(d) for d in refused]
        texts = [json.loads(decision_line(DOOR_ID, d))["text"] for d in refused]
    finally:
        set_lang("en")
    said = [x.split("：", 1)[1] for x in lines] + texts  # after the point's name
    assert [english(x) for x in said] == [None] * 10, said
    assert lines[0] == "拒绝  east-in：S1：防潜回：已在“campus”内，未刷出"
    assert texts[1:4] == [
        "拒绝：“students”组不能使用“lab”门",
        "拒绝：此卡未在本单位登记",
        "拒绝：不是真的校园卡（卡内没有校园密钥）",
    ]
    assert texts[4] == "拒绝：不在“daytime”时段内（23:00）"
    # the access events and the English line keep the English reason; nobody passed
    assert [d.reason for d in refused[:3]] == [
        "anti-passback: already inside 'campus'",
        "group 'students' may not use door 'lab'",
        "card is not enrolled at this site",
    ]
    assert decision_text(refused[2]) == (
        "RED   east-in: X9 refused: card is not enrolled at this site"
    )
    assert not any(d.granted for d in refused) and site.door.counts == counts
    site.upload()
    assert gateway.count("campus_events") == 6
