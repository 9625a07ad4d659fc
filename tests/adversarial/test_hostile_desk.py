"""A hostile issuance desk (or a desk's token in the wrong hands) against the card numbering.

Each attack is refused with its code and a reason, and nothing is stored: no card, no
revision, no claim, no block."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from gateway.registry import SqliteCardRegistry
from terminal.roles.registry import Applicant, NotThisDesk, NumberBlock, card_number_for
from terminal.uplink import GatewayClient
from terminal.uplink.issuance import push_issuance
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
