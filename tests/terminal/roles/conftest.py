"""Roles that talk to the gateway do so to a real one (SQLite and PostgreSQL); the one-card
POS tests share a journal and a POS builder."""

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from simulators.psam import SoftPsam
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.session import TerminalSession
from tests.gateway_fixtures import clearing, db, db_url, gateway, pg_cluster
from tests.terminal.emv.helpers import CONFIG, STORE

__all__ = ["clearing", "db", "db_url", "gateway", "journal", "pg_cluster", "pos_for"]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """The POS's journal, ``pos.db`` in the test's directory."""
    with Journal(tmp_path / "pos.db") as j:
        yield j


@pytest.fixture
def pos_for(psam: SoftPsam, clock: Callable[[], datetime], journal: Journal) -> Any:
    """``pos_for(card, rule)``: a started one-card POS on ``journal`` with ``card`` presented."""

    def make(card: Any, rule: PaymentRule | None = None) -> OneCardPos:
        session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
        session.start()
        return OneCardPos(session, journal, CONFIG, STORE, rule)

    return make
