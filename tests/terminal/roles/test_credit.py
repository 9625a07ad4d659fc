"""The one journaled credit path (``CreditPath``): a kiosk's top-up journaled before CREDIT
FOR LOAD and settled or voided after, against the real gateway and the software card.

The card is cut away after every APDU of a top-up (and of a subsidy pickup) in turn; each
time the next visit (or a start, when only the gateway's confirmation is missing) settles
the journal row, and the card's balance, the journal and the gateway's loads agree: every
confirmed load is on the card once, nothing is left authorised, no journal row is left open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulators.profiles import demo_card
from terminal.apdu.errors import CardRemoved
from terminal.epurse import flows
from terminal.journal import INTENT, SETTLED, VOID, Journal
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles.debit import CreditPath, LoadInterrupted
from terminal.roles.kiosk import Kiosk
from terminal.roles.load_host import HttpLoadHost
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient, GatewayUnavailable
from tests.subsidy_kit import (
    KIOSK_A,
    PEOPLE,
    Centre,
    answer,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    roster,
)
from tests.terminal.roles.fleet import CREDIT, tear_after_nth

KIOSK = "310000000090"


def loads(gateway: Any, card_serial: str) -> dict[str, tuple[str, int]]:
    """The gateway's loads of the card: reference -> (state, amount)."""
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT reference, state, amount FROM loads WHERE card_serial = ?", (card_serial,)
        )
        return {r[0]: (r[1], r[2]) for r in cur.fetchall()}


def assert_agree(gateway: Any, journal: Journal, card: Any, start: int) -> None:
    """Card, journal and gateway tell the same story: confirmed loads are exactly what the
    card gained; nothing is left open anywhere."""
    held = loads(gateway, card.serial.hex().upper())
    confirmed = sum(a for s, a in held.values() if s == "confirmed")
    assert card.balance - start == confirmed, held
    assert all(s in ("confirmed", "void") for s, _ in held.values()), held
    assert journal.open_loads() == []
    rows = {r.reference: r for r in journal.load_rows()}
    for ref, (state, amount) in held.items():
        row = rows[ref]
        assert row.state == (SETTLED if state == "confirmed" else VOID), (ref, row)
        assert row["amount"] == amount
        if state == "confirmed":
            assert row["tac"] is not None


@pytest.fixture
def host(gateway):
    client = GatewayClient(gateway.url, gateway.register(KIOSK, "card-centre", role="kiosk"))
    yield HttpLoadHost(client, sleep=lambda s: None)
    client.close()


def kiosk_at(card: Any, host: HttpLoadHost, journal: Journal, clock: Any) -> Kiosk:
    reader = SimReader(card)
    return Kiosk(TerminalSession(reader, clock=clock), host, bytes.fromhex(KIOSK), journal=journal)


def test_a_top_up_is_journaled_and_settled(gateway, host, clock, tmp_path: Path):
    card = demo_card(60, balance=500)
    with Journal(tmp_path / "kiosk.db") as journal:
        done = kiosk_at(card, host, journal, clock).top_up(1_000)
        assert done.credit is not None and done.credit.confirmed
        (row,) = journal.load_rows()
        assert (row.state, row["amount"], row["tac"]) == (
            SETTLED,
            1_000,
            done.result.tac.hex().upper(),
        )
        assert card.balance == 1_500
        assert_agree(gateway, journal, card, 500)


def test_card_cut_after_every_apdu_is_recovered_at_the_next_tap(
    gateway, host, clock, tmp_path: Path
):
    """Tear after the n-th APDU for every n, then tap again: the interrupted top-up ends
    credited once (proved) or not at all (voided), and the retried top-up goes through."""
    journal = Journal(tmp_path / "kiosk.db")
    card = demo_card(61, balance=0)
    start = card.balance
    kiosk = kiosk_at(card, host, journal, clock)
    reader: SimReader = kiosk.session.card_reader  # type: ignore[assignment]
    torn_after_credit = 0
    n = 0
    while True:
        reader.insert(card)
        rule, seen = tear_after_nth(n)
        reader.tear_when(rule)
        try:
            kiosk.top_up(100)
        except (CardRemoved, LoadInterrupted):
            torn_after_credit += seen[-1] == CREDIT
            reader.tear_when(None)
            reader.insert(card)
            before = card.balance
            again = kiosk.top_up(100)  # the next tap: recover first, then top up
            assert card.balance == again.result.balance_after
            assert card.balance - before in (100, 200)
            assert_agree(gateway, journal, card, start)
            n += 1
            continue
        reader.tear_when(None)
        break
    assert torn_after_credit == 1  # the cut that matters was among them
    assert n >= 4
    assert_agree(gateway, journal, card, start)
    journal.close()


def test_card_pulled_after_credit_stays_open_then_is_proved(gateway, host, clock, tmp_path: Path):
    card = demo_card(62, balance=300)
    with Journal(tmp_path / "kiosk.db") as journal:
        kiosk = kiosk_at(card, host, journal, clock)
        reader: SimReader = kiosk.session.card_reader  # type: ignore[assignment]
        reader.tear_at_ins(CREDIT, AFTER)
        with pytest.raises(LoadInterrupted) as torn:
            kiosk.top_up(700)
        assert "present the same card again" in str(torn.value)
        assert card.balance == 1_000  # the card credited; its answer was lost
        (row,) = journal.open_loads()
        assert row.state == INTENT and row["tac"] is None
        assert set(loads(gateway, card.serial.hex().upper()).values()) == {("authorized", 700)}
        reader.insert(card)
        session = kiosk.session
        session.card_reader.connect()
        info = session.run(flows.select())
        ((outcome, settled),) = kiosk.credits.recover(info)  # type: ignore[union-attr]
        assert outcome == SETTLED and settled["tac"] is not None
        assert card.balance == 1_000
        assert_agree(gateway, journal, card, 300)


def test_card_pulled_before_credit_is_voided_at_the_next_tap(gateway, host, clock, tmp_path: Path):
    card = demo_card(63, balance=300)
    with Journal(tmp_path / "kiosk.db") as journal:
        kiosk = kiosk_at(card, host, journal, clock)
        reader: SimReader = kiosk.session.card_reader  # type: ignore[assignment]
        reader.tear_at_ins(CREDIT, BEFORE)
        with pytest.raises(LoadInterrupted):
            kiosk.top_up(700)
        assert card.balance == 300
        reader.insert(card)
        done = kiosk.top_up(200)
        assert card.balance == 500 == done.result.balance_after
        states = sorted(r.state for r in journal.load_rows())
        assert states == [SETTLED, VOID]
        assert_agree(gateway, journal, card, 300)


class DownForConfirm(HttpLoadHost):
    """The gateway goes away between MAC2 and the confirmation."""

    def confirm(self, reference: str, tac: bytes) -> dict[str, Any]:
        raise GatewayUnavailable("gateway down (test)")


def test_a_lost_confirmation_is_sent_at_the_next_start(gateway, host, clock, tmp_path: Path):
    card = demo_card(64, balance=0)
    path = tmp_path / "kiosk.db"
    with Journal(path) as journal:
        down = DownForConfirm(host.client, sleep=lambda s: None)
        kiosk = Kiosk(
            TerminalSession(SimReader(card), clock=clock),
            down,
            bytes.fromhex(KIOSK),
            journal=journal,
        )
        done = kiosk.top_up(400)
        assert done.credit is not None and not done.credit.confirmed
        assert card.balance == 400
        (row,) = journal.open_loads()
        assert row["tac"] == done.result.tac.hex().upper()
    # a power cut; the kiosk starts again, no card in the reader
    with Journal(path) as journal:
        path_ = CreditPath(TerminalSession(SimReader(), clock=clock), journal, host)
        ((outcome, _),) = path_.recover_without_card()
        assert outcome == SETTLED
        assert_agree(gateway, journal, card, 0)


def test_a_pickup_cut_after_every_apdu_is_paid_once(gateway, clock):
    """Subsidy pickup on the same credit path: tear after the n-th APDU for every n, then
    present the card again: the roster line ends paid exactly once, the card holds it once,
    and the kiosk's journal, the gateway's loads and the card agree."""
    centre = Centre(gateway, clock)
    try:
        (r,) = centre.issue(PEOPLE[:1])
        card = card_for(r, balance=0)
        holder = holder_row(r)
        kiosk, reader = centre.kiosk(card=card)
        torn_after_credit = n = 0
        while True:
            doc = import_roster(gateway, roster(f"{holder},H18,{100 + n},2026-{n % 12 + 1:02d}"))
            approve_roster(gateway, int(doc["roster"]["id"]))
            reader.insert(card)
            start = card.balance
            rule, seen = tear_after_nth(n)
            reader.tear_when(rule)
            try:
                done = kiosk.pick_up(answer(0))
            except (CardRemoved, LoadInterrupted):
                torn_after_credit += seen[-1] == CREDIT
                reader.tear_when(None)
                reader.insert(card)
                done = kiosk.pick_up(answer(0))  # the next visit: the torn load first, then pay
                assert done.unresolved == []
                paid = done.paid_fen + sum(x["amount_fen"] for x in done.completed)
                assert paid == 100 + n and card.balance == start + paid
                assert_agree(gateway, centre.journal(KIOSK_A), card, 0)
                n += 1
                continue
            reader.tear_when(None)
            assert done.paid_fen == 100 + n and card.balance == start + 100 + n
            break
        assert torn_after_credit == 1 and n >= 4
        assert_agree(gateway, centre.journal(KIOSK_A), card, 0)
    finally:
        centre.close()
