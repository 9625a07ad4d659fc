"""kill -9 of the gateway process during ingest and during forwarding, then a restart:
nothing lost, nothing stored or settled twice. The gateway runs as `ykt gateway serve`
in its own process; the terminals and clearing keep running."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gateway.auth import register_terminal
from simulators.clearing.app import create_app as create_clearing_app
from simulators.clearing.ledger import Ledger
from simulators.clearing.verify import TacVerifier
from terminal.uplink import GatewayClient, GatewayUnavailable, Uplink
from tests.gateway_fixtures import demo_keysets
from tests.servers import ServerProcess, UvicornThread, free_port
from tests.traffic import JournaledTerminal, make_cards

TIDS = ["310000000501", "310000000502", "310000000503"]


def fleet(db, tmp_path: Path, clock, taps: int) -> tuple[dict, dict]:
    tokens = {tid: register_terminal(db, tid, "metro") for tid in TIDS}
    terms = {tid: JournaledTerminal(tid, tmp_path / f"{tid}.db", clock) for tid in TIDS}
    cards = make_cards(30)
    for i in range(taps):
        clock.advance(seconds=3)
        for n, term in enumerate(terms.values()):
            term.tap(cards[(i + n * 7) % len(cards)], 100 + i % 9)
    return tokens, terms


def gateway_process(db_url: str, port: int, tmp_path: Path, *extra: str) -> ServerProcess:
    args = ["gateway", "serve", "--db", db_url, "--port", str(port), "--demo-keys", *extra]
    return ServerProcess(args, port, tmp_path / "gateway.log").start()


def count(db, sql: str) -> int:
    with db.tx() as cur:
        cur.execute(sql)
        return int(cur.fetchone()[0])


def upload_until_done(
    term: JournaledTerminal, client: GatewayClient, tid: str, failures: list[str], deadline: float
) -> None:
    up = Uplink(term.journal, {tid: client}, batch_size=20)
    while term.journal.pending_upload() and time.monotonic() < deadline:
        try:
            up.send_batch()
        except GatewayUnavailable as exc:
            failures.append(str(exc))
            time.sleep(0.05)
        time.sleep(0.01)  # a steady trickle, so the kill always lands mid-stream


def test_kill_9_during_ingest_loses_nothing_and_stores_nothing_twice(db, db_url, tmp_path, clock):
    tokens, terms = fleet(db, tmp_path, clock, taps=250)
    port = free_port()
    gw = gateway_process(db_url, port, tmp_path)
    clients = {tid: GatewayClient(gw.url, tokens[tid], timeout=5) for tid in TIDS}
    failures: list[str] = []
    deadline = time.monotonic() + 120
    threads = [
        threading.Thread(
            target=upload_until_done, args=(terms[tid], clients[tid], tid, failures, deadline)
        )
        for tid in TIDS
    ]
    for t in threads:
        t.start()
    while count(db, "SELECT COUNT(*) FROM txn") < 150:
        time.sleep(0.005)
    gw.kill()  # mid-stream: uploads are in flight
    killed_at = count(db, "SELECT COUNT(*) FROM txn")
    time.sleep(0.3)
    gw = gateway_process(db_url, port, tmp_path)
    for t in threads:
        t.join(120)
    gw.stop()
    assert failures, "the kill did not interrupt any upload"
    assert 0 < killed_at < 750
    expected = sorted(
        (r.terminal_id, r.terminal_seq)
        for term in terms.values()
        for r in term.journal.export(limit=10_000, include_uploaded=True)
    )
    with db.tx() as cur:
        cur.execute("SELECT terminal_id, terminal_seq FROM txn ORDER BY terminal_id, terminal_seq")
        rows = [tuple(r) for r in cur.fetchall()]
    assert rows == expected and len(rows) == 750
    assert all(term.journal.pending_upload() == 0 for term in terms.values())
    # every stored transaction entered the outbox in the same commit, exactly once
    assert count(db, "SELECT COUNT(*) FROM outbox WHERE kind = 'txn'") == 750
    assert count(db, "SELECT COUNT(DISTINCT ref_id) FROM outbox") == 750
    for c in clients.values():
        c.close()
    for term in terms.values():
        term.close()


def test_kill_9_during_forwarding_settles_everything_exactly_once(db, db_url, tmp_path, clock):
    tokens, terms = fleet(db, tmp_path, clock, taps=100)
    ledger = Ledger(str(tmp_path / "clearing.db"), TacVerifier(demo_keysets()))
    clearing = UvicornThread(create_clearing_app(ledger, delay=0.04)).start()
    port = free_port()
    fwd_args = ("--clearing", clearing.url, "--lease-ms", "1500", "--forward-batch", "20")
    gw = gateway_process(db_url, port, tmp_path, *fwd_args)
    try:
        for tid in TIDS:
            with GatewayClient(gw.url, tokens[tid]) as client:
                Uplink(terms[tid].journal, {tid: client}, batch_size=500).drain()
        while ledger.stats()["accepted"] < 60:
            time.sleep(0.005)
        gw.kill()  # a post to clearing is in flight or about to be
        posted_before = count(db, "SELECT COUNT(*) FROM outbox WHERE posted_at IS NOT NULL")
        assert posted_before < 300
        gw = gateway_process(db_url, port, tmp_path, *fwd_args)
        deadline = time.monotonic() + 60
        while count(db, "SELECT COUNT(*) FROM outbox WHERE posted_at IS NULL"):
            assert time.monotonic() < deadline, "outbox did not drain after restart"
            time.sleep(0.05)
        gw.stop()
        stats = ledger.stats()
        assert stats["accepted"] == 300 and stats["rejected"] == 0
        # a re-post of the slice that was in flight is answered 'duplicate', never settled
        redelivered = stats["deliveries"] - 300
        dup = count(db, "SELECT COUNT(*) FROM outbox WHERE outcome = 'duplicate'")
        assert dup == redelivered
        assert count(db, "SELECT COUNT(*) FROM outbox WHERE outcome = 'accepted'") == 300 - dup
        assert ledger.settlement()["totals"]["purchases"] == 300
    finally:
        gw.kill()
        clearing.stop()
        ledger.close()
    for term in terms.values():
        term.close()
