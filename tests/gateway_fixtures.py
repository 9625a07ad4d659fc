"""Fixtures for the gateway suites: PostgreSQL for the session, one fresh database per test
on each backend, a clearing service and a gateway on real uvicorn servers.

Imported by the conftest of each suite that needs them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewaySettings, create_app
from gateway.auth import register_terminal
from gateway.hsm import HostSecurityModule
from gateway.storage import POSTGRES, Cursor, Database, open_storage
from gateway.subsidy.bank import BankKey
from simulators.clearing.app import create_app as create_clearing_app
from simulators.clearing.ledger import Ledger
from simulators.clearing.verify import TacVerifier
from simulators.emv_profiles import default_issuer
from simulators.profiles import DEMO_ISSUERS, demo_keyset
from simulators.qr_app import RideCodeApp
from tests.servers import PostgresCluster, UvicornThread

ADMIN_TOKEN = "test-admin-token"
BANK_KEY = BankKey("hmac-sm3", "line", bytes(range(16)))  # the test agent bank's shared key
BACKENDS = ["sqlite", "postgres"]


def demo_keysets() -> list[Any]:
    return [demo_keyset(i) for i in DEMO_ISSUERS.values()]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_cluster").new_database()
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_storage(db_url)
    yield database
    database.close()


@dataclass
class ClearingServer:
    ledger: Ledger
    server: UvicornThread

    @property
    def url(self) -> str:
        return self.server.url

    def settlement(self, day: str | None = None) -> Any:
        params = {"day": day} if day else {}
        return httpx.get(self.url + "/v1/settlement", params=params).json()


def clearing_verifier() -> TacVerifier:
    """Clearing's keys for the software cards, EMV issuer and ride-code app (its default
    root CA and issuer: the names derive the same keys in every run)."""
    app = RideCodeApp()
    return TacVerifier(
        demo_keysets(),
        ec_issuers=(default_issuer(),),
        qr_roots={app.root.index: app.root.root_key},
        qr_issuers=(app.issuer().rule,),
    )


@pytest.fixture
def clearing(tmp_path: Path) -> Iterator[ClearingServer]:
    ledger = Ledger(str(tmp_path / "clearing.db"), clearing_verifier())
    server = UvicornThread(create_clearing_app(ledger)).start()
    yield ClearingServer(ledger, server)
    server.stop()
    ledger.close()


@dataclass
class GatewayServer:
    db: Database
    server: UvicornThread
    app: Any

    @property
    def url(self) -> str:
        return self.server.url

    def register(self, terminal_id: str, operator_id: str = "bus-co", role: str = "pos") -> str:
        return register_terminal(self.db, terminal_id, operator_id, role=role)

    def count(self, table: str) -> int:
        with self.db.tx() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cur.fetchone()[0])


def start_gateway(
    db: Database, clock: Any = None, clearing_url: str | None = None, **settings: Any
) -> GatewayServer:
    hsm = HostSecurityModule(demo_keysets(), **({"clock": clock} if clock else {}))
    settings.setdefault("bank_key", BANK_KEY)
    app = create_app(
        db,
        hsm=hsm,
        settings=GatewaySettings(admin_token=ADMIN_TOKEN, clearing_url=clearing_url, **settings),
    )
    return GatewayServer(db, UvicornThread(app).start(), app)


@pytest.fixture
def gateway(db: Database, clock: Any) -> Iterator[GatewayServer]:
    """A gateway without a forwarder (tests drive forwarding themselves)."""
    gw = start_gateway(db, clock)
    yield gw
    gw.server.stop()


class Rollback(Exception):
    """Ends the test's own transaction without committing it."""


def lock_waiters(gw: GatewayServer) -> int:
    """PostgreSQL: how many connections to the gateway's database wait on a lock."""
    with gw.db.read() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cur.fetchone()[0])


def race_held(
    gw: GatewayServer,
    threads: list[threading.Thread],
    hold: Callable[[Cursor], None],
    *,
    waiting: int,
    what: str,
) -> None:
    """Run ``threads`` to their end, overlapping for certain: on PostgreSQL the test's own
    transaction first takes a lock by ``hold`` and keeps it until ``waiting`` of them wait
    on a lock inside the gateway, then rolls back; SQLite has one writer, so they just run."""
    if gw.db.dialect == POSTGRES:
        with contextlib.suppress(Rollback), gw.db.tx() as cur:
            hold(cur)
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while lock_waiters(gw) < waiting:
                assert time.monotonic() < deadline, f"{what} never all waited"
                time.sleep(0.02)
            raise Rollback
    else:
        for t in threads:
            t.start()
    for t in threads:
        t.join(60)


def fail_once(db: Database, table: str, at_row: int = 1) -> None:
    """PostgreSQL: the ``at_row``-th row written to ``table`` from now on rolls its
    transaction back with a serialization failure (SQLSTATE 40001), once; the sequence that
    counts the rows is not rolled back with it, so a run again passes."""
    with db.tx() as cur:
        cur.execute("CREATE SEQUENCE forced_failure")
        cur.execute(
            "CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF nextval('forced_failure') = {int(at_row)} THEN"
            " RAISE EXCEPTION 'forced by the test' USING ERRCODE = 'serialization_failure';"
            " END IF; RETURN NULL; END $$"
        )
        cur.execute(
            f"CREATE TRIGGER forced_failure AFTER INSERT OR UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION forced_failure()"
        )


def rows_written(db: Database) -> int:
    """How many rows ``fail_once``'s table was written since (the failed run's included)."""
    with db.tx() as cur:
        cur.execute("SELECT last_value FROM forced_failure")
        return int(cur.fetchone()[0])
