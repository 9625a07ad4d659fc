"""A hostile issuance desk (or a desk's token in the wrong hands) against the card numbering
and the carried balance of a replacement.

Each attack is refused with its code and a reason, and nothing is stored: no card, no
revision, no claim, no block, no load (and no money on the card)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.cards import CarryRules
from gateway.registry import SqliteCardRegistry
from simulators.profiles import CardProfile, demo_keyset, issue_card
from terminal.epurse import flows
from terminal.epurse.model import LoadAuthorization, LoadRequest
from terminal.readers.sim import SimReader
from terminal.roles.issuance import CARRY_PURPOSE
from terminal.roles.load_host import HttpLoadHost, request_json, resolve_load
from terminal.roles.registry import Applicant, NotThisDesk, NumberBlock, card_number_for
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient
from terminal.uplink.issuance import push_issuance
from tests.gateway_fixtures import ADMIN_TOKEN, race_held, start_gateway
from tests.issuance_kit import SHANGHAI, VALID_ID, leased
from tests.subsidy_kit import id_number

DESK_A, DESK_B = "310000000080", "310000000081"
ZHANG = Applicant("张三", VALID_ID)
LI = Applicant("李四", "110101199003074514")
RACED = 15  # other cards per push slot: enough for two pushes' transactions to overlap


def post(gw: Any, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {token}"})


def counts(gw: Any) -> tuple[int, ...]:
    return tuple(gw.count(t) for t in ("cards", "card_revisions", "card_claims", "number_blocks"))


@pytest.fixture
def tokens(gateway: Any) -> dict[str, str]:
    return {d: gateway.register(d, "card-centre", role="issuance") for d in (DESK_A, DESK_B)}


def book(*blocks: NumberBlock) -> SqliteCardRegistry:
    reg = SqliteCardRegistry()
    for block in blocks:
        reg.hold(block)
    return reg


def active(reg: SqliteCardRegistry, who: Applicant, chip: int) -> list[dict[str, Any]]:
    number = reg.begin_issue(SHANGHAI, who, chip.to_bytes(8, "big")).card_number
    reg.activate(number)
    return [r for r in reg.export() if r["card_number"] == number]


def test_a_card_number_outside_the_desks_lease_is_refused(gateway, tokens) -> None:  # type: ignore[no-untyped-def]
    """Desk B numbers a card itself, then takes one from desk A's block: both refused."""
    a_block = leased(gateway, DESK_A, 10)
    own = book(NumberBlock(99, SHANGHAI, DESK_B, 77_000_001, 77_000_010))  # never leased
    stolen = book(NumberBlock(a_block.block_id, SHANGHAI, DESK_B, a_block.first, a_block.last))
    before = counts(gateway)
    for reg in (own, stolen):
        records = active(reg, ZHANG, 1)
        r = post(gateway, tokens[DESK_B], "/v1/issuance/records", {"records": records})
        assert r.status_code == 200, r.text
        (answer,) = r.json()["answers"]
        assert (answer["status"], answer["code"]) == ("conflict", "outside_lease")
        assert "leased to" in answer["reason"] and DESK_B in answer["reason"]
        claim = {
            "card_number": records[0]["card_number"],
            "issuer_id": SHANGHAI.hex(),
            "id_number": VALID_ID,
            "card_kind": 1,
        }
        r = post(gateway, tokens[DESK_B], "/v1/numbers/claims", claim)
        assert (r.status_code, r.json()["error"]) == (403, "outside_lease"), r.text
    assert counts(gateway) == before


def test_a_number_already_used_is_refused(gateway, tokens) -> None:  # type: ignore[no-untyped-def]
    """Desk A claims a number for 张三, then pushes it (and claims it) for 李四."""
    block = leased(gateway, DESK_A, 10)
    number = card_number_for(SHANGHAI, block.first)
    claim = {"card_number": number, "issuer_id": SHANGHAI.hex(), "card_kind": 1}
    r = post(gateway, tokens[DESK_A], "/v1/numbers/claims", {**claim, "id_number": VALID_ID})
    assert r.status_code == 200, r.text
    before = counts(gateway)
    r = post(gateway, tokens[DESK_A], "/v1/numbers/claims", {**claim, "id_number": LI.id_number})
    assert (r.status_code, r.json()["error"]) == (409, "number_used"), r.text
    assert number in r.json()["reason"]
    records = active(book(block), LI, 2)  # the book's first number, now for 李四
    assert records[0]["card_number"] == number
    r = post(gateway, tokens[DESK_A], "/v1/issuance/records", {"records": records})
    (answer,) = r.json()["answers"]
    assert (answer["status"], answer["code"]) == ("conflict", "number_used")
    assert "another holder" in answer["reason"]
    assert counts(gateway) == before


def test_a_second_live_card_for_a_person_is_refused(gateway, tokens) -> None:  # type: ignore[no-untyped-def]
    """张三 holds an active card from desk A; desk B pushes (and claims) another for him."""
    a = book(leased(gateway, DESK_A, 10))
    first = active(a, ZHANG, 1)
    r = post(gateway, tokens[DESK_A], "/v1/issuance/records", {"records": first})
    assert r.json()["counts"] == {"stored": 1}, r.text
    b_block = leased(gateway, DESK_B, 10)
    before = counts(gateway)
    second = active(book(b_block), ZHANG, 2)
    r = post(gateway, tokens[DESK_B], "/v1/issuance/records", {"records": second})
    (answer,) = r.json()["answers"]
    assert (answer["status"], answer["code"]) == ("conflict", "same_person")
    assert f"already holds live card {first[0]['card_number']}" in answer["reason"]
    claim = {
        "card_number": card_number_for(SHANGHAI, b_block.first + 1),
        "issuer_id": SHANGHAI.hex(),
        "id_number": VALID_ID.lower(),
        "card_kind": 1,
    }
    r = post(gateway, tokens[DESK_B], "/v1/numbers/claims", claim)
    assert (r.status_code, r.json()["error"]) == (409, "same_person"), r.text
    assert "one person, one card" in r.json()["reason"]
    assert counts(gateway) == before


def test_leasing_or_pushing_with_another_desks_identity_is_refused(gateway, tokens) -> None:  # type: ignore[no-untyped-def]
    """Desk B's token asks for a block for desk A, and pushes desk A's book."""
    body = {"issuer_id": SHANGHAI.hex(), "count": 10, "desk_id": DESK_A}
    r = post(gateway, tokens[DESK_B], "/v1/numbers/blocks", body)
    assert (r.status_code, r.json()["error"]) == (403, "not_this_desk"), r.text
    assert f"the token is desk {DESK_B}'s" in r.json()["reason"]
    assert counts(gateway) == (0, 0, 0, 0)
    a = book(leased(gateway, DESK_A, 10))
    records = active(a, ZHANG, 1)
    r = post(
        gateway, tokens[DESK_B], "/v1/issuance/records", {"records": records, "desk_id": DESK_A}
    )
    assert (r.status_code, r.json()["error"]) == (403, "not_this_desk"), r.text
    wrong = GatewayClient(gateway.url, tokens[DESK_B])  # the desk's own check, before sending
    with wrong, pytest.raises(NotThisDesk, match=f"push with desk {DESK_A}'s token"):
        push_issuance(wrong, a.export, desk_id=a.desk_id)
    assert counts(gateway) == (0, 0, 0, 1)


def test_two_desks_pushing_a_card_for_one_person_at_once_get_the_rules_answer(
    gateway, tokens
) -> None:  # type: ignore[no-untyped-def]
    """Desks A and B push a live card for 张三 at the same moment, among other people's
    cards: A's push names him first, B's last, so B checks him while A has not committed.
    One card is stored; the other push is answered by the rule (``same_person``, naming the
    card he holds), not by a storage race, and every other card of both pushes is stored."""
    others = [Applicant(f"市民{n}", id_number(n)) for n in range(1, 3 * RACED + 1)]
    a, b = book(leased(gateway, DESK_A, 3 * RACED)), book(leased(gateway, DESK_B, 3 * RACED))
    pushes = {
        DESK_A: [
            r for i, who in enumerate([ZHANG, *others[: 2 * RACED]]) for r in active(a, who, i)
        ],
        DESK_B: [
            r for i, who in enumerate([*others[2 * RACED :], ZHANG], 100) for r in active(b, who, i)
        ],
    }
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def push(desk: str) -> None:
        start.wait()
        answers[desk] = post(
            gateway, tokens[desk], "/v1/issuance/records", {"records": pushes[desk]}
        )

    threads = [threading.Thread(target=push, args=(desk,)) for desk in pushes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [answers[d].status_code for d in pushes] == [200, 200], {
        d: r.text[:300] for d, r in answers.items()
    }
    his = {
        d: next(
            x
            for x in r.json()["answers"]
            if x["card_number"] == pushes[d][0 if d == DESK_A else -1]["card_number"]
        )
        for d, r in answers.items()
    }
    assert sorted(x["status"] for x in his.values()) == ["conflict", "stored"], his
    (refused,) = (x for x in his.values() if x["status"] == "conflict")
    (kept,) = (x for x in his.values() if x["status"] == "stored")
    assert refused["code"] == "same_person", refused
    assert f"already holds live card {kept['card_number']}" in refused["reason"]
    stored = sum(r.json()["counts"].get("stored", 0) for r in answers.values())
    assert stored == len(others) + 1
    assert (gateway.count("cards"), gateway.count("card_claims")) == (stored, stored)
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM card_claims WHERE id_number = ? AND live = 1", (VALID_ID,)
        )
        assert cur.fetchone()[0] == 1


# -- the card centre releasing a stale claim (a desk that claimed and went away) ----------------
STALE = "/v1/admin/numbers/claims/stale"
WHY = {"actor": "王主任", "reason": "desk 310000000080 burnt out before writing the card"}


def release(gw: Any, number: str, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"X-Admin-Token": ADMIN_TOKEN} if headers is None else headers
    return httpx.post(
        f"{gw.url}/v1/admin/numbers/claims/{number}/release", json=WHY, headers=headers
    )


def live_claims(gw: Any, id_number: str) -> list[tuple[str, str]]:
    with gw.db.tx() as cur:
        cur.execute(
            "SELECT card_number, desk_id FROM card_claims WHERE id_number = ? AND live = 1",
            (id_number,),
        )
        return [tuple(r) for r in cur.fetchall()]


@pytest.fixture
def no_wait(db: Any, clock: Any) -> Any:
    """A card centre that may release a claim as soon as it is made (age 0)."""
    gw = start_gateway(db, clock, stale_claim_ms=0)
    yield gw
    gw.server.stop()


def claim_for(gw: Any, token: str, number: str, who: Applicant = ZHANG) -> httpx.Response:
    body = {"card_number": number, "issuer_id": SHANGHAI.hex(), "id_number": who.id_number,
            "card_kind": 1}  # fmt: skip
    return post(gw, token, "/v1/numbers/claims", body)


def test_releasing_a_claim_whose_card_was_pushed_is_refused(no_wait) -> None:  # type: ignore[no-untyped-def]
    """Desk A claimed 张三's number and pushed his card: the claim is a card's, not stale."""
    token = no_wait.register(DESK_A, "card-centre", role="issuance")
    a = book(leased(no_wait, DESK_A, 10))
    records = active(a, ZHANG, 1)
    number = records[0]["card_number"]
    assert claim_for(no_wait, token, number).status_code == 200
    r = post(no_wait, token, "/v1/issuance/records", {"records": records})
    assert r.json()["counts"] == {"stored": 1}, r.text
    stale = httpx.get(no_wait.url + STALE, headers={"X-Admin-Token": ADMIN_TOKEN})
    assert stale.json()["claims"] == []
    before = counts(no_wait)
    r = release(no_wait, number)
    assert (r.status_code, r.json()["error"]) == (409, "card_pushed"), r.text
    assert f"card {number} was pushed by desk {DESK_A}" in r.json()["reason"]
    assert counts(no_wait) == before
    assert no_wait.count("card_claim_releases") == 0
    assert live_claims(no_wait, VALID_ID) == [(number, DESK_A)]


def test_releasing_a_claim_needs_the_admin_token_and_the_age(gateway, tokens) -> None:  # type: ignore[no-untyped-def]
    """A desk (its own token, none, a wrong one) releases its rival's claim on 张三 to issue
    him itself; the card centre, before the configured age, is refused too."""
    number = card_number_for(SHANGHAI, leased(gateway, DESK_A, 10).first)
    assert claim_for(gateway, tokens[DESK_A], number).status_code == 200
    for headers in ({}, {"Authorization": f"Bearer {tokens[DESK_B]}"}, {"X-Admin-Token": "x"}):
        r = release(gateway, number, headers)
        assert (r.status_code, r.json()["error"]) == (401, "unauthenticated"), r.text
        assert "admin token" in r.json()["reason"]
    r = httpx.get(gateway.url + STALE, headers={"Authorization": f"Bearer {tokens[DESK_B]}"})
    assert r.status_code == 401
    r = release(gateway, number)
    assert (r.status_code, r.json()["error"]) == (409, "claim_too_young"), r.text
    assert "released only after 1440 minute(s)" in r.json()["reason"]
    assert gateway.count("card_claim_releases") == 0
    assert live_claims(gateway, VALID_ID) == [(number, DESK_A)]
    r = claim_for(gateway, tokens[DESK_B], card_number_for(SHANGHAI, leased(gateway, DESK_B).first))
    assert (r.status_code, r.json()["error"]) == (409, "same_person")


def test_after_a_release_the_holder_is_issued_once(no_wait) -> None:  # type: ignore[no-untyped-def]
    """Desk A claims 张三's number and dies; once the card centre releases the claim, desk B
    issues him a card, but not a second one, and desk A, back, can neither claim its number
    again nor push the card it wrote after all."""
    tokens = {d: no_wait.register(d, "card-centre", role="issuance") for d in (DESK_A, DESK_B)}
    a = book(leased(no_wait, DESK_A, 10))
    b_block = leased(no_wait, DESK_B, 10)
    late = active(a, ZHANG, 1)  # desk A wrote the card, then died before pushing it
    old = late[0]["card_number"]
    assert claim_for(no_wait, tokens[DESK_A], old).status_code == 200
    first, second = (card_number_for(SHANGHAI, b_block.first + i) for i in (0, 1))
    r = claim_for(no_wait, tokens[DESK_B], first)
    assert (r.status_code, r.json()["error"]) == (409, "same_person")
    stale = httpx.get(no_wait.url + STALE, headers={"X-Admin-Token": ADMIN_TOKEN}).json()
    assert [(c["card_number"], c["desk_id"]) for c in stale["claims"]] == [(old, DESK_A)]
    assert VALID_ID not in str(stale)  # the ID number is masked
    r = release(no_wait, old)
    assert r.status_code == 200, r.text
    assert release(no_wait, old).json()["error"] == "claim_released"
    trail = httpx.get(
        no_wait.url + "/v1/admin/numbers/releases", headers={"X-Admin-Token": ADMIN_TOKEN}
    ).json()["releases"]
    assert [(x["card_number"], x["actor"], x["reason"]) for x in trail] == [
        (old, WHY["actor"], WHY["reason"])
    ]
    assert claim_for(no_wait, tokens[DESK_B], first).status_code == 200
    r = claim_for(no_wait, tokens[DESK_B], second)
    assert (r.status_code, r.json()["error"]) == (409, "same_person"), r.text
    r = claim_for(no_wait, tokens[DESK_A], old)
    assert (r.status_code, r.json()["error"]) == (409, "claim_released"), r.text
    assert "claim the next number" in r.json()["reason"]
    r = post(no_wait, tokens[DESK_A], "/v1/issuance/records", {"records": late})
    (answer,) = r.json()["answers"]
    assert (answer["status"], answer["code"]) == ("conflict", "same_person"), answer
    assert f"already holds live card {first}" in answer["reason"]
    assert no_wait.count("cards") == 0
    assert live_claims(no_wait, VALID_ID) == [(first, DESK_B)]
    assert no_wait.count("card_claim_releases") == 1


# -- the carried balance (补卡 carry-over): a desk's only load -------------------------------------
KIOSK = "310000000090"
CARRIED = 5_000  # what the kiosk loaded onto the lost card: the balance the gateway proves


@dataclass
class CarryScene:
    """张三's card of desk A, topped up at a kiosk, lost and hotlisted at the gateway; desk A
    has claimed his replacement's number (``replacement``) at the card centre."""

    gw: Any
    clock: Any
    tokens: dict[str, str]
    kiosk: str
    lost: str
    replacement: str
    block: NumberBlock

    def ask(self, token: str, request: LoadRequest, purpose: str = "") -> httpx.Response:
        return post(self.gw, token, "/v1/loads", request_json(request, purpose))

    def initialize(self, card: Any, terminal: str, amount: int) -> tuple[TerminalSession, Any]:
        session = TerminalSession(SimReader(card), clock=self.clock)
        session.card_reader.connect()
        info = session.run(flows.select())
        when = self.clock()
        return session, session.run(flows.prepare_load(info, bytes.fromhex(terminal), amount, when))

    def credit(self, token: str, card: Any, terminal: str, amount: int, purpose: str) -> Any:
        """INITIALIZE, MAC2 from the gateway, CREDIT, confirmed: the gateway's load."""
        session, request = self.initialize(card, terminal, amount)
        r = self.ask(token, request, purpose)
        assert r.status_code == 200, r.text
        doc = r.json()
        auth = LoadAuthorization(
            bytes.fromhex(doc["mac2"]), datetime.fromisoformat(doc["host_time"]), doc["reference"]
        )
        result = session.run(flows.complete_load(request, auth))
        ok = post(
            self.gw, token, f"/v1/loads/{doc['reference']}/confirm", {"tac": result.tac.hex()}
        )
        assert ok.status_code == 200, ok.text
        return doc

    def card(self, number: str) -> Any:
        return issue_card(
            CardProfile(card_number=number, issuer_id=SHANGHAI), demo_keyset(SHANGHAI)
        )


@pytest.fixture
def carry(db: Any, clock: Any) -> Any:
    gw = start_gateway(db, clock, carry=CarryRules(settling=timedelta(0)))
    tokens = {d: gw.register(d, "card-centre", role="issuance") for d in (DESK_A, DESK_B)}
    block = leased(gw, DESK_A, 10)
    reg = book(block)
    records = active(reg, ZHANG, 1)
    assert post(gw, tokens[DESK_A], "/v1/issuance/records", {"records": records}).status_code == 200
    lost = records[0]["card_number"]
    scene = CarryScene(
        gw,
        clock,
        tokens,
        gw.register(KIOSK, "card-centre", role="kiosk"),
        lost,
        card_number_for(SHANGHAI, block.first + 1),
        block,
    )
    scene.credit(scene.kiosk, scene.card(lost), KIOSK, CARRIED, "")
    reg.report_lost(lost)
    r = post(gw, tokens[DESK_A], "/v1/issuance/records", {"records": reg.export()})
    assert r.json()["counts"] == {"stored": 1}, r.text
    claim = {"card_number": scene.replacement, "issuer_id": SHANGHAI.hex(),
             "id_number": VALID_ID, "card_kind": 1, "replaces": lost}  # fmt: skip
    assert post(gw, tokens[DESK_A], "/v1/numbers/claims", claim).status_code == 200
    proven = httpx.get(f"{gw.url}/v1/cards/{lost}/balance", headers=bearer(tokens[DESK_A]))
    assert proven.json()["balance_fen"] == CARRIED, proven.text
    yield scene
    gw.server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(r: httpx.Response, status: int, code: str, *words: str) -> None:
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert "mac2" not in r.json()
    for word in words:
        assert word in r.json()["reason"], r.text


def test_a_desk_load_that_is_not_a_carry_is_refused(carry: CarryScene) -> None:
    """Desk A's token tops up a card (the replacement, or any card) as a kiosk would: a desk
    loads nothing but a carried balance, so no MAC2, no load."""
    card = carry.card(carry.replacement)
    for purpose in ("", "cash top-up at the card centre"):
        _, request = carry.initialize(card, DESK_A, 50_000)
        refused(carry.ask(carry.tokens[DESK_A], request, purpose), 403, "carry_only",
                "issuance desk", "a top-up is a kiosk's")  # fmt: skip
    assert carry.gw.count("loads") == 1  # the kiosk's top-up of the lost card only
    assert card.balance == 0


def test_a_carry_that_is_not_the_proven_balance_of_a_claimed_replacement_is_refused(
    carry: CarryScene,
) -> None:
    """Desk A carries more than the lost card held; carries onto a card that replaces nothing;
    desk B carries onto desk A's replacement: each refused, no load stored, no money moved."""
    card = carry.card(carry.replacement)
    _, request = carry.initialize(card, DESK_A, CARRIED * 10)
    refused(carry.ask(carry.tokens[DESK_A], request, CARRY_PURPOSE), 422, "carry_amount",
            f"proves for it, {CARRIED} fen, not {CARRIED * 10} fen")  # fmt: skip
    stranger = carry.card(card_number_for(SHANGHAI, carry.block.first + 2))  # never claimed
    _, request = carry.initialize(stranger, DESK_A, CARRIED)
    refused(carry.ask(carry.tokens[DESK_A], request, CARRY_PURPOSE), 403, "not_a_replacement",
            "not claimed at the card centre as the replacement")  # fmt: skip
    _, request = carry.initialize(card, DESK_B, CARRIED)
    refused(carry.ask(carry.tokens[DESK_B], request, CARRY_PURPOSE), 403, "other_desk",
            f"claimed by desk {DESK_A}")  # fmt: skip
    assert carry.gw.count("loads") == 1
    assert (card.balance, stranger.balance) == (0, 0)


def test_a_carry_is_loaded_once_and_a_void_one_again(carry: CarryScene) -> None:
    """The desk carries the balance; a retry of that request gets the same MAC2; once the card
    credited, a second carry is refused. A carry the card proved it never credited (void)
    may be loaded again, once."""
    desk = carry.tokens[DESK_A]
    card = carry.card(carry.replacement)
    session, first = carry.initialize(card, DESK_A, CARRIED)
    a = carry.ask(desk, first, CARRY_PURPOSE)
    assert a.status_code == 200, a.text
    again = carry.ask(desk, first, CARRY_PURPOSE)
    assert (again.json()["reference"], again.json()["mac2"]) == (
        a.json()["reference"],
        a.json()["mac2"],
    )
    with GatewayClient(carry.gw.url, desk) as client:
        host = HttpLoadHost(client, sleep=lambda s: None)
        (pending,) = host.pending()
        assert resolve_load(session, host, pending) == "void"
    carry.credit(desk, card, DESK_A, CARRIED, CARRY_PURPOSE)
    assert card.balance == CARRIED
    _, twice = carry.initialize(card, DESK_A, CARRIED)
    refused(carry.ask(desk, twice, CARRY_PURPOSE), 409, "carried_already",
            f"lost card {carry.lost} is carried by load")  # fmt: skip
    assert card.balance == CARRIED
    with carry.gw.db.tx() as cur:
        cur.execute("SELECT amount, state FROM loads WHERE terminal_id = ? ORDER BY id", (DESK_A,))
        assert cur.fetchall() == [(CARRIED, "void"), (CARRIED, "confirmed")]


def test_a_kiosk_labelling_a_top_up_as_a_carry_is_refused(carry: CarryScene) -> None:
    """A kiosk tops up the replacement with the carry's label: refused as a ``subsidy:`` label
    is, so no kiosk load ever reads as a replacement's carried balance."""
    card = carry.card(carry.replacement)
    _, request = carry.initialize(card, KIOSK, CARRIED)
    refused(carry.ask(carry.kiosk, request, CARRY_PURPOSE), 422, "reserved",
            "label of a replacement's carried balance")  # fmt: skip
    assert carry.gw.count("loads") == 1 and card.balance == 0


def test_two_carries_of_one_lost_card_at_once_load_it_once(carry: CarryScene) -> None:
    """Two copies of the replacement's chip at different online counters (so no counter
    index tells the two loads apart) ask for the carry at the same moment (PostgreSQL: both
    held here behind a lock on the lost card's row, where each carry is decided): one MAC2
    only, the other refused naming the carry that won."""
    copies = [carry.card(carry.replacement) for _ in range(2)]
    copies[1].state.online_atc = 7
    requests = [carry.initialize(c, DESK_A, CARRIED)[1] for c in copies]
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def ask(request: LoadRequest) -> None:
        start.wait()
        answers.append(carry.ask(carry.tokens[DESK_A], request, CARRY_PURPOSE))

    threads = [threading.Thread(target=ask, args=(r,)) for r in requests]
    race_held(
        carry.gw,
        threads,
        lambda cur: cur.execute(
            "SELECT 1 FROM cards WHERE card_number = ? FOR UPDATE", (carry.lost,)
        ),
        waiting=2,
        what="the two carries at the card",
    )
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    (lost,) = (r for r in answers if r.status_code == 409)
    refused(lost, 409, "carried_already", f"lost card {carry.lost}")
    with carry.gw.db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM loads WHERE terminal_id = ?", (DESK_A,))
        assert cur.fetchone()[0] == 1
