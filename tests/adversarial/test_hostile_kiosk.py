"""A kiosk (or its token) lying about loads and pickups (docs/security.md, "Online loads
and their voids").

The money hole: a kiosk holding MAC2 gets its load voided at the gateway and still sends
CREDIT FOR LOAD, so the card gains money that never reaches clearing (and a subsidy line
is paid again). Each test runs the attack against the real uvicorn gateway (SQLite and
PostgreSQL) with the software card's own INITIALIZE FOR LOAD answers, checks the refusal
and its reason, then proves nothing was lost: the credit is still booked and reaches the
outbox, the line is paid once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.forwarder import Forwarder
from simulators.profiles import demo_card
from terminal.epurse import flows
from terminal.epurse.model import CardInfo, LoadAuthorization, LoadRequest
from terminal.journal import Journal
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles.debit import LoadInterrupted
from terminal.roles.kiosk import Kiosk
from terminal.roles.kiosk_host import HttpSubsidyHost
from terminal.roles.load_host import (
    HttpLoadHost,
    LoadPending,
    prove_flow,
    request_json,
    resolve_load,
)
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient, GatewayRefused
from tests.subsidy_kit import (
    KIOSK_A,
    KIOSK_B,
    Centre,
    admin,
    answer,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    roster,
)
from tests.terminal.roles.fleet import CREDIT

KIOSK = "310000000090"
OTHER = "310000000091"


class CardAt:
    """A card in a kiosk's reader, driven APDU by APDU as a hostile kiosk would."""

    def __init__(self, card: Any, clock: Any):
        self.card = card
        self.clock = clock
        self.reader = SimReader(card)
        self.session = TerminalSession(self.reader, clock=clock)
        self.info: CardInfo | None = None

    def select(self) -> CardInfo:
        self.session.card_reader.connect()
        self.info = self.session.run(flows.select())
        return self.info

    def initialize(self, terminal_field: str | bytes, amount: int) -> LoadRequest:
        """INITIALIZE FOR LOAD (no CREDIT): the card's MAC1 over balance, amount, terminal."""
        field = bytes.fromhex(terminal_field) if isinstance(terminal_field, str) else terminal_field
        info = self.info or self.select()
        return self.session.run(flows.prepare_load(info, field, amount, self.clock()))

    def answer(self, challenge: dict[str, Any]) -> LoadRequest:
        return self.initialize(challenge["terminal_id"], challenge["amount"])

    def credit(self, request: LoadRequest, auth: LoadAuthorization) -> bytes:
        return self.session.run(flows.complete_load(request, auth)).tac

    def prove(self, online_atc: int) -> tuple[bytes, bytes]:
        self.select()
        return self.session.run(prove_flow(online_atc))


@pytest.fixture
def clients(gateway) -> Iterator[Callable[[str], GatewayClient]]:
    made: list[GatewayClient] = []

    def client(terminal_id: str) -> GatewayClient:
        c = GatewayClient(gateway.url, gateway.register(terminal_id, "card-centre", role="kiosk"))
        made.append(c)
        return c

    yield client
    for c in made:
        c.close()


def refused(call: Callable[[], Any], status: int, code: str) -> str:
    """Run ``call``, expect the gateway's refusal with this status and code; its reason."""
    with pytest.raises(GatewayRefused) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    return caught.value.reason


def load_state(gateway: Any, reference: str) -> tuple[str, int]:
    """(the load's state, its outbox rows)."""
    with gateway.db.tx() as cur:
        cur.execute("SELECT id, state FROM loads WHERE reference = ?", (reference,))
        load_id, state = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'load' AND ref_id = ?", (load_id,))
        return state, int(cur.fetchone()[0])


def authorize(host: HttpLoadHost, request: LoadRequest) -> LoadAuthorization:
    return host.authorize_load(request)


# -- plain top-ups ------------------------------------------------------------------------
def test_void_with_the_loads_own_initialize_is_refused_and_the_credit_stays_booked(
    gateway, clients, clock
):
    host = HttpLoadHost(clients(KIOSK), sleep=lambda s: None)
    at = CardAt(demo_card(41, balance=500), clock)
    req = at.initialize(KIOSK, 1_000)
    auth = authorize(host, req)
    # the attack: void with the very INITIALIZE answer that got MAC2
    reason = refused(lambda: host.void(auth.reference, req), 409, "no_challenge")
    assert "no void challenge" in reason and "before one exists" in reason
    # with a challenge issued, the old answer is still not fresh
    host.void_challenge(auth.reference)
    reason = refused(lambda: host.void(auth.reference, req), 422, "stale_evidence")
    assert "not fresh" in reason
    # the CREDIT the attacker wanted to keep off the books lands, and stays booked
    tac = at.credit(req, auth)
    assert at.card.balance == 1_500
    assert load_state(gateway, auth.reference) == ("authorized", 0)
    mac, proved_tac = at.prove(req.online_atc)
    assert proved_tac == tac
    assert host.prove(auth.reference, mac, proved_tac)["state"] == "confirmed"
    assert load_state(gateway, auth.reference) == ("confirmed", 1)


def test_an_initialize_read_before_the_challenge_cannot_void(gateway, clients, clock):
    host = HttpLoadHost(clients(KIOSK), sleep=lambda s: None)
    at = CardAt(demo_card(42, balance=500), clock)
    early = at.initialize("A1B2C3D4E5F6", 37)  # kept aside, as if guessing a challenge
    req = at.initialize(KIOSK, 1_000)
    auth = authorize(host, req)
    challenge = host.void_challenge(auth.reference)
    reason = refused(lambda: host.void(auth.reference, early), 422, "stale_evidence")
    assert "not fresh" in reason and challenge["terminal_id"] in reason
    # relabelling the old answer with the challenge's values breaks its MAC1
    from dataclasses import replace

    relabelled = replace(
        early,
        terminal_id=bytes.fromhex(challenge["terminal_id"]),
        amount=challenge["amount"],
    )
    reason = refused(lambda: host.void(auth.reference, relabelled), 422, "bad_evidence")
    assert "MAC1 is invalid" in reason
    at.credit(req, auth)
    assert at.card.balance == 1_500
    assert load_state(gateway, auth.reference) == ("authorized", 0)


def test_a_second_initialize_does_not_supersede_a_load_whose_mac2_went_out(gateway, clients, clock):
    host = HttpLoadHost(clients(KIOSK), sleep=lambda s: None)
    at = CardAt(demo_card(43, balance=500), clock)
    kept = at.initialize(KIOSK, 1_000)  # INITIALIZE #A, answer kept
    req_b = at.initialize(KIOSK, 1_000)  # INITIALIZE #B: the card's session now
    auth_b = authorize(host, req_b)
    with pytest.raises(LoadPending) as caught:
        authorize(host, kept)  # submitting A used to void B as "superseded"
    assert f"has load {auth_b.reference}" in caught.value.reason
    assert f"kiosk {KIOSK}" in caught.value.reason and "resolve it first" in caught.value.reason
    assert gateway.count("loads") == 1
    assert load_state(gateway, auth_b.reference) == ("authorized", 0)
    tac = at.credit(req_b, auth_b)
    host.confirm_load(req_b, auth_b, tac)
    assert at.card.balance == 1_500
    assert load_state(gateway, auth_b.reference) == ("confirmed", 1)


def test_another_kiosk_cannot_void_a_load(gateway, clients, clock):
    owner = HttpLoadHost(clients(KIOSK), sleep=lambda s: None)
    thief = HttpLoadHost(clients(OTHER), sleep=lambda s: None)
    at = CardAt(demo_card(44, balance=500), clock)
    req = at.initialize(KIOSK, 1_000)
    auth = authorize(owner, req)
    assert "no load" in refused(lambda: thief.void_challenge(auth.reference), 404, "unknown_load")
    assert "no load" in refused(lambda: thief.void(auth.reference, req), 404, "unknown_load")
    at.credit(req, auth)
    assert at.card.balance == 1_500
    assert load_state(gateway, auth.reference) == ("authorized", 0)


def test_void_challenges_are_single_use_live_per_load_and_per_card(gateway, clients, clock):
    host = HttpLoadHost(clients(KIOSK), sleep=lambda s: None)
    one, two = CardAt(demo_card(45, balance=500), clock), CardAt(demo_card(46, balance=0), clock)
    req1 = one.initialize(KIOSK, 1_000)
    auth1 = authorize(host, req1)
    req2 = two.initialize(KIOSK, 2_000)
    auth2 = authorize(host, req2)
    # expired: answered at the card, posted after the challenge's expiry
    evidence = one.answer(host.void_challenge(auth1.reference))
    with gateway.db.tx() as cur:
        cur.execute("UPDATE load_void_challenges SET expires_at = 0")
    assert "expired" in refused(
        lambda: host.void(auth1.reference, evidence), 409, "challenge_expired"
    )
    # another card's answer to this load's challenge
    foreign = two.answer(host.void_challenge(auth1.reference))
    reason = refused(lambda: host.void(auth1.reference, foreign), 422, "not_proven")
    assert f"from card {req2.card_serial.hex().upper()}" in reason
    # another load's challenge, answered by this load's card
    live1 = host.void_challenge(auth1.reference)
    crossed = one.answer(host.void_challenge(auth2.reference))
    assert "not fresh" in refused(
        lambda: host.void(auth1.reference, crossed), 422, "stale_evidence"
    )
    assert "from card" in refused(lambda: host.void(auth2.reference, crossed), 422, "not_proven")
    # used twice: the honest void goes through once; its challenge voids nothing more
    good = one.answer(live1)
    assert host.void(auth1.reference, good)["state"] == "void"
    assert host.void(auth1.reference, good)["state"] == "void"  # a retry, same answer
    again = one.answer(live1)
    assert "already void" in refused(lambda: host.void(auth1.reference, again), 409, "load_void")
    assert "challenge" in refused(lambda: host.void_challenge(auth1.reference), 409, "load_void")
    # the next load at the same counter cannot be voided with the used challenge's answers
    req3 = one.initialize(KIOSK, 1_000)
    auth3 = authorize(host, req3)
    assert req3.online_atc == req1.online_atc
    refused(lambda: host.void(auth3.reference, good), 409, "no_challenge")
    host.void_challenge(auth3.reference)
    refused(lambda: host.void(auth3.reference, good), 422, "stale_evidence")
    one.credit(req3, auth3)
    assert one.card.balance == 1_500 and two.card.balance == 0
    assert load_state(gateway, auth3.reference) == ("authorized", 0)
    assert load_state(gateway, auth2.reference) == ("authorized", 0)


def torn_top_up(
    clients: Callable[[str], GatewayClient], clock: Any, tmp_path: Path, card: Any, when: str
) -> tuple[HttpLoadHost, Kiosk, dict[str, Any]]:
    """A kiosk's ¥10 top-up of ``card`` torn at CREDIT FOR LOAD (``when``: BEFORE or AFTER
    the card credits), the card back on the reader: the host, the kiosk, the pending load."""
    host = HttpLoadHost(clients(KIOSK), sleep=lambda s: None)
    reader = SimReader(card)
    journal = Journal(tmp_path / "kiosk.db")
    kiosk = Kiosk(TerminalSession(reader, clock=clock), host, bytes.fromhex(KIOSK), journal=journal)
    reader.tear_at_ins(CREDIT, when)
    with pytest.raises(LoadInterrupted):
        kiosk.top_up(1_000)
    (pending,) = host.pending()
    reader.tear_when(None)
    reader.insert(card)
    return host, kiosk, pending


def test_card_pulled_before_credit_is_voided_with_a_challenge_and_topped_up_once(
    gateway, clients, clearing, clock, tmp_path
):
    card = demo_card(47, balance=500)
    _, kiosk, first = torn_top_up(clients, clock, tmp_path, card, BEFORE)
    # the gateway refuses the retry (load_pending); the kiosk settles its own load with a
    # void challenge answered by the card, then tops up
    done = kiosk.top_up(1_000)
    assert card.balance == 1_500 and done.result.balance_after == 1_500
    assert load_state(gateway, first["reference"]) == ("void", 0)
    assert load_state(gateway, done.result.authorization.reference) == ("confirmed", 1)
    Forwarder(gateway.db, clearing.url).drain()
    totals = clearing.settlement()["totals"]
    assert (totals["loads"], totals["load_amount"]) == (1, 1_000)


def test_card_pulled_after_credit_is_proved_and_cannot_be_voided(gateway, clients, clock, tmp_path):
    card = demo_card(48, balance=500)
    host, _, pending = torn_top_up(clients, clock, tmp_path, card, AFTER)
    assert card.balance == 1_500
    at = CardAt(card, clock)
    evidence = at.answer(host.void_challenge(pending["reference"]))
    reason = refused(lambda: host.void(pending["reference"], evidence), 422, "not_proven")
    assert "GET TRANSACTION PROVE" in reason
    assert resolve_load(at.session, host, pending) == "confirmed"
    assert load_state(gateway, pending["reference"]) == ("confirmed", 1)
    assert card.balance == 1_500


# -- subsidy pickups ----------------------------------------------------------------------
def approved_line(centre: Centre, amount: int) -> tuple[int, int]:
    r = centre.records[0]
    doc = import_roster(
        centre.gw,
        roster(f"{holder_row(r)},H18,{amount},2026-10"),
    )
    rid = int(doc["roster"]["id"])
    approve_roster(centre.gw, rid)
    return rid, line_statuses(centre.gw, rid)[0]["line_id"]


def line_statuses(gw: Any, rid: int) -> list[dict[str, Any]]:
    r = admin(gw, "GET", "/v1/admin/subsidies/report", params={"roster_id": rid})
    assert r.status_code == 200, r.text
    return list(r.json()["lines"])


def paid_once(gw: Any, rid: int, amount: int) -> None:
    (line,) = line_statuses(gw, rid)
    assert (line["status"], line["amount_fen"]) == ("paid", amount)
    with gw.db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM loads WHERE state = 'confirmed'")
        assert cur.fetchone()[0] == 1


def test_a_second_initialize_does_not_supersede_a_pickup(gateway, centre, clock):
    rid, line_id = approved_line(centre, 20_000)
    card = card_for(centre.records[0], balance=0)
    subsidies = HttpSubsidyHost(centre._client(KIOSK_A, "kiosk"), sleep=lambda s: None)
    at = CardAt(card, clock)
    kept = at.initialize(KIOSK_A, 20_000)
    req_b = at.initialize(KIOSK_A, 20_000)
    auth_b = subsidies.paying([line_id], answer(0)).authorize_load(req_b)
    with pytest.raises(LoadPending) as caught:
        subsidies.paying([line_id], answer(0)).authorize_load(kept)
    assert f"has load {auth_b.reference}" in caught.value.reason
    assert load_state(gateway, auth_b.reference) == ("authorized", 0)
    assert line_statuses(gateway, rid)[0]["status"] == "held"
    tac = at.credit(req_b, auth_b)
    subsidies.confirm_load(req_b, auth_b, tac)
    assert card.balance == 20_000 and gateway.count("loads") == 1
    paid_once(gateway, rid, 20_000)
    kiosk, _ = centre.kiosk(KIOSK_B, card=card)
    assert kiosk.pick_up(answer(0)).paid == [] and card.balance == 20_000


def test_another_kiosk_cannot_void_a_held_pickup(gateway, centre, clock):
    rid, line_id = approved_line(centre, 20_000)
    card = card_for(centre.records[0], balance=0)
    owner = HttpSubsidyHost(centre._client(KIOSK_A, "kiosk"), sleep=lambda s: None)
    kiosk_b, _ = centre.kiosk(KIOSK_B, card=card)
    thief = kiosk_b.subsidies
    assert isinstance(thief, HttpSubsidyHost)
    other_client = thief.client
    at = CardAt(card, clock)
    req = at.initialize(KIOSK_A, 20_000)
    auth = owner.paying([line_id], answer(0)).authorize_load(req)
    reason = refused(lambda: thief.void(auth.reference, req), 403, "not_owner")
    assert f"held by kiosk {KIOSK_A}" in reason
    assert "only that kiosk can void" in refused(
        lambda: thief.void_challenge(auth.reference), 403, "not_owner"
    )
    refused(
        lambda: other_client.request(
            "POST", f"/v1/loads/{auth.reference}/void", json={"evidence": request_json(req)}
        ),
        404,
        "unknown_load",
    )
    assert line_statuses(gateway, rid)[0]["status"] == "held"
    tac = at.credit(req, auth)
    owner.confirm_load(req, auth, tac)
    assert card.balance == 20_000
    paid_once(gateway, rid, 20_000)
    assert kiosk_b.pick_up(answer(0)).paid == [] and card.balance == 20_000
    paid_once(gateway, rid, 20_000)


def test_card_pulled_before_credit_pickup_is_voided_and_paid_once(gateway, centre, clearing, clock):
    rid, _ = approved_line(centre, 20_000)
    card = card_for(centre.records[0], balance=500)
    kiosk, reader = centre.kiosk(KIOSK_A, card=card)
    reader.tear_at_ins(CREDIT, BEFORE)
    with pytest.raises(LoadInterrupted):
        kiosk.pick_up(answer(0))
    assert line_statuses(gateway, rid)[0]["status"] == "held" and card.balance == 500
    # at another kiosk the card cannot void it: the line stays held, nothing is paid
    elsewhere, _ = centre.kiosk(KIOSK_B, card=card)
    away = elsewhere.pick_up(answer(0))
    assert away.paid == [] and len(away.unresolved) == 1 and card.balance == 500
    assert "bring the card back to the kiosk that started it" in away.message()
    reader.tear_when(None)
    reader.insert(card)
    back = kiosk.pick_up(answer(0))
    assert [outcome for _, outcome in back.settled] == ["void"]
    assert back.paid_fen == 20_000 and card.balance == 20_500
    paid_once(gateway, rid, 20_000)
    assert elsewhere.pick_up(answer(0)).paid == [] and card.balance == 20_500
    Forwarder(gateway.db, clearing.url).drain()
    totals = clearing.settlement()["totals"]
    assert (totals["loads"], totals["load_amount"]) == (1, 20_000)


def test_a_pickup_behind_the_kiosks_own_torn_top_up_settles_it_then_pays_once(
    gateway, centre, clock
):
    rid, _ = approved_line(centre, 20_000)
    card = card_for(centre.records[0], balance=500)
    kiosk, reader = centre.kiosk(KIOSK_A, card=card)
    reader.tear_at_ins(CREDIT, BEFORE)
    with pytest.raises(LoadInterrupted):
        kiosk.top_up(1_000)
    (top_up,) = kiosk.host.pending()  # type: ignore[attr-defined]
    reader.tear_when(None)
    reader.insert(card)
    # the pickup's load is refused (load_pending: the top-up holds the counter); the kiosk
    # voids its own top-up with the card and picks up once more
    done = kiosk.pick_up(answer(0))
    assert done.paid_fen == 20_000 and card.balance == 20_500
    assert load_state(gateway, top_up["reference"]) == ("void", 0)
    paid_once(gateway, rid, 20_000)


def test_a_top_up_cannot_pass_itself_off_as_a_subsidy_pickup(gateway, clients, clock):
    """A kiosk labels a cash top-up ``subsidy:1`` on ``/v1/loads``: the gateway stored the
    label, and the funds report, which keeps subsidy money out of the top-ups, left the
    1,000 fen the kiosk took in cash out of the top-ups (and line 1 looked paid to anyone
    reading the load). The subsidy label is the pickup's alone: refused, nothing stored."""
    client = clients(KIOSK)
    at = CardAt(demo_card(45, balance=500), clock)
    req = at.initialize(KIOSK, 1_000)
    forged = request_json(req, purpose="subsidy:1")
    reason = refused(lambda: client.request("POST", "/v1/loads", json=forged), 422, "reserved")
    assert "'subsidy:' is the label of a subsidy pickup" in reason and "/v1/subsidies" in reason
    assert gateway.count("loads") == 0 and gateway.count("outbox") == 0
    # the same card's honest top-up is authorised, credited and counted as a top-up
    host = HttpLoadHost(client, sleep=lambda s: None)
    auth = authorize(host, req)
    host.confirm_load(req, auth, at.credit(req, auth))
    assert at.card.balance == 1_500 and load_state(gateway, auth.reference) == ("confirmed", 1)
    funds = admin(gateway, "GET", "/v1/admin/subsidies/funds").json()
    assert funds["top_ups"] == {"loads": 1, "amount_fen": 1_000}


def test_a_card_of_another_issuer_with_the_same_serial_leaves_a_torn_load_alone(
    gateway, clients, clearing, clock, tmp_path
):
    """Card A's top-up is torn before CREDIT (its load row stays open). Card B of another
    issuer carries the same 8-byte serial: the kiosk must not take A's open load for B's
    (the gateway's load names A's issuer), so B tops up as itself; A's load is voided at
    A's own next visit and A is topped up once."""
    from simulators.profiles import (
        DEMO_ISSUERS,
        CardProfile,
        demo_card_number,
        demo_keyset,
        issue_card,
    )

    a = demo_card(48, balance=500)
    beijing = DEMO_ISSUERS["beijing"]
    b = issue_card(
        CardProfile(
            card_number=demo_card_number(DEMO_ISSUERS["shanghai"], 48),
            issuer_id=beijing,
            balance=500,
        ),
        demo_keyset(beijing),
    )
    assert a.serial == b.serial and a.issuer_id != b.issuer_id
    _, kiosk, first = torn_top_up(clients, clock, tmp_path, a, BEFORE)
    kiosk.session.card_reader.insert(b)
    done = kiosk.top_up(1_000)
    assert b.balance == 1_500 and done.credit.recovered == ()
    (open_row,) = kiosk.journal.open_loads()
    assert open_row.reference == first["reference"]
    assert load_state(gateway, first["reference"]) == ("authorized", 0)
    kiosk.session.card_reader.insert(a)
    again = kiosk.top_up(1_000)
    assert a.balance == 1_500 and b.balance == 1_500
    assert load_state(gateway, first["reference"]) == ("void", 0)
    assert load_state(gateway, again.result.authorization.reference) == ("confirmed", 1)
    assert kiosk.journal.open_loads() == []
