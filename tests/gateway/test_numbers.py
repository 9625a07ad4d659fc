"""The card-number authority's office tools on PostgreSQL: a release the database rolls back
for a serialization failure runs again whole and is recorded once."""

from __future__ import annotations

from gateway import numbers
from gateway.storage import open_storage
from tests.gateway_fixtures import fail_once, rows_written
from tests.issuance_kit import SHANGHAI, VALID_ID
from tests.servers import PostgresCluster

DESK = "310000000080"


def test_a_release_rolled_back_once_for_a_serialization_failure_is_recorded_once(
    pg_cluster: PostgresCluster,
) -> None:
    db = open_storage(pg_cluster.new_database())
    try:
        number = numbers.lease(db, DESK, SHANGHAI.hex(), 10)["first_card_number"]
        numbers.claim(db, DESK, number, SHANGHAI.hex(), VALID_ID, 1)
        fail_once(db, "card_claim_releases")
        done = numbers.release(db, number, "王主任", "desk gone", age_ms=0)
        assert (done["card_number"], done["released_by"]) == (number, "王主任")
        assert rows_written(db) == 2
        assert [(r["card_number"], r["reason"]) for r in numbers.releases(db)] == [
            (number, "desk gone")
        ]
        assert numbers.stale_claims(db, 0) == []
    finally:
        db.close()
