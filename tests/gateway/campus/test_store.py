"""The campus back office's writes on PostgreSQL: a transaction the database rolls back for a
serialization failure runs again whole, so a person, a binding, a loss report and a door's
events are each stored once and the caller gets the rules' answer, not a storage error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from gateway import hotlist
from gateway.auth import Terminal
from gateway.campus.store import Person, add_person, bind_card, set_lost, store_events
from gateway.storage import Database, open_storage
from tests.gateway_fixtures import fail_once, rows_written
from tests.servers import PostgresCluster

SERIAL, ISSUER = "0290000000000001", "0290000000000000"
DOOR = Terminal("310000000201", "campus", "door", "", False)


@pytest.fixture
def pg(pg_cluster: PostgresCluster) -> Iterator[Database]:
    db = open_storage(pg_cluster.new_database())
    try:
        yield db
    finally:
        db.close()


def _count(db: Database, table: str) -> int:
    with db.tx() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cur.fetchone()[0])


def _versions(db: Database) -> list[tuple[int, str]]:
    """The allow list's changes, oldest first (a version a rolled-back try drew is skipped)."""
    with db.tx() as cur:
        cur.execute("SELECT version, action FROM campus_access_changes ORDER BY version")
        return [(int(r[0]), r[1]) for r in cur.fetchall()]


def _person(no: str = "P1") -> Person:
    return Person(no, "Li Lei", "staff", date(2026, 1, 1), date(2027, 1, 1))


def test_a_person_rolled_back_once_is_added_once(pg: Database) -> None:
    fail_once(pg, "campus_people")
    add_person(pg, _person())
    assert (rows_written(pg), _count(pg, "campus_people")) == (2, 1)


def test_a_binding_rolled_back_once_after_the_card_row_binds_once(pg: Database) -> None:
    """The allow-list change fails after the card row was written in the same transaction:
    the binding runs again, not refused as ``card_bound`` by its own first try."""
    add_person(pg, _person())
    fail_once(pg, "campus_access_changes")
    version = bind_card(pg, SERIAL, ISSUER, "P1")
    assert rows_written(pg) == 2
    assert (_count(pg, "campus_cards"), _versions(pg)) == (1, [(version, "allow")])


def test_a_loss_report_rolled_back_once_at_the_hotlist_is_recorded_once(pg: Database) -> None:
    """The hotlist change fails after the card was marked lost and denied on the allow list:
    the card, the allow list and the hotlist change together, once, and the loss answers
    the allow list's version instead of ``no_change`` from its own first try."""
    add_person(pg, _person())
    bind_card(pg, SERIAL, ISSUER, "P1")
    fail_once(pg, "hotlist_changes")
    version = set_lost(pg, SERIAL, True, reason="lost at the gym")
    assert rows_written(pg) == 2
    assert [action for _, action in _versions(pg)] == ["allow", "deny"]
    assert _versions(pg)[-1] == (version, "deny")
    with pg.tx() as cur:
        cur.execute("SELECT state FROM campus_cards")
        assert cur.fetchall() == [("lost",)]
    assert hotlist.listed(pg) == {(ISSUER, SERIAL)}
    assert _count(pg, "hotlist_changes") == 1


def _event(seq: int) -> dict[str, Any]:
    return {
        "terminal_id": DOOR.terminal_id, "event_seq": seq, "card_serial": SERIAL,
        "person_no": "P1", "point": "gate 1", "area": "north", "direction": "in",
        "purpose": "door", "result": "granted", "reason": "",
        "event_time": f"2026-11-02T08:00:{seq:02}",
    }  # fmt: skip


def test_a_door_batch_rolled_back_once_at_its_second_event_stores_each_once(
    pg: Database,
) -> None:
    fail_once(pg, "campus_events", at_row=2)
    doc = {"terminal_id": DOOR.terminal_id, "events": [_event(1), _event(2), _event(3)]}
    assert store_events(pg, DOOR, doc) == {"stored": 3, "duplicates": 0}
    assert (rows_written(pg), _count(pg, "campus_events")) == (5, 3)
