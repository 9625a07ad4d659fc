"""The clearing simulator: TAC checks with issuer keys, de-duplication, settlement, and
reconciliation, on records from real software-card purchases and loads."""

from __future__ import annotations

import httpx
import pytest

from gateway.hsm import HostSecurityModule, LocalLoadHost
from simulators.clearing.app import create_app
from simulators.clearing.ledger import Ledger, record_key
from simulators.clearing.report import format_settlement
from simulators.clearing.verify import TacVerifier
from simulators.profiles import DEMO_ISSUERS, demo_card, demo_keyset
from terminal.epurse import flows
from terminal.readers.sim import SimReader
from terminal.record import PURCHASE as RECORD
from terminal.roles.session import TerminalSession
from tests.servers import UvicornThread
from tests.traffic import JournaledTerminal, make_cards

KEYSETS = [demo_keyset(i) for i in DEMO_ISSUERS.values()]


def purchase_records(tmp_path, clock, n=6, terminal_id="310000000101", operator="metro"):
    term = JournaledTerminal(terminal_id, tmp_path / f"{terminal_id}.db", clock)
    cards = make_cards(3)
    for i in range(n):
        clock.advance(seconds=40)
        term.tap(cards[i % 3], 100 * (i + 1))
    out = []
    for row in term.journal.export():
        out.append(RECORD.clearing_record(row.upload_record(), operator))
    term.close()
    return out


def load_record(clock, amount=3_000):
    card = demo_card(21, balance=1_000)
    host = LocalLoadHost(HostSecurityModule(KEYSETS, clock=clock))
    session = TerminalSession(SimReader(card), clock=clock)
    info = session.run(flows.select())
    result = session.run(
        flows.load(info, bytes.fromhex("310000000090"), amount, session.now(), host)
    )
    req, auth = result.request, result.authorization
    rec = {
        "kind": "load",
        "terminal_id": req.terminal_id.hex().upper(),
        "operator_id": "card-centre",
        "issuer_id": req.issuer_id.hex().upper(),
        "card_serial": req.card_serial.hex().upper(),
        "online_atc": req.online_atc,
        "amount": req.amount,
        "balance_before": req.balance_before,
        "key_version": req.key_version,
        "host_time": auth.when.isoformat(),
        "tac": result.tac.hex().upper(),
    }
    rec["key"] = record_key(rec)
    return rec


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(str(tmp_path / "clearing.db"), TacVerifier(KEYSETS))
    yield led
    led.close()


def test_genuine_records_are_accepted_once(ledger, tmp_path, clock):
    recs = [*purchase_records(tmp_path, clock), load_record(clock)]
    results = ledger.post("gw", recs)
    assert [r["status"] for r in results] == ["accepted"] * 7
    again = ledger.post("gw", recs)
    assert [r["status"] for r in again] == ["duplicate"] * 7
    assert ledger.stats() == {"accepted": 7, "deliveries": 14, "rejected": 0}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": 1}, "TAC does not verify"),
        ({"terminal_seq": 999, "key": "P:310000000101:999"}, "TAC does not verify"),
        ({"txn_time": "2026-11-28T09:00:00"}, "TAC does not verify"),
        ({"tac": "00000000"}, "TAC does not verify"),
        ({"tac": None}, "no TAC"),
        ({"issuer_id": "1111111111111111"}, "unknown issuer"),
        ({"key_version": 9}, "no key version 9"),
        ({"key": "P:other:1"}, "idempotency key must be"),
        ({"amount": -5}, "non-negative"),
    ],
)
def test_forged_or_altered_records_are_rejected_with_a_reason(
    ledger, tmp_path, clock, change, reason
):
    rec = dict(purchase_records(tmp_path, clock, n=1)[0], **change)
    (result,) = ledger.post("gw", [rec])
    assert result["status"] == "rejected" and reason in result["reason"]
    assert ledger.stats()["accepted"] == 0
    assert ledger.settlement()["totals"]["purchases"] == 0


def test_altered_load_and_reused_key_are_rejected(ledger, clock):
    rec = load_record(clock)
    (bad,) = ledger.post("gw", [dict(rec, amount=rec["amount"] * 10)])
    assert bad["status"] == "rejected" and "TAC" in bad["reason"]
    assert ledger.post("gw", [rec])[0]["status"] == "accepted"
    (clash,) = ledger.post("gw", [dict(rec, operator_id="someone-else")])
    assert clash["status"] == "rejected" and "different content" in clash["reason"]


def test_settlement_and_reconciliation_add_up(ledger, tmp_path, clock):
    metro = purchase_records(tmp_path, clock, n=6)
    bus = purchase_records(tmp_path, clock, n=4, terminal_id="310000000201", operator="bus")
    load = load_record(clock)
    ledger.post("gw", [*metro, *bus, load])
    doc = ledger.settlement()
    assert doc["totals"] == {
        "purchases": 10,
        "purchase_amount": sum(r["amount"] for r in metro + bus),
        "loads": 1,
        "load_amount": 3_000,
    }
    ops = {o["operator_id"]: o for o in doc["by_operator"]}
    assert ops["bus"]["purchase_amount"] == sum(r["amount"] for r in bus)
    assert ops["card-centre"]["operator_net"] == -3_000
    per_issuer = {i["issuer_id"]: i["purchase_amount"] for i in doc["by_issuer"]}
    assert sum(per_issuer.values()) == doc["totals"]["purchase_amount"]
    cells = doc["by_issuer_operator"]
    assert sum(c["purchase_amount"] for c in cells) == doc["totals"]["purchase_amount"]
    assert ledger.settlement("2001-01-01")["totals"]["purchases"] == 0
    rec = ledger.reconciliation("gw")
    by = {(t["terminal_id"], t["kind"]): t for t in rec["terminals"]}
    assert by[("310000000201", "purchase")]["count"] == 4
    assert ledger.reconciliation("other-gateway")["terminals"] == []
    text = "\n".join(format_settlement(doc))
    assert "total" in text and "rejected by clearing: 0" in text


def test_the_http_service(ledger, tmp_path, clock):
    server = UvicornThread(create_app(ledger)).start()
    try:
        recs = purchase_records(tmp_path, clock, n=3)
        r = httpx.post(server.url + "/v1/records", json={"gateway_id": "gw", "records": recs})
        assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 3
        r = httpx.post(server.url + "/v1/records", json={"records": recs})
        assert r.status_code == 400 and "gateway_id" in r.json()["reason"]
        doc = httpx.get(server.url + "/v1/settlement").json()
        assert doc["totals"]["purchases"] == 3
        assert httpx.get(server.url + "/v1/stats").json()["accepted"] == 3
    finally:
        server.stop()
