"""The library desk against a real gateway: the card names the patron (authenticated, never
the UID alone), limits per group, lost and cloned cards refused, returns, resends."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from gateway.campus.library import LoanLimits
from simulators.campus import campus_card, clone
from terminal.campus.library import LibraryRefused
from terminal.uplink import GatewayClient
from tests.campus_kit import LIBRARY_ID, LibrarySite, admin, enrol
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer, start_gateway


@pytest.fixture
def library(gateway: GatewayServer, tmp_path: Path) -> LibrarySite:
    token = gateway.register(LIBRARY_ID, "campus", role="library")
    return LibrarySite(tmp_path, FrozenClock(datetime(2026, 11, 30, 15, 0)), gateway.url, token)


def _open_loans(gateway: GatewayServer) -> list[tuple[str, str]]:
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT person_no, book FROM campus_library_loans WHERE returned_at IS NULL"
            " ORDER BY book"
        )
        return [(r[0], r[1]) for r in cur.fetchall()]


def test_borrow_up_to_the_group_limit_then_return(
    library: LibrarySite, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    library.sync()
    first = library.borrow(card, "B-0001")
    assert (first.person_no, first.book, first.held, first.limit) == ("S1", "B-0001", 1, 2)
    assert library.borrow(card, "B-0002").held == 2
    with pytest.raises(LibraryRefused, match=r"loan_limit.*holds 2 book\(s\), the limit is 2"):
        library.borrow(card, "B-0003")
    assert _open_loans(gateway) == [("S1", "B-0001"), ("S1", "B-0002")]
    back = library.desk.give_back("B-0001")
    assert (back["person_no"], back["duplicate"]) == ("S1", False)
    assert library.borrow(card, "B-0003").held == 2
    other = campus_card(2, "S2")
    enrol(gateway.url, "S2", "staff", other)
    library.sync()
    with pytest.raises(LibraryRefused, match=r"book_on_loan.*B-0003 is on loan already"):
        library.borrow(other, "B-0003")
    assert _open_loans(gateway) == [("S1", "B-0002"), ("S1", "B-0003")]


def test_a_card_not_enrolled_is_refused_by_the_desk(
    library: LibrarySite, gateway: GatewayServer
) -> None:
    library.sync()
    with pytest.raises(LibraryRefused, match="card is not enrolled at this site"):
        library.borrow(campus_card(2, "S2"), "B-0009")
    assert gateway.count("campus_library_loans") == 0


def test_a_lost_card_is_refused_offline_from_the_synced_hotlist(
    library: LibrarySite, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    admin(gateway.url, f"/v1/admin/campus/cards/{card.serial.hex().upper()}/loss", {})
    library.sync()
    library.desk.client = GatewayClient("http://127.0.0.1:9", library.token, timeout=0.5)  # down
    with pytest.raises(LibraryRefused, match=r"card reported lost or blocked \(hotlist\)"):
        library.borrow(card, "B-0001")
    assert gateway.count("campus_library_loans") == 0


def test_a_cloned_card_is_refused(library: LibrarySite, gateway: GatewayServer) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    library.sync()
    with pytest.raises(LibraryRefused, match="not a genuine campus card"):
        library.borrow(clone(card), "B-0001")
    assert gateway.count("campus_library_loans") == 0


def test_the_desk_shows_the_back_offices_limit_when_it_is_lower(db, tmp_path: Path) -> None:
    """The desk's rules say 5 for staff; the back office says 3: the loan shows 3 held at
    most, the limit the gateway counted against, not the desk's own number."""
    gw = start_gateway(db, library=LoanLimits(site=10, groups={"staff": 3}))
    try:
        token = gw.register(LIBRARY_ID, "campus", role="library")
        site = LibrarySite(tmp_path, FrozenClock(datetime(2026, 11, 30, 15, 0)), gw.url, token)
        card = campus_card(3, "T1")
        enrol(gw.url, "T1", "staff", card)
        site.sync()
        loan = site.borrow(card, "B-0100")
        assert (loan.held, loan.limit) == (1, 3)
    finally:
        gw.server.stop()
