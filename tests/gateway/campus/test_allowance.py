"""The allowance purse's writes on PostgreSQL: a transaction the database rolls back for a
serialization failure runs again whole, so a roster credits each person once and a spend
debits once."""

from __future__ import annotations

from datetime import date

from gateway.auth import Terminal
from gateway.campus import allowance
from gateway.campus.store import Person, add_person, bind_card
from gateway.storage import open_storage
from tests.gateway_fixtures import fail_once, rows_written
from tests.servers import PostgresCluster


def _roster(p1: int, p2: int) -> list[dict[str, object]]:
    return [{"person_no": "P1", "amount_fen": p1}, {"person_no": "P2", "amount_fen": p2}]


def test_a_roster_rolled_back_once_for_a_serialization_failure_credits_each_person_once(
    pg_cluster: PostgresCluster,
) -> None:
    """October's roster made both accounts; November's fails at the second account's update,
    after the first person's credit and balance were written in the same transaction. The
    roster runs again and answers as if nothing failed: two credited, each balance raised
    once, one credit row per person."""
    db = open_storage(pg_cluster.new_database())
    try:
        for person in ("P1", "P2"):
            add_person(db, Person(person, person, "staff", date(2026, 1, 1), date(2027, 1, 1)))
        assert allowance.credit_month(db, "2026-10", "oct", _roster(1_000, 500))["credited"] == 2
        fail_once(db, "campus_allowance_accounts", at_row=2)
        answer = allowance.credit_month(db, "2026-11", "nov", _roster(2_000, 700))
        assert answer == {"credited": 2, "already_held": 0}
        assert rows_written(db) == 4  # P1, P2 (rolled back), then P1 and P2 once more
        assert (allowance.balance(db, "P1"), allowance.balance(db, "P2")) == (3_000, 1_200)
        with db.tx() as cur:
            cur.execute(
                "SELECT person_no, amount FROM campus_allowance_credits WHERE month = '2026-11'"
                " ORDER BY person_no"
            )
            assert [tuple(r) for r in cur.fetchall()] == [("P1", 2_000), ("P2", 700)]
    finally:
        db.close()


def test_a_spend_rolled_back_once_for_a_serialization_failure_debits_once(
    pg_cluster: PostgresCluster,
) -> None:
    """The spend's row fails after the account was debited in the same transaction: the
    spend runs again and the till is answered the balance after one debit, not a storage
    error."""
    db = open_storage(pg_cluster.new_database())
    serial, till = "0290000000000001", Terminal("310000000301", "campus", "pos", "", False)
    try:
        add_person(db, Person("P1", "P1", "staff", date(2026, 1, 1), date(2027, 1, 1)))
        bind_card(db, serial, "0290000000000000", "P1")
        allowance.credit_month(db, "2026-11", "nov", [{"person_no": "P1", "amount_fen": 3_000}])
        fail_once(db, "campus_allowance_spends")
        sale = {"terminal_id": till.terminal_id, "sale_seq": 1, "card_serial": serial,
                "person_no": "P1", "amount_fen": 1_000, "meal": "lunch"}  # fmt: skip
        assert allowance.spend(db, till, sale) == {"balance_fen": 2_000, "duplicate": False}
        assert rows_written(db) == 2
        assert allowance.balance(db, "P1") == 2_000
        with db.tx() as cur:
            cur.execute("SELECT COUNT(*) FROM campus_allowance_spends")
            assert cur.fetchone()[0] == 1
    finally:
        db.close()
