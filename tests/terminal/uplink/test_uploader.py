"""Store-and-forward from the journal: batches by count and age, back-off with jitter,
nothing marked before the gateway's ack, a day-long outage and terminal restarts."""

from __future__ import annotations

import random
import socket
import sqlite3
import time
from datetime import timedelta

import httpx
import pytest

from gateway.app import GatewaySettings, create_app
from gateway.hsm import HostSecurityModule
from terminal.journal import Journal
from terminal.journal.journal import SCHEMA_VERSION
from terminal.uplink import (
    GatewayClient,
    GatewayRefused,
    GatewayUnavailable,
    Uplink,
    UploadWorker,
)
from tests.gateway_fixtures import demo_keysets
from tests.servers import UvicornThread, free_port
from tests.traffic import JournaledTerminal, make_cards

TID = "310000000301"


def tap_many(term: JournaledTerminal, clock, n: int, cards=None, gap_s: float = 20) -> None:
    cards = cards or make_cards(8)
    for i in range(n):
        clock.advance(seconds=gap_s)
        term.tap(cards[i % len(cards)], 100 + i % 5)


def stored(db) -> list[tuple[str, int]]:
    with db.tx() as cur:
        cur.execute("SELECT terminal_id, terminal_seq FROM txn ORDER BY terminal_seq")
        return [tuple(r) for r in cur.fetchall()]


def test_batches_are_bounded_by_count_and_age(gateway, tmp_path, clock):
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    token = gateway.register(TID)
    client = GatewayClient(gateway.url, token)
    up = Uplink(
        term.journal, {TID: client}, batch_size=50, max_age=timedelta(minutes=5), clock=clock
    )
    tap_many(term, clock, 3, gap_s=1)
    assert not up.due()  # three fresh rows: wait for more or for age
    clock.advance(minutes=5)
    assert up.due()
    tap_many(term, clock, 117, gap_s=1)
    assert up.send_batch() == 50 and up.send_batch() == 50 and up.send_batch() == 20
    assert up.send_batch() == 0
    assert up.stats.batches == 3 and up.stats.stored == 120
    assert len(stored(gateway.db)) == 120
    assert term.journal.pending_upload() == 0
    client.close()
    term.close()


def test_backoff_is_exponential_capped_and_jittered():
    up = Uplink(Journal(":memory:"), {}, backoff_base=1.0, backoff_cap=60.0, rng=random.Random(7))
    ceilings = []
    for failures in range(1, 12):
        up.failures = failures
        draws = [up.backoff() for _ in range(50)]
        ceiling = min(60.0, 2 ** (failures - 1))
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 40  # jitter: a fleet does not retry in step
        ceilings.append(max(draws))
    assert ceilings[0] <= 1.0 and ceilings[5] > 16 and max(ceilings) <= 60.0


def test_nothing_is_marked_without_the_gateways_ack(db, tmp_path, clock):
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    tap_many(term, clock, 10)
    down = GatewayClient(f"http://127.0.0.1:{free_port()}", "whatever", timeout=2)
    up = Uplink(term.journal, {TID: down}, clock=clock)
    with pytest.raises(GatewayUnavailable):
        up.send_batch()
    assert term.journal.pending_upload() == 10 and up.failures == 1

    # Mocked transport: no real gateway acknowledges part of a batch, but the uplink must
    # still refuse to mark rows the answer does not cover.
    def half_ack(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        acks = [
            {"terminal_seq": r["terminal_seq"], "status": "stored"} for r in body["records"][:5]
        ]
        ids = {"batch_id": body["batch_id"], "terminal_id": body["terminal_id"]}
        return httpx.Response(200, json={**ids, "acks": acks, "counts": {"stored": 5}})

    partial = GatewayClient("http://gateway", "t", transport=httpx.MockTransport(half_ack))
    up = Uplink(term.journal, {TID: partial}, clock=clock)
    with pytest.raises(GatewayUnavailable, match="covers 5 of 10"):
        up.send_batch()
    assert term.journal.pending_upload() == 10
    term.close()


def test_crash_between_ack_and_mark_resends_harmlessly(gateway, tmp_path, clock):
    path = tmp_path / "j.db"
    term = JournaledTerminal(TID, path, clock)
    token = gateway.register(TID)
    tap_many(term, clock, 30)
    client = GatewayClient(gateway.url, token)
    up = Uplink(term.journal, {TID: client}, clock=clock)

    def power_cut(_seqs):
        raise KeyboardInterrupt("power cut after the gateway answered")

    up.journal.mark_uploaded = power_cut  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        up.send_batch()
    term.close()
    journal = Journal(path, clock=clock)  # the terminal restarts
    assert journal.pending_upload() == 30
    up = Uplink(journal, {TID: client}, clock=clock)
    assert up.drain() == 30
    assert up.stats.duplicates == 30 and up.stats.stored == 0
    assert len(stored(gateway.db)) == 30 and journal.pending_upload() == 0
    client.close()
    journal.close()


def test_gateway_down_for_a_whole_day_then_everything_arrives_once(db, tmp_path, clock):
    """A day of traffic on two terminals, gateway unreachable, one terminal restarted at
    noon; the gateway comes back at midnight and every transaction arrives exactly once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    from gateway.auth import register_terminal

    tids = ["310000000401", "310000000402"]
    tokens = {tid: register_terminal(db, tid, "bus-co") for tid in tids}
    terms = {tid: JournaledTerminal(tid, tmp_path / f"{tid}.db", clock) for tid in tids}
    clients = {tid: GatewayClient(url, tokens[tid], timeout=2) for tid in tids}

    def uplink(tid: str) -> Uplink:
        return Uplink(
            terms[tid].journal,
            {tid: clients[tid]},
            batch_size=100,
            max_age=timedelta(minutes=2),
            backoff_base=5,
            backoff_cap=900,
            clock=clock,
            rng=random.Random(tid),
        )

    ups = {tid: uplink(tid) for tid in tids}
    next_try = {tid: clock() for tid in tids}
    attempts = 0
    cards = make_cards(40)
    start = clock()
    day_end = start + timedelta(hours=24)
    restarted = False
    i = 0
    while clock() < day_end:
        clock.advance(seconds=150)
        for tid in tids:
            terms[tid].tap(cards[i % len(cards)], 200)
            i += 1
            if clock() >= next_try[tid]:
                attempts += 1
                next_try[tid] = clock() + timedelta(seconds=ups[tid].step(force=True))
        if not restarted and clock() >= start + timedelta(hours=12):
            restarted = True  # the first terminal reboots: a fresh journal handle and uplink
            tid = tids[0]
            terms[tid].journal.close()
            terms[tid].journal = Journal(tmp_path / f"{tid}.db", clock=clock)
            ups[tid] = uplink(tid)
    taps = i
    assert all(t.journal.pending_upload() > 0 for t in terms.values())
    assert sum(t.journal.pending_upload() for t in terms.values()) == taps
    assert attempts < taps / 4, "back-off keeps a down gateway from being hammered"
    assert stored(db) == []

    hsm = HostSecurityModule(demo_keysets(), clock=clock)
    server = UvicornThread(create_app(db, hsm=hsm, settings=GatewaySettings()), port).start()
    try:
        for tid in tids:
            ups[tid].drain()
    finally:
        server.stop()
    rows = stored(db)
    assert len(rows) == taps == len(set(rows))
    expected = sorted(
        (r.terminal_id, r.terminal_seq)
        for t in terms.values()
        for r in t.journal.export(limit=10_000, include_uploaded=True)
    )
    assert sorted(rows) == expected
    assert all(t.journal.pending_upload() == 0 for t in terms.values())
    for t in terms.values():
        t.close()
    for c in clients.values():
        c.close()


# -- rows the gateway refuses are parked, not resent forever ------------------------------------
def bad_row(journal: Journal, clock, seq: int = 900_000) -> int:
    """A suspect row over the gateway's amount ceiling: a terminal bug the gateway refuses."""
    row_id = journal.record_intent(
        terminal_id=bytes.fromhex(TID),
        terminal_seq=seq,
        issuer_id=bytes.fromhex("0000000000000001"),
        card_serial=bytes.fromhex("0000000000000042"),
        txn_type=0x06,
        amount=2_000_000,
        balance_before=3_000_000,
        card_atc=7,
        key_version=1,
        algorithm=0,
        txn_time=clock(),
    )
    return journal.mark_suspect(row_id, "card pulled").upload_seq or 0


def test_a_refused_row_is_parked_and_the_rows_after_it_go_on(gateway, tmp_path, clock):
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    client = GatewayClient(gateway.url, gateway.register(TID))
    up = Uplink(term.journal, {TID: client}, batch_size=50, clock=clock)
    tap_many(term, clock, 10)
    bad = bad_row(term.journal, clock)
    tap_many(term, clock, 10)

    assert up.drain() == 21  # 20 acknowledged, 1 parked
    assert (up.stats.stored, up.stats.parked, up.stats.refusals) == (20, 1, 1)
    assert up.stats.last_parked.startswith("422 invalid_record")
    assert "amount 2000000 out of range" in up.stats.last_parked
    parked = term.journal.parked()
    assert [(r.upload_seq, r.terminal_seq, r.amount) for r in parked] == [(bad, 900_000, 2_000_000)]
    assert parked[0].parked_reason == up.stats.last_parked and parked[0].uploaded_at is None
    assert term.journal.pending_upload() == 0
    seqs = [s for _, s in stored(gateway.db)]
    assert len(seqs) == 20 and 900_000 not in seqs

    # the parked row is not sent again: nothing waits, no refusal, nothing new stored
    batches_before = gateway.count("batches")
    assert up.drain() == 0 and up.send_batch() == 0
    assert (up.stats.refusals, gateway.count("batches")) == (1, batches_before)
    tap_many(term, clock, 3)
    assert up.drain() == 3 and up.stats.stored == 23 and up.stats.parked == 1

    # the row is still in the journal after a restart, parked with its reason
    term.close()
    journal = Journal(tmp_path / "j.db", clock=clock)
    assert [r.parked_reason for r in journal.parked()] == [parked[0].parked_reason]
    assert journal.totals()["suspect"] == (1, 2_000_000)
    journal.close()
    client.close()


def test_an_unavailable_or_unauthorised_gateway_parks_nothing(gateway, tmp_path, clock):
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    tap_many(term, clock, 4)
    bad_row(term.journal, clock)
    down = GatewayClient(f"http://127.0.0.1:{free_port()}", "whatever", timeout=2)
    with pytest.raises(GatewayUnavailable):
        Uplink(term.journal, {TID: down}, clock=clock).drain()
    wrong = GatewayClient(gateway.url, "ykt_not-a-token")
    up = Uplink(term.journal, {TID: wrong}, clock=clock)
    with pytest.raises(GatewayRefused) as refused:
        up.drain()
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")
    assert term.journal.parked() == [] and term.journal.pending_upload() == 5
    assert up.stats.parked == 0 and gateway.count("txn") == 0
    down.close()
    wrong.close()
    term.close()


def test_a_parked_row_can_be_queued_again(gateway, tmp_path, clock):
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    client = GatewayClient(gateway.url, gateway.register(TID))
    bad = bad_row(term.journal, clock)
    up = Uplink(term.journal, {TID: client}, clock=clock)
    assert up.drain() == 1 and up.stats.parked == 1
    assert term.journal.unpark([bad]) == 1 and term.journal.pending_upload() == 1
    assert up.drain() == 1 and up.stats.parked == 2  # refused again, parked again
    client.close()
    term.close()


def test_a_version_1_journal_is_migrated_with_its_rows(tmp_path, clock):
    path = tmp_path / "old.db"
    journal = Journal(path, clock=clock)
    seq = bad_row(journal, clock)
    journal.close()
    with sqlite3.connect(path) as old:  # what a journal written before parking looks like
        old.execute("ALTER TABLE txn DROP COLUMN parked_reason")
        old.execute("ALTER TABLE txn DROP COLUMN parked_at")
        old.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    journal = Journal(path, clock=clock)
    assert [r.upload_seq for r in journal.export()] == [seq]
    assert journal.mark_parked([seq], "422 test") == 1 and journal.pending_upload() == 0
    version = journal._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert version[0] == str(SCHEMA_VERSION)
    journal.close()


# -- the background worker a running terminal uses ----------------------------------------------
def test_the_worker_uploads_in_the_background_and_flushes_at_close(gateway, tmp_path, clock):
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    client = GatewayClient(gateway.url, gateway.register(TID))
    worker = UploadWorker(Uplink(term.journal, {TID: client}, max_age=timedelta(0))).start()
    tap_many(term, clock, 5, gap_s=1)
    deadline = time.monotonic() + 10
    while term.journal.pending_upload() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert term.journal.pending_upload() == 0 and worker.last_upload is not None
    tap_many(term, clock, 3, gap_s=1)  # settled just before the stop: sent by the flush
    assert worker.close(flush_timeout=5) == 0
    assert len(stored(gateway.db)) == 8
    client.close()
    term.close()


def test_the_flush_at_close_is_bounded_when_the_gateway_never_answers(tmp_path, clock):
    """A gateway that accepts connections and never answers cannot hold a stop hostage."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        term = JournaledTerminal(TID, tmp_path / "j.db", clock)
        tap_many(term, clock, 4, gap_s=1)
        client = GatewayClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", timeout=0.5)
        worker = UploadWorker(
            Uplink(term.journal, {TID: client}, max_age=timedelta(0), backoff_cap=0.2)
        ).start()
        t0 = time.monotonic()
        assert worker.close(flush_timeout=1.0) == 4  # nothing lost: every row still waits
        assert time.monotonic() - t0 < 2.5
        assert term.journal.pending_upload() == 4
        client.close()
        term.close()
