"""Records held aside (other content under an identity the gateway holds): counted in
/health and the metrics, listed for an operator beside the record kept, admin only."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli_kit import ykt
from tests.gateway_fixtures import ADMIN_TOKEN, GatewayServer
from tests.terminal.qr.kit import QrBus
from tests.traffic import JournaledTerminal, make_cards

TID = "310000000001"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}


def upload(gw: GatewayServer, token: str, batch_id: str, records: list, kind: str | None = None):
    body = {"batch_id": batch_id, "terminal_id": records[0]["terminal_id"], "records": records}
    if kind:
        body["kind"] = kind
    r = httpx.post(gw.url + "/v1/batches", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return [a["status"] for a in r.json()["acks"]]


def test_a_conflict_is_counted_and_listed_beside_the_record_kept(gateway, clock, tmp_path: Path):
    t = JournaledTerminal(TID, tmp_path / "journal.db", clock)
    try:
        (card,) = make_cards(1)
        clock.advance(seconds=30)
        t.tap(card, 150)
        (rec,) = [row.upload_record() for row in t.journal.export(limit=10)]
    finally:
        t.close()
    token = gateway.register(TID)
    health = httpx.get(gateway.url + "/health").json()
    assert health["conflicts_held"] == 0
    assert upload(gateway, token, "b1", [rec]) == ["stored"]
    assert upload(gateway, token, "b2", [dict(rec, amount=rec["amount"] + 1)]) == ["conflict"]

    assert httpx.get(gateway.url + "/health").json()["conflicts_held"] == 1
    assert "\nykt_gateway_conflicts_held 1\n" in httpx.get(gateway.url + "/metrics").text
    assert httpx.get(gateway.url + "/v1/admin/conflicts").status_code == 401
    listed = httpx.get(gateway.url + "/v1/admin/conflicts", headers=ADMIN).json()["conflicts"]
    (held,) = listed
    assert (held["terminal_id"], held["kind"], held["seq"], held["batch_id"]) == (
        TID,
        "purchase",
        rec["terminal_seq"],
        "b2",
    )
    assert held["sent"]["amount"] == rec["amount"] + 1
    assert held["kept"]["amount"] == rec["amount"] and held["kept"]["batch_id"] == "b1"
    assert held["kept"]["content_hash"] != held["content_hash"]
    other = httpx.get(
        gateway.url + "/v1/admin/conflicts", params={"terminal_id": "310000000009"}, headers=ADMIN
    )
    assert other.json() == {"conflicts": []}
    shown = json.loads(ykt("gateway", "conflicts", "--db", gateway.db.url).stdout)
    assert [c["seq"] for c in shown["conflicts"]] == [rec["terminal_seq"]]


def test_a_ride_conflict_lists_the_ride_kept(gateway, clock, tmp_path: Path):
    from simulators.qr_app import RideCodeApp

    bus = QrBus(tmp_path / "qr-bus.db", clock, RideCodeApp())
    assert bus.scan(bus.code(account=1)).green
    (ride,) = [row.upload_record() for row in bus.journal.export_qr()]
    token = gateway.register(ride["terminal_id"], role="validator")
    assert upload(gateway, token, "r1", [ride], "qr_ride") == ["stored"]
    changed = dict(ride, amount=ride["amount"] + 1)
    assert upload(gateway, token, "r2", [changed], "qr_ride") == ["conflict"]
    (held,) = httpx.get(gateway.url + "/v1/admin/conflicts", headers=ADMIN).json()["conflicts"]
    assert held["kind"] == "qr_ride" and held["seq"] == ride["qr_seq"]
    assert (held["sent"]["amount"], held["kept"]["amount"]) == (ride["amount"] + 1, ride["amount"])
