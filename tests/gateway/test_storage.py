"""The gateway's storage: migrations on a database that already holds data (SQLite and
PostgreSQL); transactions PostgreSQL rolls back to break a deadlock, run again."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.storage import RACED, open_database, open_storage
from gateway.storage.schema import MIGRATIONS, migrate
from tests.cli_kit import ykt
from tests.conftest import FrozenClock
from tests.gateway_fixtures import ADMIN_TOKEN, race_held, start_gateway
from tests.terminal.qr.kit import QrBus

T1, T2 = "310000000201", "310000000202"
CODE_A, CODE_B = "AA" * 32, "BB" * 32


def insert_ride(cur: Any, terminal_id: str, seq: int, code_hash: str, outcome: str | None) -> int:
    """A ride row as ingest stored it before migration 13, with its outbox row (posted with
    clearing's ``outcome``, or still pending)."""
    cur.execute(
        "INSERT INTO qr_txn (operator_id, terminal_id, qr_seq, code, code_hash, user_account,"
        " issuer_code, platform_code, account_type, generated, txn_time, amount, state,"
        " resolution, context, content_hash, batch_id, received_at)"
        " VALUES ('bus-co', ?, ?, ?, ?, '00000000000000000001', '10000001', '20000001', 1,"
        " 1700000000, '2026-03-01T08:00:00', 200, 'settled', NULL, '{}', ?, 'b1', ?)"
        " RETURNING id",
        (terminal_id, seq, "C0DE" + code_hash, code_hash, f"{terminal_id}:{seq}", seq),
    )
    ride = int(cur.fetchone()[0])
    cur.execute(
        "INSERT INTO outbox (kind, ref_id, payload, created_at, available_at, posted_at,"
        " outcome, reason) VALUES ('qr_ride', ?, '{}', 1, 1, ?, ?, ?)",
        (ride, 2 if outcome else None, outcome, "duplicate code" if outcome else None),
    )
    return ride


@pytest.fixture
def raced_at_12(db_url: str) -> dict[str, int]:
    """A database at schema version 12 holding code A three times (the old ingest race: the
    second already refused by clearing, the third not yet sent) and code B once."""
    db = open_database(db_url)
    with db.tx() as cur:
        assert migrate(cur, db.dialect, 1, upto=12) == list(range(1, 13))
        ids = {
            "kept": insert_ride(cur, T1, 1, CODE_A, "accepted"),
            "refused": insert_ride(cur, T2, 1, CODE_A, "rejected"),
            "unsent": insert_ride(cur, T2, 2, CODE_A, None),
            "other": insert_ride(cur, T1, 2, CODE_B, None),
        }
    db.close()
    return ids


def test_migration_13_quarantines_rides_stored_twice_then_indexes_the_code(
    db_url, raced_at_12, caplog
):
    """The gateway starts on a database the old race left with one code stored three times:
    the earliest ride stays, the later two move to the quarantine with why and what clearing
    had answered, the unsent one is never sent, the count is logged, and the code is unique."""
    ids = raced_at_12
    with caplog.at_level(logging.WARNING, logger="gateway.storage"):
        db = open_storage(db_url)
    assert "migration 13: 2 ride(s) moved to qr_txn_quarantine" in caplog.text
    with db.tx() as cur:
        cur.execute("SELECT id FROM qr_txn ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [ids["kept"], ids["other"]]
        cur.execute("SELECT ref_id, posted_at IS NULL, outcome FROM outbox ORDER BY ref_id")
        assert [tuple(r) for r in cur.fetchall()] == [
            (ids["kept"], False, "accepted"),
            (ids["refused"], False, "rejected"),
            (ids["unsent"], False, "quarantined"),
            (ids["other"], True, None),
        ]
        cur.execute("SELECT MAX(version) FROM schema_migrations")
        assert cur.fetchone()[0] == MIGRATIONS[-1][0]
    with pytest.raises(RACED), db.tx() as cur:
        insert_ride(cur, "310000000203", 1, CODE_A, None)

    gw = start_gateway(db)
    try:
        r = httpx.get(
            gw.url + "/v1/admin/quarantine",
            headers={"X-Admin-Token": ADMIN_TOKEN},
            timeout=30,
        )
    finally:
        gw.server.stop()
    assert r.status_code == 200, r.text
    rides = r.json()["rides"]
    assert [(x["ride_id"], x["kept_id"], x["clearing"]) for x in rides] == [
        (ids["refused"], ids["kept"], "rejected"),
        (ids["unsent"], ids["kept"], None),
    ]
    assert [(x["terminal_id"], x["qr_seq"], x["amount"]) for x in rides] == [
        (T2, 1, 200),
        (T2, 2, 200),
    ]
    assert f"stored first as ride {ids['kept']} (terminal {T1} qr_seq 1)" in rides[0]["reason"]
    assert rides[0]["record"]["code_hash"] == CODE_A
    assert rides[0]["record"]["batch_id"] == "b1"

    listed = json.loads(ykt("gateway", "quarantine", "--db", db_url).stdout)
    assert listed == r.json()
    db.close()

    caplog.clear()
    again = open_storage(db_url)  # nothing left to migrate: nothing moved again
    with again.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM qr_txn_quarantine")
        assert cur.fetchone()[0] == 2
    again.close()
    assert "qr_txn_quarantine" not in caplog.text


def test_a_database_without_duplicates_is_indexed_and_quarantines_nothing(db_url):
    db = open_database(db_url)
    with db.tx() as cur:
        migrate(cur, db.dialect, 1, upto=12)
        insert_ride(cur, T1, 1, CODE_A, None)
    db.close()
    db = open_storage(db_url)
    with db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM qr_txn")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT COUNT(*) FROM qr_txn_quarantine")
        assert cur.fetchone()[0] == 0
    with pytest.raises(RACED), db.tx() as cur:
        insert_ride(cur, T2, 1, CODE_A, None)
    db.close()


def test_two_batches_deadlocked_on_postgres_both_get_the_rules_answer(
    pg_cluster, clock: FrozenClock, tmp_path: Path
):
    """Two validators upload the same three ride codes in opposite order (X Z Y and Y Z X).
    A third connection holds Z until both batches wait on it, then lets go: each batch has
    stored its first code and waits for the other's, a deadlock PostgreSQL breaks by rolling
    one back. That one runs again and gets the rule's answer (409 ``code_hash_held``), not a
    storage error; the other is stored, each code once."""
    bus = QrBus(tmp_path / "qr-bus.db", clock)
    for account in (1, 2, 3):
        assert bus.scan(bus.code(account=account)).green
    x, z, y = (row.upload_record() for row in bus.journal.export_qr())
    first, second = x["terminal_id"], "3100000002FF"
    batches = {
        first: [x, z, y],
        second: [{**r, "terminal_id": second, "qr_seq": i} for i, r in enumerate((y, z, x), 1)],
    }
    gw = start_gateway(open_storage(pg_cluster.new_database()), clock)
    tokens = {tid: gw.register(tid, "bus-co", role="validator") for tid in batches}
    answers: dict[str, httpx.Response] = {}

    def send(tid: str) -> None:
        answers[tid] = httpx.post(
            gw.url + "/v1/batches",
            json={"batch_id": "b1", "terminal_id": tid, "kind": "qr_ride", "records": batches[tid]},
            headers={"Authorization": f"Bearer {tokens[tid]}"},
            timeout=60,
        )

    threads = [threading.Thread(target=send, args=(tid,)) for tid in batches]
    try:
        race_held(
            gw,
            threads,
            lambda cur: insert_ride(cur, "310000000203", 1, z["code_hash"], None),
            waiting=2,
            what="the batches at code Z",
        )
        outcome = sorted((r.status_code, r.json().get("error")) for r in answers.values())
        assert outcome == [(200, None), (409, "code_hash_held")], {
            tid: r.text for tid, r in answers.items()
        }
        (lost,) = (r for r in answers.values() if r.status_code == 409)
        assert "a ride code pays one ride" in lost.json()["reason"]
        with gw.db.tx() as cur:
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT code_hash) FROM qr_txn")
            assert tuple(cur.fetchone()) == (3, 3)
            cur.execute("SELECT COUNT(*) FROM batches")
            assert cur.fetchone()[0] == 1
        assert gw.count("outbox") == 3
    finally:
        gw.server.stop()
        gw.db.close()
