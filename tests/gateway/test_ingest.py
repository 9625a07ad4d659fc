"""Batch ingest over a real uvicorn, on SQLite and PostgreSQL: stored once, acknowledged per
transaction, and every kind of bad upload refused with a reason and nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.gateway_fixtures import GatewayServer
from tests.traffic import JournaledTerminal, make_cards

TID = "310000000001"
OTHER = "310000000002"


@pytest.fixture
def terminal(tmp_path: Path, clock) -> JournaledTerminal:  # type: ignore[no-untyped-def]
    t = JournaledTerminal(TID, tmp_path / "journal.db", clock)
    cards = make_cards(3)
    for i in range(12):
        clock.advance(seconds=30)
        t.tap(cards[i % 3], 150 + i)
    yield t
    t.close()


def records(terminal: JournaledTerminal) -> list[dict]:
    return [row.upload_record() for row in terminal.journal.export(limit=1000)]


def post(gw: GatewayServer, token: str | None, body: object, *, raw: bytes | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw is None:
        raw = json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    return httpx.post(gw.url + "/v1/batches", content=raw, headers=headers)


def batch(recs: list[dict], batch_id: str = "b1", terminal_id: str = TID) -> dict:
    return {"batch_id": batch_id, "terminal_id": terminal_id, "records": recs}


def test_batch_is_stored_once_and_acknowledged_per_transaction(gateway, terminal):
    token = gateway.register(TID)
    recs = records(terminal)
    r = post(gateway, token, batch(recs))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["counts"] == {"stored": 12, "duplicate": 0, "conflict": 0}
    assert [a["terminal_seq"] for a in doc["acks"]] == [x["terminal_seq"] for x in recs]
    assert {a["status"] for a in doc["acks"]} == {"stored"}
    assert gateway.count("txn") == 12
    assert gateway.count("outbox") == 12

    # the same batch again (a lost acknowledgement): same acks, nothing new stored
    again = post(gateway, token, batch(recs))
    assert again.status_code == 200
    assert again.json()["replay"] is True
    assert again.json()["counts"] == {"stored": 0, "duplicate": 12, "conflict": 0}
    # overlapping rows in a new batch: only the new ones are stored
    more = post(gateway, token, batch(recs[6:], "b2"))
    assert more.json()["counts"]["duplicate"] == 6
    assert gateway.count("txn") == 12
    assert gateway.count("outbox") == 12


def test_same_identity_with_other_content_is_a_conflict_kept_aside(gateway, terminal):
    token = gateway.register(TID)
    recs = records(terminal)
    assert post(gateway, token, batch(recs)).status_code == 200
    changed = dict(recs[0], amount=recs[0]["amount"] + 1)
    r = post(gateway, token, batch([changed], "b-changed"))
    assert r.status_code == 200
    assert r.json()["acks"] == [{"terminal_seq": recs[0]["terminal_seq"], "status": "conflict"}]
    with gateway.db.tx() as cur:
        cur.execute("SELECT amount FROM txn WHERE terminal_seq = ?", (recs[0]["terminal_seq"],))
        assert cur.fetchone()[0] == recs[0]["amount"]  # the first version stands
    assert gateway.count("txn_conflicts") == 1


def test_unauthenticated_unknown_and_revoked_terminals_are_refused(gateway, terminal):
    recs = records(terminal)
    r = post(gateway, None, batch(recs))
    assert r.status_code == 401 and "missing" in r.json()["reason"]
    r = post(gateway, "ykt_not-a-real-token", batch(recs))
    assert r.status_code == 401 and r.json()["reason"] == "unknown terminal credentials"
    token = gateway.register(TID)
    admin = {"X-Admin-Token": "test-admin-token"}
    assert httpx.post(f"{gateway.url}/v1/admin/terminals/{TID}/revoke", headers=admin).is_success
    r = post(gateway, token, batch(recs))
    assert r.status_code == 403 and "revoked" in r.json()["reason"]
    assert gateway.count("txn") == 0


def test_a_batch_cannot_claim_another_terminal(gateway, terminal):
    gateway.register(TID)
    other_token = gateway.register(OTHER)
    recs = records(terminal)
    r = post(gateway, other_token, batch(recs, terminal_id=TID))
    assert r.status_code == 403
    assert "credentials are for 310000000002" in r.json()["reason"]
    # the batch header names the right terminal but the records are someone else's
    r = post(gateway, other_token, batch(recs, terminal_id=OTHER))
    assert r.status_code == 403
    assert r.json()["error"] == "wrong_terminal"
    assert gateway.count("txn") == 0


def test_replayed_batch_id_with_altered_content_is_refused(gateway, terminal):
    token = gateway.register(TID)
    recs = records(terminal)
    assert post(gateway, token, batch(recs[:5], "b-replay")).status_code == 200
    altered = [dict(recs[0], amount=1), *recs[1:5], *recs[5:7]]
    r = post(gateway, token, batch(altered, "b-replay"))
    assert r.status_code == 409
    assert r.json()["error"] == "batch_replayed"
    assert gateway.count("txn") == 5  # the two new rows in the replay were not stored


def test_malformed_json_and_bad_layout(gateway, terminal):
    token = gateway.register(TID)
    r = post(gateway, token, None, raw=b'{"batch_id": "x", "records": [')
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    r = post(gateway, token, {"batch_id": "x", "terminal_id": TID})
    assert r.status_code == 400 and "exactly batch_id" in r.json()["reason"]
    r = post(gateway, token, batch([]))
    assert r.status_code == 400 and "non-empty" in r.json()["reason"]
    assert gateway.count("txn") == 0 and gateway.count("batches") == 0


def test_oversized_batches_are_refused(gateway, terminal):
    token = gateway.register(TID)
    rec = records(terminal)[0]
    many = [dict(rec, terminal_seq=i) for i in range(1001)]
    r = post(gateway, token, batch(many))
    assert r.status_code == 413 and "at most 1000" in r.json()["reason"]
    r = post(gateway, token, None, raw=b" " * (2 * 1024 * 1024 + 1))
    assert r.status_code == 413
    assert gateway.count("txn") == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", -1, "amount -1 out of range"),
        ("amount", 12.5, "amount must be an integer"),
        ("amount", "100", "amount must be an integer"),
        ("amount", True, "amount must be an integer"),
        ("amount", 10**12, "out of range"),
        ("txn_type", 0x02, "not a known purchase type"),
        ("txn_time", "2026-13-01T00:00:00", "not an ISO date-time"),
        ("txn_time", "2026-11-28T08:30:15+08:00", "no zone"),
        ("tac", "12345", "tac must be 8 hex digits"),
        ("tac", None, "settled record must carry"),
        ("card_serial", "XYZ", "card_serial must be 16 hex digits"),
        ("state", "intent", "state must be"),
        ("context", [], "context must be a JSON object"),
    ],
)
def test_one_bad_record_refuses_the_whole_batch(gateway, terminal, field, value, reason):
    token = gateway.register(TID)
    recs = records(terminal)
    recs[7] = dict(recs[7], **{field: value})
    r = post(gateway, token, batch(recs))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_record"
    assert r.json()["reason"].startswith("record 7 ")
    assert reason in r.json()["reason"]
    assert gateway.count("txn") == 0 and gateway.count("outbox") == 0


def test_unknown_and_missing_fields_are_refused(gateway, terminal):
    token = gateway.register(TID)
    recs = records(terminal)
    recs[0] = dict(recs[0], surprise=1)
    del recs[0]["mac2"]
    r = post(gateway, token, batch(recs))
    assert r.status_code == 422
    assert "unknown field(s) surprise" in r.json()["reason"]
    assert "missing field(s) mac2" in r.json()["reason"]
    recs = records(terminal)
    recs[3] = dict(recs[3], terminal_seq=recs[2]["terminal_seq"])
    r = post(gateway, token, batch(recs))
    assert r.status_code == 422 and "appears twice" in r.json()["reason"]
    assert gateway.count("txn") == 0


def test_health_metrics_and_openapi(gateway, terminal):
    token = gateway.register(TID)
    post(gateway, token, batch(records(terminal)))
    health = httpx.get(gateway.url + "/health").json()
    assert health["status"] == "ok" and health["outbox_depth"] == 12
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'ykt_gateway_ingested_transactions_total{status="stored"} 12' in metrics
    assert "ykt_gateway_outbox_depth 12" in metrics
    lag = next(x for x in metrics.splitlines() if x.startswith("ykt_gateway_clearing_lag"))
    assert float(lag.split()[1]) >= 0
    rate = next(x for x in metrics.splitlines() if x.startswith("ykt_gateway_ingest_rate "))
    assert float(rate.split()[1]) == pytest.approx(12 / 60, abs=0.01)
    spec = httpx.get(gateway.url + "/openapi.json").json()
    assert "/v1/batches" in spec["paths"] and "/v1/loads" in spec["paths"]
    schema = spec["paths"]["/v1/batches"]["post"]["requestBody"]["content"]["application/json"]
    assert "records" in json.dumps(schema)
