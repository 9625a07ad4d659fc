"""The library's loans and returns on PostgreSQL: a transaction the database rolls back for a
serialization failure runs again whole, so a loan lends once and a return closes it once, and
the desk is answered as if nothing failed (not ``book_on_loan`` or a duplicate of itself)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.auth import Terminal
from gateway.campus.library import LoanLimits, borrow, give_back
from gateway.campus.store import Person, add_person, bind_card
from gateway.storage import open_storage
from tests.gateway_fixtures import fail_once, rows_written
from tests.servers import PostgresCluster

SERIAL = "0290000000000001"
DESK = Terminal("310000000401", "campus", "library", "", False)


@pytest.mark.parametrize("failing", ["loan", "return"])
def test_a_loan_or_return_rolled_back_once_happens_once(
    pg_cluster: PostgresCluster, failing: str
) -> None:
    db = open_storage(pg_cluster.new_database())
    try:
        add_person(db, Person("P1", "Li Lei", "staff", date(2026, 1, 1), date(2027, 1, 1)))
        bind_card(db, SERIAL, "0290000000000000", "P1")
        fail_once(db, "campus_library_loans", at_row=1 if failing == "loan" else 2)
        loan = {"terminal_id": DESK.terminal_id, "loan_no": 1, "card_serial": SERIAL,
                "person_no": "P1", "book": "B-0001"}  # fmt: skip
        assert borrow(db, DESK, loan, LoanLimits()) == {"held": 1, "limit": 10, "duplicate": False}
        back = {"terminal_id": DESK.terminal_id, "return_no": 1, "book": "B-0001"}
        answer = give_back(db, DESK, back)
        assert answer == {"book": "B-0001", "person_no": "P1", "duplicate": False}
        assert rows_written(db) == 3  # the loan and the return, one of them twice
        with db.tx() as cur:
            cur.execute("SELECT loan_no, return_no FROM campus_library_loans")
            assert [tuple(r) for r in cur.fetchall()] == [(1, 1)]
    finally:
        db.close()
