"""Hotlist distribution: 挂失 adds and 解挂 removes are numbered changes a terminal pulls."""

from __future__ import annotations

import httpx
import pytest

from gateway import hotlist
from terminal.uplink import GatewayClient, GatewayRefused, sync_hotlist

ISSUER = "02902900FFFFFFFF"
CARD_A = "0290000000000001"
CARD_B = "0290000000000002"
ADMIN = {"X-Admin-Token": "test-admin-token"}


def admin_change(gw, action: str, serial: str, reason: str = "") -> dict:
    r = httpx.post(
        gw.url + "/v1/admin/hotlist",
        json={"action": action, "issuer_id": ISSUER, "card_serial": serial, "reason": reason},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_versions_and_deltas(gateway):
    token = gateway.register("310000000001")
    client = GatewayClient(gateway.url, token)
    assert client.hotlist(0) == {"version": 0, "since": 0, "more": False, "changes": []}
    assert admin_change(gateway, "add", CARD_A, "挂失")["version"] == 1
    assert admin_change(gateway, "add", CARD_A) == {"version": None, "changed": False}
    assert admin_change(gateway, "add", CARD_B)["version"] == 2
    assert admin_change(gateway, "remove", CARD_A, "解挂")["version"] == 3
    assert admin_change(gateway, "remove", CARD_A)["changed"] is False
    doc = client.hotlist(0)
    assert doc["version"] == 3
    assert [(c["version"], c["action"], c["card_serial"]) for c in doc["changes"]] == [
        (1, "add", CARD_A),
        (2, "add", CARD_B),
        (3, "remove", CARD_A),
    ]
    assert doc["changes"][0]["reason"] == "挂失"
    # a terminal at version 2 gets only the 解挂
    assert [c["version"] for c in client.hotlist(2)["changes"]] == [3]
    assert client.hotlist(3)["changes"] == []
    assert hotlist.listed(gateway.db) == {(ISSUER, CARD_B)}
    client.close()


def test_hotlist_needs_credentials_and_admin_needs_the_admin_token(gateway):
    with pytest.raises(GatewayRefused) as exc:
        GatewayClient(gateway.url, "nope").hotlist()
    assert exc.value.status == 401
    r = httpx.post(
        gateway.url + "/v1/admin/hotlist",
        json={"action": "add", "issuer_id": ISSUER, "card_serial": CARD_A},
    )
    assert r.status_code == 401
    r = httpx.post(
        gateway.url + "/v1/admin/hotlist",
        headers=ADMIN,
        json={"action": "add", "issuer_id": ISSUER, "card_serial": "12"},
    )
    assert r.status_code == 422 and "16 hex digits" in r.json()["reason"]
    r = httpx.post(
        gateway.url + "/v1/admin/hotlist",
        headers=ADMIN,
        json={"action": "burn", "issuer_id": ISSUER, "card_serial": CARD_A},
    )
    assert r.status_code == 422
    assert gateway.count("hotlist_changes") == 0


def test_migrations_are_recorded_and_idempotent(db_url):
    from gateway.storage import open_storage
    from gateway.storage.schema import MIGRATIONS

    for _ in range(2):
        db = open_storage(db_url)
        with db.tx() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r[0] for r in cur.fetchall()] == [m[0] for m in MIGRATIONS]
        db.close()


def test_a_terminal_syncs_its_hotlist_page_by_page(gateway):
    serials = [f"02900000000001{i:02d}" for i in range(7)]
    for s in serials:
        admin_change(gateway, "add", s)
    admin_change(gateway, "remove", serials[2])
    blocked: set[str] = set()

    def apply(change: dict) -> None:
        if change["action"] == "add":
            blocked.add(change["card_serial"])
        else:
            blocked.discard(change["card_serial"])

    with GatewayClient(gateway.url, gateway.register("310000000001")) as client:
        version = sync_hotlist(client, 0, apply, page=3)
        assert version == 8
        assert blocked == set(serials) - {serials[2]}
        admin_change(gateway, "remove", serials[0], "解挂")
        assert sync_hotlist(client, version, apply, page=3) == 9
        assert sync_hotlist(client, 9, apply) == 9
    assert blocked == set(serials) - {serials[0], serials[2]}
