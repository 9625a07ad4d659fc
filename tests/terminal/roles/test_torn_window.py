"""A bus tap torn at DEBIT whose card never comes back: the validator's idle time makes the
row suspect once the window has passed, the uploader sends it, and the back office sees it
(clearing rejects it for want of a TAC, a lost card's balance is not vouched for over it).
A card back inside the window still completes its tap once; a card back after it is not
charged the torn ride again, its tap is a new ride."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from gateway.cards import CarryRules
from gateway.forwarder import Forwarder
from gateway.reconcile import reconcile
from simulators.epurse_card import SoftEPurseCard
from terminal.journal import INTENT, SETTLED, SUSPECT, VOID
from terminal.readers.sim import AFTER, BEFORE
from terminal.roles.loop import TapLoop
from terminal.uplink import GatewayClient, GatewayRefused, Uplink
from terminal.uplink.issuance import last_known_balance, push_issuance
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer, start_gateway
from tests.subsidy_kit import PEOPLE, Centre, card_for
from tests.terminal.roles.fleet import DEBIT, Fleet, counted_checks

BUS = "310000000201"  # the fleet's bus validator
REASON = (
    "the card did not come back within 24 h to prove whether the debit went through:"
    " kept for checking"
)


@pytest.fixture
def gw(db, clock) -> Iterator[GatewayServer]:  # type: ignore[no-untyped-def]
    """A gateway on the test's clock that gives a lost card's balance without waiting."""
    server = start_gateway(db, clock, carry=CarryRules(settling=timedelta(0), clock=clock))
    yield server
    server.server.stop()


def torn_tap(f: Fleet, card: SoftEPurseCard, when: str = AFTER) -> None:
    """A bus tap whose DEBIT is torn ``when``; the rider walks off with the card."""
    f.reader.insert(card)
    card.reset()
    f.reader.tear_at_ins(DEBIT, when)
    assert not f.bus.tap().green
    f.reader.tear_when(None)
    f.reader.remove()
    assert [r.state for r in f.journal.rows()] == [INTENT]


def idle(f: Fleet, rounds: int = 5) -> TapLoop:
    """The bus's tap loop left idle (no card) for ``rounds`` of its integrity checks, 20 ms
    apart; the loop, stopped."""
    loop = TapLoop(f.bus, f.reader, lambda r: None, poll=0.02, verify_every=0.02)
    with counted_checks(f.journal) as wait:
        worker = threading.Thread(target=loop.run)
        worker.start()
        try:
            wait(rounds)
        finally:
            loop.stop()
            worker.join(10)
    assert loop.fault is None and loop.taps == 0
    return loop


def test_a_torn_tap_whose_card_never_returns_reaches_the_back_office(  # type: ignore[no-untyped-def]
    gw, clearing, clock: FrozenClock, tmp_path
) -> None:
    centre = Centre(gw, clock)
    try:
        (record,) = centre.issue(PEOPLE[:1])
        card = card_for(record)
        kiosk, _ = centre.kiosk(card=card)
        kiosk.top_up(5_000)
        f = Fleet(tmp_path / "bus.db", clock)
        f.cards.append(card)
        f.opening[card.serial], f.opening_atc[card.serial] = card.balance, card.state.offline_atc
        torn_tap(f, card)
        assert card.balance == 4_800  # the card paid; its answer was lost

        clock.advance(hours=24, minutes=1)
        idle(f)
        (row,) = f.journal.rows()
        assert (row.state, row.resolution, row.tac) == (SUSPECT, REASON, None)
        assert f.journal.pending_upload() == 1
        f.check_invariants()  # the card's debit has its row, counted once

        token = gw.register(BUS, "bus-co", role="validator")
        with GatewayClient(gw.url, token) as client:
            assert Uplink(f.journal, {BUS: client}).drain() == 1
        assert f.journal.pending_upload() == 0 and f.journal.parked() == []
        with gw.db.tx() as cur:  # the gateway stores it as it came: suspect, no TAC
            cur.execute("SELECT terminal_seq, amount, state, tac FROM txn")
            assert cur.fetchall() == [(row.terminal_seq, 200, SUSPECT, None)]

        forwarder = Forwarder(gw.db, clearing.url, gateway_id="gw-test")
        assert forwarder.drain() == 2  # the kiosk's top-up and the ride
        assert (forwarder.stats.accepted, forwarder.stats.rejected) == (1, 1)
        (rejection,) = clearing.ledger.rejections()
        assert rejection["key"] == f"P:{BUS}:{row.terminal_seq}"
        assert rejection["reason"].startswith("no TAC: a record without the card's proof")
        assert clearing.settlement()["totals"]["purchase_amount"] == 0  # nobody paid for it
        # what the back office sees: the count on /health and the row in reconciliation
        assert httpx.get(gw.url + "/health").json()["clearing_rejected"] == 1
        report = reconcile(gw.db, clearing.url, "gw-test")
        assert not report["matched"]
        (listed,) = report["rejected"]
        assert listed["terminal_id"] == BUS and listed["terminal_seq"] == row.terminal_seq
        assert listed["amount"] == 200 and listed["reason"].startswith("no TAC")

        # the card is lost: its balance is not vouched for over a debit nobody can prove
        centre.registry.report_lost(record.card_number)
        push_issuance(centre.desk, centre.registry.export)
        with pytest.raises(GatewayRefused) as refused:
            last_known_balance(centre.desk, record.card_number)
        assert (refused.value.status, refused.value.code) == (409, "balance_unproven")
        assert (
            f"terminal {BUS} seq {row.terminal_seq} is a suspect record without a proven debit"
            in refused.value.reason
        )
    finally:
        centre.close()


def test_a_card_back_inside_the_window_completes_its_torn_tap_once(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1)
    card = f.cards[0]
    torn_tap(f, card)
    clock.advance(hours=23, minutes=59)
    loop = idle(f)  # several integrity rounds inside the window
    assert [r.state for r in f.journal.rows()] == [INTENT]
    assert f.journal.pending_upload() == 0

    back = f.tap(card, f.bus)  # a day later: the torn ride is proven, this tap is a new one
    assert back.green and back.fare == 200
    assert [r.outcome for r in back.recovered] == [SETTLED]
    torn, ride = f.journal.rows()
    assert (torn.state, torn.tac is not None, ride.state) == (SETTLED, True, SETTLED)
    clock.advance(hours=2)
    loop.watch.every = 0
    loop.watch.check()  # past the window now: nothing open is left to report
    assert [r.state for r in f.journal.rows()] == [SETTLED, SETTLED]
    assert card.balance == 5_000 - 400 and card.state.offline_atc == 2
    f.check_invariants()


@pytest.mark.parametrize("when", [AFTER, BEFORE], ids=["card-paid", "card-never-paid"])
def test_a_row_made_suspect_is_not_reopened_when_its_card_comes_back(  # type: ignore[no-untyped-def]
    tmp_path, clock, when: str
) -> None:
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1)
    card = f.cards[0]
    torn_tap(f, card, when)
    paid = 200 if when == AFTER else 0
    assert card.balance == 5_000 - paid
    clock.advance(hours=25)
    idle(f)
    (suspect,) = f.journal.rows()
    assert (suspect.state, suspect.resolution) == (SUSPECT, REASON)

    back = f.tap(card, f.bus)
    assert back.green and back.fare == 200 and back.recovered == ()
    assert back.row is not None and back.row.state == SETTLED
    assert card.balance == 5_000 - paid - 200  # the new ride only
    assert card.state.offline_atc == (2 if when == AFTER else 1)
    again, ride = f.journal.rows()
    assert again == suspect and ride.id == back.row.id  # untouched: still suspect, no TAC
    assert VOID not in [r.state for r in f.journal.rows()]
    if when == AFTER:
        f.check_invariants()
