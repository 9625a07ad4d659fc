"""Campus attacks: a cloned card, a replayed authentication answer, a door lying in uploads."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest

from simulators.campus import campus_card, clone
from simulators.epurse_card import SoftEPurseCard
from tests.campus_kit import DOOR_ID, Site, enrol
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer


@pytest.fixture
def site(gateway: GatewayServer, tmp_path: Path) -> Site:
    token = gateway.register(DOOR_ID, "campus", role="door")
    s = Site(tmp_path, FrozenClock(datetime(2026, 11, 30, 8, 30)), gateway.url, token)
    return s


class ReplayingCard:
    """A card that answers INTERNAL AUTHENTICATE with an answer recorded from the real card."""

    def __init__(self, card: SoftEPurseCard, recorded: bytes):
        self.card, self.recorded = card, recorded
        self.atr = card.atr

    def reset(self) -> None:
        self.card.reset()

    def process(self, apdu: bytes) -> bytes:
        if apdu[1] == 0x88:
            return self.recorded + b"\x90\x00"
        return self.card.process(apdu)


def test_a_cloned_uid_card_opens_nothing(site: Site, gateway: GatewayServer) -> None:
    genuine = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", genuine)
    site.sync()
    fake = site.tap(clone(genuine), "east-in")
    assert not fake.granted
    assert "does not hold its campus key" in fake.reason
    assert site.door.counts == {}
    assert site.upload() == 1
    with gateway.db.tx() as cur:
        cur.execute("SELECT result, person_no FROM campus_events")
        assert cur.fetchall() == [("refused", None)]


def test_a_replayed_authentication_answer_is_refused(site: Site, gateway: GatewayServer) -> None:
    genuine = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", genuine)
    site.sync()
    recorded: list[bytes] = []
    original = genuine.process

    def listen(apdu: bytes) -> bytes:
        answer = original(apdu)
        if apdu[1] == 0x88:
            recorded.append(answer[:-2])
        return answer

    genuine.process = listen  # type: ignore[method-assign]
    assert site.tap(genuine, "east-in").granted
    replay = site.tap(ReplayingCard(clone(genuine), recorded[0]), "east-out")  # type: ignore[arg-type]
    assert not replay.granted
    assert "does not hold its campus key" in replay.reason
    assert site.door.counts == {"campus": {"in": 1, "out": 0}}


def test_a_door_cannot_upload_events_for_another_door(site: Site, gateway: GatewayServer) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    site.sync()
    site.tap(card, "east-in")
    events = site.door.journal.pending()
    forged = [{**e, "terminal_id": "310000000999"} for e in events]
    r = httpx.post(
        gateway.url + "/v1/campus/events",
        json={"terminal_id": "310000000999", "events": forged},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert (r.status_code, r.json()["error"]) == (403, "wrong_terminal")
    assert "uploads only its own events" in r.json()["reason"]
    assert gateway.count("campus_events") == 0


def test_a_replayed_batch_with_changed_content_is_refused(
    site: Site, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    site.sync()
    site.tap(card, "east-in")
    site.tap(card, "east-in")  # refused: anti-passback
    events = site.door.journal.pending()
    assert site.upload() == 2
    rewritten = [{**e, "result": "granted", "reason": "granted"} for e in events]
    r = httpx.post(
        gateway.url + "/v1/campus/events",
        json={"terminal_id": DOOR_ID, "events": rewritten},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert (r.status_code, r.json()["error"]) == (409, "event_conflict")
    assert "stored with other content" in r.json()["reason"]
    with gateway.db.tx() as cur:
        cur.execute("SELECT result FROM campus_events ORDER BY event_seq")
        assert [row[0] for row in cur.fetchall()] == ["granted", "refused"]


def test_a_validator_token_cannot_upload_door_events(site: Site, gateway: GatewayServer) -> None:
    token = gateway.register("310000000555", "bus-co", role="validator")
    r = httpx.post(
        gateway.url + "/v1/campus/events",
        json={"terminal_id": "310000000555", "events": []},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (r.status_code, r.json()["error"]) == (403, "wrong_role")
    assert gateway.count("campus_events") == 0
