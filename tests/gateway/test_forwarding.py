"""Gateway -> clearing: the outbox, TAC verification at clearing, settlement that balances to
the fen against the cards, reconciliation, retries, and several forwarders sharing work."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import Unavailable
from gateway.forwarder import Forwarder
from gateway.reconcile import reconcile
from gateway.storage import now_ms, open_storage
from simulators.clearing.app import create_app as create_clearing_app
from simulators.clearing.ledger import Ledger
from simulators.clearing.verify import TacVerifier
from terminal.uplink import GatewayClient, Uplink
from tests.gateway_fixtures import demo_keysets
from tests.lying_clearing import LyingClearing
from tests.servers import ROOT, UvicornThread, free_port
from tests.traffic import JournaledTerminal, make_cards

TIDS = ["310000000101", "310000000201"]


def run_traffic(gateway, tmp_path: Path, clock, taps: int = 40, operators=("metro", "bus")):
    """Two terminals of two operators tap a fleet of cards and upload their journals."""
    cards = make_cards(6)
    opening = {c.serial.hex(): c.balance for c in cards}
    for tid, op in zip(TIDS, operators, strict=True):
        token = gateway.register(tid, op)
        term = JournaledTerminal(tid, tmp_path / f"{tid}.db", clock)
        for i in range(taps):
            clock.advance(seconds=17)
            term.tap(cards[i % len(cards)], 100 + (i % 7) * 50)
        with GatewayClient(gateway.url, token) as client:
            Uplink(term.journal, {tid: client}).drain()
        assert term.journal.pending_upload() == 0
        term.close()
    return cards, opening


def test_uploaded_transactions_clear_once_and_settle_to_the_fen(gateway, clearing, tmp_path, clock):
    cards, opening = run_traffic(gateway, tmp_path, clock)
    fwd = Forwarder(gateway.db, clearing.url, gateway_id="gw-test", batch_size=25)
    assert fwd.drain() == 80
    assert fwd.drain() == 0  # nothing left, nothing re-posted
    assert clearing.ledger.stats() == {"accepted": 80, "deliveries": 80, "rejected": 0}
    doc = clearing.settlement()
    spent = sum(opening[c.serial.hex()] - c.balance for c in cards)
    assert doc["totals"]["purchases"] == 80
    assert doc["totals"]["purchase_amount"] == spent
    for issuer in doc["by_issuer"]:
        mine = [c for c in cards if c.issuer_id.hex().upper() == issuer["issuer_id"]]
        assert issuer["purchase_amount"] == sum(opening[c.serial.hex()] - c.balance for c in mine)
    ops = {o["operator_id"]: o for o in doc["by_operator"]}
    assert set(ops) == {"metro", "bus"} and ops["bus"]["purchases"] == 40
    day = clearing.settlement(clock().date().isoformat())
    assert day["totals"]["purchases"] == 80
    report = reconcile(gateway.db, clearing.url, "gw-test")
    assert report["matched"] and len(report["rows"]) == 2
    metrics = httpx.get(gateway.url + "/metrics").text
    assert "ykt_gateway_outbox_depth 0" in metrics
    assert "ykt_gateway_clearing_lag_seconds 0.000" in metrics
    assert 'ykt_gateway_outbox_posted{outcome="accepted"} 80' in metrics


def test_altered_amount_is_stored_but_rejected_by_clearing(gateway, clearing, tmp_path, clock):
    tid = TIDS[0]
    token = gateway.register(tid, "metro")
    term = JournaledTerminal(tid, tmp_path / "j.db", clock)
    cards = make_cards(2)
    for i in range(4):
        term.tap(cards[i % 2], 300)
    recs = [r.upload_record() for r in term.journal.export()]
    recs[2]["amount"] = 30  # a skimming terminal reports less than the card paid
    r = httpx.post(
        gateway.url + "/v1/batches",
        json={"batch_id": "tampered", "terminal_id": tid, "records": recs},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200  # well-formed: the gateway cannot see the lie
    fwd = Forwarder(gateway.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 4
    assert fwd.stats.accepted == 3 and fwd.stats.rejected == 1
    (rej,) = clearing.ledger.rejections()
    assert rej["key"] == f"P:{tid}:{recs[2]['terminal_seq']}"
    assert "TAC does not verify" in rej["reason"]
    with gateway.db.tx() as cur:
        cur.execute("SELECT reason FROM outbox WHERE outcome = 'rejected'")
        (reason,) = cur.fetchone()
    assert "TAC does not verify" in reason
    assert clearing.settlement()["totals"]["purchase_amount"] == 900
    assert httpx.get(gateway.url + "/health").json()["clearing_rejected"] == 1
    term.close()


def test_clearing_down_means_back_off_and_retry_not_loss(gateway, clearing, tmp_path, clock):
    run_traffic(gateway, tmp_path, clock, taps=5)
    dead = Forwarder(gateway.db, f"http://127.0.0.1:{free_port()}", backoff_base=0.2)
    with pytest.raises(httpx.HTTPError):
        dead.run_once()
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT COUNT(*), MIN(available_at) > ?, MAX(attempts) FROM outbox"
            " WHERE posted_at IS NULL AND lease_owner IS NULL",
            (now_ms(),),
        )
        pending, in_future, attempts = cur.fetchone()
    assert pending == 10 and attempts == 1 and in_future
    assert dead.stats.failures == 1 and dead.backoff() <= 0.4
    live = Forwarder(gateway.db, clearing.url)
    assert live.drain() == 0  # backing off: not due yet
    import time

    time.sleep(0.25)
    assert live.drain() == 10
    assert clearing.ledger.stats()["deliveries"] == 10


def test_forwarders_in_threads_never_post_a_transaction_twice(
    db_url, gateway, clearing, tmp_path, clock
):
    """Four workers, each with its own database handle, drain one outbox concurrently."""
    run_traffic(gateway, tmp_path, clock, taps=150)
    import threading

    workers = [
        Forwarder(open_storage(db_url, pool_size=2), clearing.url, batch_size=10) for _ in range(4)
    ]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stats = clearing.ledger.stats()
    assert stats == {"accepted": 300, "deliveries": 300, "rejected": 0}
    assert sum(w.stats.posted for w in workers) == 300
    for w in workers:
        w.db.close()


def test_gateway_processes_share_forwarding_on_postgres(pg_cluster, tmp_path, clock):
    """Two `ykt gateway forward` processes on one PostgreSQL: disjoint work, one delivery each."""
    from tests.gateway_fixtures import start_gateway

    url = pg_cluster.new_database()
    db = open_storage(url)
    gw = start_gateway(db, clock)
    ledger = Ledger(str(tmp_path / "clearing.db"), TacVerifier(demo_keysets()))
    slow = UvicornThread(create_clearing_app(ledger, delay=0.03)).start()
    try:
        run_traffic(gw, tmp_path, clock, taps=120)
        cmd = [
            sys.executable,
            "-m",
            "terminal.cli.main",
            "gateway",
            "forward",
            "--db",
            url,
            "--clearing",
            slow.url,
            "--batch",
            "8",
            "--once",
        ]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(2)]
        posted = [json.loads(p.communicate(timeout=120)[0])["posted"] for p in procs]
        assert sum(posted) == 240
        assert min(posted) > 0, f"one process did all the work: {posted}"
        assert ledger.stats() == {"accepted": 240, "deliveries": 240, "rejected": 0}
    finally:
        slow.stop()
        gw.server.stop()
        db.close()


def test_the_gateways_own_forwarder_drains_in_the_background(db, clearing, tmp_path, clock):
    import time

    from tests.gateway_fixtures import ADMIN_TOKEN, start_gateway

    gw = start_gateway(db, clock, clearing_url=clearing.url, poll_interval=0.05, gateway_id="gw-bg")
    try:
        assert httpx.get(gw.url + "/health").json()["forwarders"] == 1
        run_traffic(gw, tmp_path, clock, taps=10)
        deadline = time.monotonic() + 20
        while clearing.ledger.stats()["accepted"] < 20:
            assert time.monotonic() < deadline, "background forwarder did not post"
            time.sleep(0.05)
        admin = {"X-Admin-Token": ADMIN_TOKEN}
        doc = httpx.get(gw.url + "/v1/admin/reconciliation", headers=admin).json()
        assert doc["matched"] and sum(r["cleared_count"] for r in doc["rows"]) == 20
        day = clock().date().isoformat()
        doc = httpx.get(
            gw.url + "/v1/admin/reconciliation", params={"day": day}, headers=admin
        ).json()
        assert doc["matched"] and sum(r["sent_count"] for r in doc["rows"]) == 20
        assert httpx.get(gw.url + "/v1/admin/reconciliation").status_code == 401
    finally:
        gw.server.stop()
    assert clearing.ledger.stats()["deliveries"] == 20


def pending(gateway) -> list[tuple[Any, ...]]:
    with gateway.db.tx() as cur:
        cur.execute("SELECT outcome, lease_owner FROM outbox WHERE posted_at IS NULL")
        return cur.fetchall()


def test_a_lying_clearing_answer_leaves_every_record_in_the_outbox(
    gateway, clearing, tmp_path, clock
):
    """Clearing answers 200 but not for what was sent: "accepted" for records it never
    received (answered with another post's keys), the right number of answers in another
    order, statuses it does not have, or no result objects at all. The forwarder marked
    the records accepted (or rejected) by position and never sent them again: they were
    lost to clearing. Each answer is taken as a failed post: every record stays in the
    outbox, unleased, and reaches clearing once when clearing answers truly."""
    run_traffic(gateway, tmp_path, clock, taps=3)
    other = {"key": "T:00000000:0000000000000000:1", "status": "accepted"}

    def other_keys(body, results):
        return {"results": [dict(other) for _ in results]}

    def reordered(body, results):
        return {"results": results[::-1]}

    def odd_status(body, results):
        return {"results": [{**r, "status": "settled"} for r in results]}

    def not_objects(body, results):
        return {"results": [1] * len(results)}

    def not_a_list(body, results):
        return {"results": "accepted"}

    liar = LyingClearing(clearing.url)
    try:
        for lie, forward in (
            (other_keys, False),
            (reordered, True),
            (odd_status, True),
            (not_objects, True),
            (not_a_list, True),
        ):
            liar.lie, liar.forward = lie, forward
            fwd = Forwarder(gateway.db, liar.url, gateway_id="gw-test", batch_size=10)
            with pytest.raises((httpx.HTTPError, ValueError)) as caught:
                fwd.run_once()
            assert "clearing answered" in str(caught.value), lie.__name__
            fwd.stop()
            assert pending(gateway) == [(None, None)] * 6, lie.__name__
            assert gateway.count("outbox") == 6
            with gateway.db.tx() as cur:
                cur.execute("UPDATE outbox SET available_at = 0")
    finally:
        liar.server.stop()
    fwd = Forwarder(gateway.db, clearing.url, gateway_id="gw-test", batch_size=10)
    assert fwd.drain() == 6 and pending(gateway) == []
    stats = clearing.ledger.stats()
    assert (stats["accepted"], stats["rejected"]) == (6, 0)
    assert reconcile(gateway.db, clearing.url, "gw-test")["matched"]


def test_a_clearing_that_stores_then_times_out_is_sent_again_once(
    gateway, clearing, tmp_path, clock
):
    """Clearing stores the post, then the answer never comes (timeout): the records stay
    in the outbox and the resend is answered duplicate; clearing holds each record once."""
    run_traffic(gateway, tmp_path, clock, taps=2)
    liar = LyingClearing(clearing.url)

    def slow(body, results):
        time.sleep(1.5)
        return {"results": results}

    liar.lie = slow
    try:
        fwd = Forwarder(gateway.db, liar.url, gateway_id="gw-test", timeout=0.5)
        with pytest.raises(httpx.TimeoutException):
            fwd.run_once()
        fwd.stop()
    finally:
        liar.server.stop()
    assert pending(gateway) == [(None, None)] * 4
    assert clearing.ledger.stats()["accepted"] == 4  # clearing had stored them
    with gateway.db.tx() as cur:
        cur.execute("UPDATE outbox SET available_at = 0")
    fwd = Forwarder(gateway.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 4
    with gateway.db.tx() as cur:
        cur.execute("SELECT outcome, COUNT(*) FROM outbox GROUP BY outcome")
        assert dict(cur.fetchall()) == {"duplicate": 4}
    assert clearing.ledger.stats() == {"accepted": 4, "deliveries": 8, "rejected": 0}
    assert reconcile(gateway.db, clearing.url, "gw-test")["matched"]


def test_a_doctored_reconciliation_report_is_a_mismatch_naming_its_rows(
    gateway, clearing, tmp_path, clock
):
    """Clearing's report is changed: a row added, a row left out, a row's amount changed,
    a terminal listed twice (the true row last, so a dict kept only it), an amount with a
    fraction (truncated to the true one), a count that is no number. Each must be a
    MISMATCH naming the row, never MATCHED."""
    run_traffic(gateway, tmp_path, clock, taps=3)
    Forwarder(gateway.db, clearing.url, gateway_id="gw-test").drain()
    assert reconcile(gateway.db, clearing.url, "gw-test")["matched"]
    t0 = TIDS[0]

    def extra(doc):
        row = {"terminal_id": "319999999999", "kind": "purchase", "count": 1, "amount": 5}
        return {**doc, "terminals": [*doc["terminals"], row]}

    def missing(doc):
        return {**doc, "terminals": doc["terminals"][1:]}

    def changed(doc):
        first = {**doc["terminals"][0], "amount": doc["terminals"][0]["amount"] + 1}
        return {**doc, "terminals": [first, *doc["terminals"][1:]]}

    def twice(doc):
        first = {**doc["terminals"][0], "count": 99, "amount": 9999}
        return {**doc, "terminals": [first, *doc["terminals"]]}

    def fraction(doc):
        first = {**doc["terminals"][0], "amount": doc["terminals"][0]["amount"] + 0.5}
        return {**doc, "terminals": [first, *doc["terminals"][1:]]}

    def no_number(doc):
        first = {**doc["terminals"][0], "count": True}
        return {**doc, "terminals": [first, *doc["terminals"][1:]]}

    liar = LyingClearing(clearing.url)
    try:
        for doctor, named in (
            (extra, "319999999999"),
            (missing, t0),
            (changed, t0),
            (twice, t0),
            (fraction, t0),
            (no_number, t0),
        ):
            liar.report = doctor
            report = reconcile(gateway.db, liar.url, "gw-test")
            assert report["matched"] is False, doctor.__name__
            assert {m["terminal_id"] for m in report["mismatches"]} == {named}, (
                doctor.__name__,
                report["mismatches"],
            )
            if doctor in (twice, fraction, no_number):
                odd = [m["problem"] for m in report["mismatches"] if m.get("problem")]
                said = "twice" if doctor is twice else "clearing's row has"
                assert len(odd) == (2 if doctor is twice else 1)
                assert all(said in p for p in odd), odd
    finally:
        liar.server.stop()


def test_a_record_list_that_contradicts_its_report_is_never_matched(
    gateway, clearing, tmp_path, clock
):
    """Clearing's report row carries another digest, and its record list then shows exactly
    what the gateway posted; or the list is another terminal's, or repeats its records: the
    row is a mismatch (the list does not add up to it) or the report is refused."""
    run_traffic(gateway, tmp_path, clock, taps=3)
    Forwarder(gateway.db, clearing.url, gateway_id="gw-test").drain()
    t0 = TIDS[0]

    def other_digest(doc):
        first = {**doc["terminals"][0], "digest": "0" * 64}
        return {**doc, "terminals": [first, *doc["terminals"][1:]]}

    liar = LyingClearing(clearing.url)
    try:
        liar.report = other_digest
        report = reconcile(gateway.db, liar.url, "gw-test")
        assert report["matched"] is False
        (row,) = report["mismatches"]
        assert row["terminal_id"] == t0 and row["differences"] == []
        assert "does not add up" in row["problem"]
        for lie, said in (
            (lambda page: {**page, "terminal_id": TIDS[1]}, "is not terminal"),
            (lambda page: {**page, "records": page["records"] * 2}, "not a record after"),
        ):
            liar.records = lie
            with pytest.raises(Unavailable) as caught:
                reconcile(gateway.db, liar.url, "gw-test")
            assert caught.value.code == "bad_clearing_report" and said in caught.value.reason
    finally:
        liar.stop()
