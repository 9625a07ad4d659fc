"""Online load through the gateway's HSM: the unchanged Kiosk over HTTP, retries, torn
credits resolved by GET TRANSACTION PROVE or voided on the card's answer to a void
challenge, never twice."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.forwarder import Forwarder
from simulators.profiles import demo_card
from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined
from terminal.journal import Journal
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles.debit import LoadInterrupted
from terminal.roles.kiosk import Kiosk
from terminal.roles.load_host import HttpLoadHost, LoadPending, resolve_load
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient, GatewayRefused
from tests.terminal.roles.fleet import CREDIT

KIOSK = "310000000090"


@pytest.fixture
def kiosk_host(gateway):
    token = gateway.register(KIOSK, "card-centre", role="kiosk")
    client = GatewayClient(gateway.url, token)
    yield HttpLoadHost(client, sleep=lambda s: None)
    client.close()


@pytest.fixture
def make_kiosk(tmp_path):
    """Kiosks with their journals (each its own file) on the sim reader."""
    journals: list[Journal] = []

    def make(host, clock, card):
        reader = SimReader(card, name="kiosk")
        journals.append(Journal(tmp_path / f"kiosk-{len(journals)}.db"))
        session = TerminalSession(reader, clock=clock)
        return Kiosk(session, host, bytes.fromhex(KIOSK), journal=journals[-1]), reader

    yield make
    for journal in journals:
        journal.close()


def test_kiosk_tops_up_through_the_gateway_and_clearing_counts_it_once(
    gateway, clearing, kiosk_host, clock, make_kiosk
):
    card = demo_card(5, balance=1_000)
    kiosk, _ = make_kiosk(kiosk_host, clock, card)
    top = kiosk.top_up(5_000)
    assert card.balance == 6_000 and top.result.balance_after == 6_000
    with gateway.db.tx() as cur:
        cur.execute("SELECT state, tac, amount FROM loads")
        assert cur.fetchall() == [("confirmed", top.result.tac.hex().upper(), 5_000)]
    fwd = Forwarder(gateway.db, clearing.url)
    assert fwd.drain() == 1 and fwd.stats.accepted == 1
    totals = clearing.settlement()["totals"]
    assert totals["loads"] == 1 and totals["load_amount"] == 5_000
    # confirming again (a retry whose answer was lost) changes nothing
    req, auth = top.result.request, top.result.authorization
    kiosk_host.confirm_load(req, auth, top.result.tac)
    assert gateway.count("outbox") == 1


def test_authorize_is_idempotent_and_a_new_initialize_waits_for_the_old_load(
    gateway, kiosk_host, clock
):
    card = demo_card(6, balance=0)
    session = TerminalSession(SimReader(card), clock=clock)
    session.card_reader.connect()
    info = session.run(flows.select())
    req = session.run(flows.prepare_load(info, bytes.fromhex(KIOSK), 2_000, clock()))
    first = kiosk_host.authorize_load(req)
    again = kiosk_host.authorize_load(req)
    assert again == first  # same MAC2, same reference
    req2 = session.run(flows.prepare_load(info, bytes.fromhex(KIOSK), 2_000, clock()))
    with pytest.raises(LoadPending, match=f"has load {first.reference} .* resolve it first"):
        kiosk_host.authorize_load(req2)
    states = {x["reference"]: x["state"] for x in kiosk_host.client.request("GET", "/v1/loads")}
    assert states == {first.reference: "authorized"}
    # the card settles it (the void challenge's INITIALIZE), then a new load goes through
    (pending,) = kiosk_host.pending()
    assert resolve_load(session, kiosk_host, pending) == "void"
    req3 = session.run(flows.prepare_load(info, bytes.fromhex(KIOSK), 2_000, clock()))
    third = kiosk_host.authorize_load(req3)
    session.run(flows.complete_load(req3, third))
    assert card.balance == 2_000


def test_card_pulled_after_credit_is_settled_by_prove(
    gateway, clearing, kiosk_host, clock, make_kiosk
):
    card = demo_card(7, balance=500)
    kiosk, reader = make_kiosk(kiosk_host, clock, card)
    reader.tear_at_ins(CREDIT, AFTER)  # CREDIT FOR LOAD reached the card; the answer did not
    with pytest.raises(LoadInterrupted):
        kiosk.top_up(1_000)
    assert card.balance == 1_500
    (pending,) = kiosk_host.pending()
    assert pending["state"] == "authorized"
    reader.insert(card)
    assert resolve_load(kiosk.session, kiosk_host, pending) == "confirmed"
    assert kiosk_host.pending() == []
    # resolving again, or the kiosk confirming late, credits nothing more
    assert resolve_load(kiosk.session, kiosk_host, pending) == "confirmed"
    fwd = Forwarder(gateway.db, clearing.url)
    assert fwd.drain() == 1
    assert clearing.settlement()["totals"]["load_amount"] == 1_000


def test_card_pulled_before_credit_is_voided_on_the_cards_word(
    gateway, kiosk_host, clock, make_kiosk
):
    card = demo_card(8, balance=500)
    kiosk, reader = make_kiosk(kiosk_host, clock, card)
    reader.tear_at_ins(CREDIT, BEFORE)
    with pytest.raises(LoadInterrupted):
        kiosk.top_up(1_000)
    assert card.balance == 500
    (pending,) = kiosk_host.pending()
    reader.insert(card)
    assert resolve_load(kiosk.session, kiosk_host, pending) == "void"
    assert gateway.count("outbox") == 0
    # the rider tries again and this time it works
    reader.insert(card)
    kiosk.top_up(1_000)
    assert card.balance == 1_500


def test_void_needs_the_card_to_prove_it(gateway, kiosk_host, clock, make_kiosk):
    card = demo_card(9, balance=500)
    kiosk, reader = make_kiosk(kiosk_host, clock, card)
    reader.tear_at_ins(CREDIT, AFTER)
    with pytest.raises(LoadInterrupted):
        kiosk.top_up(1_000)
    (pending,) = kiosk_host.pending()
    reader.insert(card)
    reader.connect()
    info = kiosk.session.run(flows.select())
    challenge = kiosk_host.void_challenge(pending["reference"])
    evidence = kiosk.session.run(
        flows.prepare_load(
            info, bytes.fromhex(challenge["terminal_id"]), challenge["amount"], clock()
        )
    )
    # the card credited, so its online counter moved on: no void
    with pytest.raises(GatewayRefused, match="GET TRANSACTION PROVE"):
        kiosk_host.void(pending["reference"], evidence)
    forged = dataclasses.replace(evidence, online_atc=pending["online_atc"])
    with pytest.raises(GatewayRefused, match="MAC1 is invalid"):
        kiosk_host.void(pending["reference"], forged)
    assert kiosk_host.pending()[0]["state"] == "authorized"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mac1": b"\x00\x00\x00\x00"}, "MAC1 is invalid"),
        ({"amount": 200_000}, "top-up must be"),
        ({"balance_before": 99_500}, "purse ceiling"),
        ({"terminal_id": bytes.fromhex("310000000091")}, "credentials are for"),
    ],
)
def test_bad_load_requests_are_declined(gateway, kiosk_host, clock, change, reason):
    card = demo_card(10, balance=0)
    session = TerminalSession(SimReader(card), clock=clock)
    session.card_reader.connect()
    info = session.run(flows.select())
    req = session.run(flows.prepare_load(info, bytes.fromhex(KIOSK), 2_000, clock()))
    with pytest.raises(LoadDeclined, match=reason):
        kiosk_host.authorize_load(dataclasses.replace(req, **change))
    assert gateway.count("loads") == 0


def test_only_kiosks_load_and_hotlisted_cards_are_refused(gateway, kiosk_host, clock, make_kiosk):
    pos_token = gateway.register("310000000001", "shop", role="pos")
    card = demo_card(11, balance=0)
    with GatewayClient(gateway.url, pos_token) as client:
        pos_host = HttpLoadHost(client)
        pos_kiosk, _ = make_kiosk(pos_host, clock, card)
        pos_kiosk.terminal_id = bytes.fromhex("310000000001")
        with pytest.raises(LoadDeclined, match="needs kiosk"):
            pos_kiosk.top_up(100)
    from gateway.hotlist import change

    change(gateway.db, "add", card.issuer_id.hex(), card.serial.hex(), reason="挂失")
    kiosk, _ = make_kiosk(kiosk_host, clock, card)
    with pytest.raises(LoadDeclined, match="hotlist"):
        kiosk.top_up(100)
    assert card.balance == 0 and gateway.count("loads") == 0
