"""Campus attacks: a cloned card, a replayed authentication answer, a door lying in uploads."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.campus.library import LoanLimits
from gateway.storage import POSTGRES, Database
from simulators.campus import campus_card, clone
from simulators.campus_site import campus_parts
from simulators.epurse_card import SoftEPurseCard
from terminal.campus.canteen import CanteenRefused
from terminal.campus.library import LibraryRefused
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.runtime.assembly import assemble, assemble_library
from terminal.runtime.config import TerminalConfig
from terminal.runtime.library import LibraryService, LibraryTerminal
from terminal.runtime.till import TillService
from terminal.uplink import GatewayClient
from tests.campus_kit import (
    CANTEEN_ID,
    CANTEEN_RULES,
    DOOR_ID,
    LIBRARY_ID,
    LibrarySite,
    Site,
    Till,
    admin,
    allowance_of,
    credit,
    enrol,
)
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer, Rollback, lock_waiters, race_held, start_gateway
from tests.servers import free_port


@pytest.fixture
def site(gateway: GatewayServer, tmp_path: Path) -> Site:
    token = gateway.register(DOOR_ID, "campus", role="door")
    s = Site(tmp_path, FrozenClock(datetime(2026, 11, 30, 8, 30)), gateway.url, token)
    return s


def as_terminal(url: str, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST ``body`` to the gateway's ``path`` with a terminal's token, bypassing its client."""
    return httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {token}"})


def spend(url: str, token: str, sale_seq: int, card_serial: str, amount_fen: int) -> httpx.Response:
    """The canteen's allowance spend for S1's lunch, sent straight to the gateway."""
    body = {
        "terminal_id": CANTEEN_ID,
        "sale_seq": sale_seq,
        "card_serial": card_serial,
        "person_no": "S1",
        "amount_fen": amount_fen,
        "meal": "lunch",
    }
    return as_terminal(url, token, "/v1/campus/allowance/spend", body)


class ReplayingCard:
    """A card that answers INTERNAL AUTHENTICATE with an answer recorded from the real card."""

    def __init__(self, card: SoftEPurseCard, recorded: bytes):
        self.card, self.recorded = card, recorded
        self.atr = card.atr

    def reset(self) -> None:
        self.card.reset()

    def process(self, apdu: bytes) -> bytes:
        if apdu[1] == 0x88:
            return self.recorded + b"\x90\x00"
        return self.card.process(apdu)


def test_a_cloned_uid_card_opens_nothing(site: Site, gateway: GatewayServer) -> None:
    genuine = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", genuine)
    site.sync()
    fake = site.tap(clone(genuine), "east-in")
    assert not fake.granted
    assert "does not hold its campus key" in fake.reason
    assert site.door.counts == {}
    assert site.upload() == 1
    with gateway.db.tx() as cur:
        cur.execute("SELECT result, person_no FROM campus_events")
        assert cur.fetchall() == [("refused", None)]


def test_a_replayed_authentication_answer_is_refused(site: Site, gateway: GatewayServer) -> None:
    genuine = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", genuine)
    site.sync()
    recorded: list[bytes] = []
    original = genuine.process

    def listen(apdu: bytes) -> bytes:
        answer = original(apdu)
        if apdu[1] == 0x88:
            recorded.append(answer[:-2])
        return answer

    genuine.process = listen  # type: ignore[method-assign]
    assert site.tap(genuine, "east-in").granted
    replay = site.tap(ReplayingCard(clone(genuine), recorded[0]), "east-out")  # type: ignore[arg-type]
    assert not replay.granted
    assert "does not hold its campus key" in replay.reason
    assert site.door.counts == {"campus": {"in": 1, "out": 0}}


def test_a_door_cannot_upload_events_for_another_door(site: Site, gateway: GatewayServer) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    site.sync()
    site.tap(card, "east-in")
    events = site.door.journal.pending()
    forged = [{**e, "terminal_id": "310000000999"} for e in events]
    body = {"terminal_id": "310000000999", "events": forged}
    r = as_terminal(gateway.url, site.token, "/v1/campus/events", body)
    assert (r.status_code, r.json()["error"]) == (403, "wrong_terminal")
    assert "uploads only its own events" in r.json()["reason"]
    assert gateway.count("campus_events") == 0


def test_a_replayed_batch_with_changed_content_is_refused(
    site: Site, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    site.sync()
    site.tap(card, "east-in")
    site.tap(card, "east-in")  # refused: anti-passback
    events = site.door.journal.pending()
    assert site.upload() == 2
    rewritten = [{**e, "result": "granted", "reason": "granted"} for e in events]
    body = {"terminal_id": DOOR_ID, "events": rewritten}
    r = as_terminal(gateway.url, site.token, "/v1/campus/events", body)
    assert (r.status_code, r.json()["error"]) == (409, "event_conflict")
    assert "stored with other content" in r.json()["reason"]
    with gateway.db.tx() as cur:
        cur.execute("SELECT result FROM campus_events ORDER BY event_seq")
        assert [row[0] for row in cur.fetchall()] == ["granted", "refused"]


def test_a_validator_token_cannot_upload_door_events(site: Site, gateway: GatewayServer) -> None:
    token = gateway.register("310000000555", "bus-co", role="validator")
    body = {"terminal_id": "310000000555", "events": []}
    r = as_terminal(gateway.url, token, "/v1/campus/events", body)
    assert (r.status_code, r.json()["error"]) == (403, "wrong_role")
    assert gateway.count("campus_events") == 0


# -- the allowance purse (补助) ---------------------------------------------------------------
def _credits(gateway: GatewayServer) -> list[tuple[str, str, int]]:
    with gateway.db.tx() as cur:
        cur.execute("SELECT person_no, month, amount FROM campus_allowance_credits ORDER BY 1")
        return [(r[0], r[1], int(r[2])) for r in cur.fetchall()]


def test_a_second_credit_of_the_same_month_is_refused(gateway: GatewayServer) -> None:
    enrol(gateway.url, "S1", "students", campus_card(1, "S1"))
    assert (
        credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}]).status_code
        == 200
    )
    again = credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_500}], "r2")
    assert again.status_code == 409 and again.json()["error"] == "already_credited"
    assert "credited once a month" in again.json()["reason"]
    resent = credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    assert resent.json() == {"credited": 0, "already_held": 1}
    assert _credits(gateway) == [("S1", "2026-11", 3_000)]
    assert allowance_of(gateway.url, "S1") == 3_000


@pytest.mark.parametrize(
    ("lines", "code", "why"),
    [
        (
            [{"person_no": "S1", "amount_fen": 500}, {"person_no": "X9", "amount_fen": 500}],
            "unknown_person",
            "no person X9",
        ),
        ([{"person_no": "S1", "amount_fen": -500}], "bad_amount", "1..500000"),
        ([{"person_no": "S1", "amount_fen": 99_999_999}], "bad_amount", "1..500000"),
        (
            [{"person_no": "S1", "amount_fen": 500}, {"person_no": "S1", "amount_fen": 500}],
            "bad_roster",
            "listed twice",
        ),
        ([{"person_no": "S1", "amount_fen": 500, "note": "x"}], "bad_roster", "exactly"),
    ],
)
def test_a_hostile_roster_is_refused_whole(
    gateway: GatewayServer, lines: list[dict[str, object]], code: str, why: str
) -> None:
    enrol(gateway.url, "S1", "students", campus_card(1, "S1"))
    r = credit(gateway.url, "2026-11", lines)
    assert r.status_code in (404, 422) and r.json()["error"] == code and why in r.json()["reason"]
    assert _credits(gateway) == [] and allowance_of(gateway.url, "S1") == 0


def test_a_canteen_cannot_spend_the_allowance_of_a_lost_card(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    serial = card.serial.hex().upper()
    assert admin(gateway.url, f"/v1/admin/campus/cards/{serial}/loss", {}).status_code == 200
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    till = Till(tmp_path, FrozenClock(datetime(2026, 11, 30, 12, 0)), gateway.url, token)
    with pytest.raises(CanteenRefused, match=r"allowance refused: .*card_lost.*reported lost"):
        till.sell(card, 1_000, "allowance")  # the till has not synced its hotlist: online says no
    direct = spend(gateway.url, token, 99, serial, 1_000)
    assert direct.status_code == 403 and direct.json()["error"] == "card_lost"
    assert gateway.count("campus_allowance_spends") == 0
    assert (allowance_of(gateway.url, "S1"), card.balance) == (3_000, 5_000)


# -- the library desk -------------------------------------------------------------------------
def _loan(url: str, token: str, **fields: object) -> httpx.Response:
    body = {"terminal_id": LIBRARY_ID, "loan_no": 1, "book": "B-0001", "limit": 2, **fields}
    return as_terminal(url, token, "/v1/campus/library/loans", body)


@pytest.fixture
def library(gateway: GatewayServer, tmp_path: Path) -> LibrarySite:
    token = gateway.register(LIBRARY_ID, "campus", role="library")
    return LibrarySite(tmp_path, FrozenClock(datetime(2026, 11, 30, 15, 0)), gateway.url, token)


def test_a_lost_card_borrows_nothing_even_at_a_desk_not_yet_synced(
    library: LibrarySite, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    library.sync()
    admin(gateway.url, f"/v1/admin/campus/cards/{card.serial.hex().upper()}/loss", {})
    with pytest.raises(LibraryRefused, match=r"403 card_lost.*reported lost: no loans on it"):
        library.borrow(card, "B-0001")  # the desk's lists still allow it: the gateway says no
    assert gateway.count("campus_library_loans") == 0


def test_a_desk_cannot_lend_on_a_card_to_another_person_or_rewrite_a_loan(
    library: LibrarySite, gateway: GatewayServer
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    enrol(gateway.url, "S2", "students", campus_card(2, "S2"))
    serial = card.serial.hex().upper()
    r = _loan(gateway.url, library.token, card_serial=serial, person_no="S2")
    assert (r.status_code, r.json()["error"]) == (403, "wrong_person")
    assert "is not bound to person S2" in r.json()["reason"]
    assert _loan(gateway.url, library.token, card_serial=serial, person_no="S1").json()["held"] == 1
    again = _loan(gateway.url, library.token, card_serial=serial, person_no="S1")
    assert again.json() == {"held": 1, "limit": 2, "duplicate": True}
    rewritten = _loan(gateway.url, library.token, card_serial=serial, person_no="S1", book="B-0002")
    assert (rewritten.status_code, rewritten.json()["error"]) == (409, "loan_conflict")
    assert "recorded with other content" in rewritten.json()["reason"]
    door = gateway.register(DOOR_ID, "campus", role="door")
    r = _loan(gateway.url, door, terminal_id=DOOR_ID, loan_no=2, card_serial=serial, person_no="S1")
    assert (r.status_code, r.json()["error"]) == (403, "wrong_role")
    with gateway.db.tx() as cur:
        cur.execute("SELECT terminal_id, loan_no, person_no, book FROM campus_library_loans")
        assert cur.fetchall() == [(LIBRARY_ID, 1, "S1", "B-0001")]


def test_a_desk_cannot_raise_the_back_offices_loan_limit(db: Database, clock: FrozenClock) -> None:
    """The back office lets students hold 2 books (and the site 4): a hostile desk sending
    limit 100, or none, lends a student no third book; it may only lower the limit, and a
    group the back office keeps from borrowing gets nothing."""
    office = LoanLimits(site=4, groups={"students": 2, "visitors": 0})
    gw = start_gateway(db, clock, library=office)
    try:
        token = gw.register(LIBRARY_ID, "campus", role="library")
        people = {"S1": "students", "T1": "staff", "V1": "visitors"}
        serial = {}
        for n, (person, group) in enumerate(people.items(), 1):
            card = campus_card(n, person)
            enrol(gw.url, person, group, card)
            serial[person] = card.serial.hex().upper()

        def lend(person: str, loan_no: int, **fields: object) -> httpx.Response:
            return _loan(gw.url, token, card_serial=serial[person], person_no=person,
                         loan_no=loan_no, book=f"B-{loan_no:04d}", **fields)  # fmt: skip

        assert lend("S1", 1, limit=100).json() == {"held": 1, "limit": 2, "duplicate": False}
        assert lend("S1", 2).json()["held"] == 2  # no limit sent: the back office's
        for n, asked in ((3, {"limit": 100}), (4, {})):
            r = lend("S1", n, **asked)
            assert (r.status_code, r.json()["error"]) == (409, "loan_limit"), r.text
            assert (
                "holds 2 book(s), the limit is 2 (the back office's for group students)"
                in (r.json()["reason"])
            )
        assert lend("T1", 5, limit=1).json() == {"held": 1, "limit": 1, "duplicate": False}
        r = lend("T1", 6, limit=100)  # the desk's lower limit held for the next loan only
        assert r.json() == {"held": 2, "limit": 4, "duplicate": False}, r.text
        r = lend("T1", 7, limit=1)
        assert (r.status_code, r.json()["error"]) == (409, "loan_limit"), r.text
        assert "the limit is 1 (the desk's)" in r.json()["reason"]
        r = lend("V1", 8, limit=100)
        assert (r.status_code, r.json()["error"]) == (403, "no_loans"), r.text
        assert "group visitors does not borrow here" in r.json()["reason"]
        with gw.db.tx() as cur:
            cur.execute(
                "SELECT person_no, COUNT(*) FROM campus_library_loans GROUP BY person_no"
                " ORDER BY person_no"
            )
            assert cur.fetchall() == [("S1", 2), ("T1", 2)]
    finally:
        gw.server.stop()


def test_a_loan_or_return_number_used_before_is_not_answered_as_a_resend(
    library: LibrarySite, gateway: GatewayServer
) -> None:
    """A desk whose numbers went back (its store lost, or restored from an old copy) sends
    loan 1 again for the same card and book after that loan was returned: answered as a
    resend, the desk would hand the book out while the gateway books no loan. And its return
    1 sent again once the book is lent again would leave the new loan open. Both are refused
    with the reason, and the loans stay as they were."""
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    serial = card.serial.hex().upper()
    assert _loan(gateway.url, library.token, card_serial=serial, person_no="S1").status_code == 200
    back = {"terminal_id": LIBRARY_ID, "return_no": 1, "book": "B-0001"}
    path = "/v1/campus/library/returns"
    assert as_terminal(gateway.url, library.token, path, back).status_code == 200
    again = _loan(gateway.url, library.token, card_serial=serial, person_no="S1")
    assert (again.status_code, again.json()["error"]) == (409, "loan_reused"), again.text
    assert "lent and returned already" in again.json()["reason"]
    assert "numbers went back" in again.json()["reason"]
    lent = _loan(gateway.url, library.token, card_serial=serial, person_no="S1", loan_no=2)
    assert lent.json() == {"held": 1, "limit": 2, "duplicate": False}
    reused = as_terminal(gateway.url, library.token, path, back)
    assert (reused.status_code, reused.json()["error"]) == (409, "return_reused"), reused.text
    assert "before it was lent again" in reused.json()["reason"]
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT loan_no, return_no FROM campus_library_loans WHERE book = 'B-0001'"
            " ORDER BY loan_no"
        )
        assert [tuple(r) for r in cur.fetchall()] == [(1, 1), (2, None)]
    numbers = httpx.get(
        gateway.url + "/v1/campus/library/numbers",
        headers={"Authorization": f"Bearer {library.token}"},
    )
    assert numbers.json() == {"loan_no": 2, "return_no": 1}


class LosesAnswers(httpx.BaseTransport):
    """The network between till and gateway: the request arrives, its answer is lost."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        raise httpx.ReadTimeout("the answer was lost", request=request)


def test_a_lost_allowance_answer_never_charges_twice(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    till = Till(tmp_path, FrozenClock(datetime(2026, 11, 30, 12, 0)), gateway.url, token)
    good = till.canteen.client
    till.canteen.client = GatewayClient(gateway.url, token, transport=LosesAnswers())
    with pytest.raises(CanteenRefused, match=r"did not answer.*pay cash.*voided at the gateway"):
        till.sell(card, 1_200, "allowance")
    assert allowance_of(gateway.url, "S1") == 1_800  # the gateway took it; the till never heard
    assert till.canteen.ledger.state(1) == "unanswered"
    assert till.sell(card, 1_200, "cash").balance_after == 3_800  # still unresolved: no gateway
    assert till.canteen.ledger.state(1) == "unanswered"

    till.canteen.client = good  # the next chance: the till voids sale 1 before selling
    assert till.sell(card, 300, "allowance").balance_after == 2_700
    assert till.canteen.ledger.state(1) == "voided"
    assert (allowance_of(gateway.url, "S1"), card.balance) == (2_700, 3_800)  # 1,200 once, cash
    # the lost request delivered again (a retrying proxy, an attacker)
    late = spend(gateway.url, token, 1, card.serial.hex().upper(), 1_200)
    assert (late.status_code, late.json()["error"]) == (409, "sale_voided")
    assert "voided by the till" in late.json()["reason"]
    assert allowance_of(gateway.url, "S1") == 2_700
    with gateway.db.tx() as cur:
        cur.execute("SELECT sale_seq, refunded FROM campus_allowance_voids")
        assert cur.fetchall() == [(1, 1_200)]


class RefusesOneVoid(httpx.BaseTransport):
    """A broken or hostile gateway (or a proxy before it) that refuses the void of sale 1 with
    a 4xx, and loses the spends' answers while ``lose`` is set; the rest reaches the gateway."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = True
        self.voids_of_sale_1 = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        void = request.url.path == "/v1/campus/allowance/void"
        if void and json.loads(request.read())["sale_seq"] == 1:
            self.voids_of_sale_1 += 1
            refusal = {"error": "unknown_sale", "reason": "no sale 1\nof this till"}
            return httpx.Response(404, json=refusal)
        response = self.inner.handle_request(request)
        if self.lose and request.url.path == "/v1/campus/allowance/spend":
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_a_void_the_gateway_refuses_is_kept_refused_and_holds_no_later_void(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    """Two allowance sales lose their answers (the gateway took both). The gateway refuses
    sale 1's void (404: it says it knows no such sale): the till records it refused with the
    code and reason, never sends it again, and sale 2's void still goes out and refunds; the
    1,200 sale 1 took stays at the gateway and in the till's ledger for the back office."""
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    till = Till(tmp_path, FrozenClock(datetime(2026, 11, 30, 12, 0)), gateway.url, token)
    hostile = RefusesOneVoid()
    till.canteen.client = GatewayClient(gateway.url, token, transport=hostile)
    for amount in (1_200, 700):
        with pytest.raises(CanteenRefused, match="did not answer"):
            till.sell(card, amount, "allowance")
    assert allowance_of(gateway.url, "S1") == 1_100  # both taken, neither answered
    hostile.lose = False
    assert till.sell(card, 300, "allowance").balance_after == 1_500  # sale 2 refunded first
    assert till.sell(card, 200, "allowance").balance_after == 1_300
    states = [till.canteen.ledger.state(seq) for seq in (1, 2, 3, 4)]
    assert states == ["void_refused", "voided", "paid", "paid"]
    assert hostile.voids_of_sale_1 == 1  # refused for good: not sent at every sale
    assert till.canteen.ledger.refused_voids() == [(1, "unknown_sale", "no sale 1 of this till")]
    health = TillService(till.device, lambda _: None).health()
    assert health["voids_waiting"] == 0
    assert health["voids_refused"] == [
        {"sale_seq": 1, "error": "unknown_sale", "reason": "no sale 1 of this till"}
    ]
    with gateway.db.tx() as cur:
        cur.execute("SELECT sale_seq, refunded FROM campus_allowance_voids")
        assert [tuple(r) for r in cur.fetchall()] == [(2, 700)]
        cur.execute("SELECT sale_seq, amount FROM campus_allowance_spends ORDER BY sale_seq")
        assert [tuple(r) for r in cur.fetchall()] == [(1, 1_200), (2, 700), (3, 300), (4, 200)]
    assert (allowance_of(gateway.url, "S1"), card.balance) == (1_300, 5_000)


def test_a_spend_that_arrives_after_its_void_is_refused(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    body = {"terminal_id": CANTEEN_ID, "sale_seq": 7}
    void = as_terminal(gateway.url, token, "/v1/campus/allowance/void", body)
    assert void.json() == {"sale_seq": 7, "refunded_fen": 0, "duplicate": False}
    late = spend(gateway.url, token, 7, card.serial.hex().upper(), 1_000)
    assert (late.status_code, late.json()["error"]) == (409, "sale_voided")
    assert gateway.count("campus_allowance_spends") == 0
    assert allowance_of(gateway.url, "S1") == 3_000


# -- a hostile screen on the till's and the desk's status port ------------------------------
@contextlib.contextmanager
def _serving(service: Any) -> Iterator[str]:
    """``service`` running in a thread; the URL of its status port while it runs."""
    thread = threading.Thread(target=service.run)
    thread.start()
    url = f"http://127.0.0.1:{service.config.status_port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        service.stop()
        thread.join(30)


def test_a_hostile_till_screen_cannot_credit_a_card_or_spend_anothers_allowance(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    """The cashier's screen (anything on 127.0.0.1) sends a negative amount (a sale that
    would credit the purse), an absurd one, or names another person whose allowance should
    pay: each is a bad request; no card, ledger, journal or allowance account moves."""
    card = campus_card(1, "S1", balance=5_000)
    enrol(gateway.url, "S1", "students", card)
    enrol(gateway.url, "S2", "students", campus_card(2, "S2"))
    lines = [{"person_no": p, "amount_fen": 3_000} for p in ("S1", "S2")]
    assert credit(gateway.url, "2026-11", lines).status_code == 200
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    (tmp_path / "canteen.toml").write_text(CANTEEN_RULES, encoding="utf-8")
    reader = SimReader(name="till")
    client = GatewayClient(gateway.url, token, timeout=2.0)
    clock = FrozenClock(datetime(2026, 11, 30, 12, 0))
    config = TerminalConfig(
        role="till",
        journal=str(tmp_path / "till.db"),
        hotlist=str(tmp_path / "hotlist.db"),
        till_rules=str(tmp_path / "canteen.toml"),
        status_port=free_port(),
        card_wait=1.0,
    )
    till = assemble(config, parts=campus_parts(reader, CANTEEN_ID, clock, client))
    reader.insert(card)  # S1's card lies in the field throughout
    with _serving(TillService(till, lambda _: None)) as url:
        for body, why in (
            ({"amount_fen": -1_200, "purse": "cash"}, "above 0, got -1200"),
            ({"amount_fen": -1_200, "purse": "allowance"}, "above 0, got -1200"),
            ({"amount_fen": 10**30, "purse": "allowance"}, f"got {10**30}"),
            ({"amount_fen": 500, "purse": "allowance", "person_no": "S2"}, "a till sale is"),
            ({"amount_fen": 500, "purse": "S2"}, "purse must be one of allowance, cash"),
        ):
            r = httpx.post(f"{url}/sale", json=body, timeout=30)
            assert r.status_code == 400 and r.json()["ok"] is False, r.text
            assert r.json()["refused"].startswith("bad sale request: ") and why in r.text
    client.close()
    assert card.balance == 5_000
    assert gateway.count("campus_allowance_spends") == 0
    assert (allowance_of(gateway.url, "S1"), allowance_of(gateway.url, "S2")) == (3_000, 3_000)
    with Journal(tmp_path / "till.db") as j:
        assert j.rows() == []
    with sqlite3.connect(tmp_path / "till.sales.db") as db:
        assert db.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 0


def test_a_hostile_library_screen_cannot_lend_a_book_to_another_person(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    """The librarian's screen names another patron (by person or card) than the card in the
    field: a bad request, nothing booked; the loan goes to the card's holder only."""
    card = campus_card(1, "S1")
    other = campus_card(2, "S2")
    enrol(gateway.url, "S1", "students", card)
    enrol(gateway.url, "S2", "students", other)
    token = gateway.register(LIBRARY_ID, "campus", role="library")
    (tmp_path / "limits.toml").write_text("[limits]\nstudents = 2\n", encoding="utf-8")
    reader = SimReader(name="library")
    client = GatewayClient(gateway.url, token, timeout=2.0)
    clock = FrozenClock(datetime(2026, 11, 30, 15, 0))
    config = TerminalConfig(
        role="library",
        journal=str(tmp_path / "library.db"),
        hotlist=str(tmp_path / "hotlist.db"),
        library_rules=str(tmp_path / "limits.toml"),
        status_port=free_port(),
        card_wait=1.0,
    )
    desk = LibraryTerminal(
        assemble_library(config, parts=campus_parts(reader, LIBRARY_ID, clock, client))
    )
    reader.insert(card)  # S1's card lies in the field throughout
    with _serving(LibraryService(desk, lambda _: None)) as url:
        for body in (
            {"book": "B-0001", "person_no": "S2"},
            {"book": "B-0001", "card_serial": other.serial.hex().upper()},
            {"book": {"person_no": "S2"}},
        ):
            r = httpx.post(f"{url}/loan", json=body, timeout=30)
            assert r.status_code == 400 and r.json()["ok"] is False, r.text
            assert r.json()["refused"].startswith("bad loan request: ")
        assert gateway.count("campus_library_loans") == 0
        r = httpx.post(f"{url}/loan", json={"book": "B-0001"}, timeout=30)
        assert r.json()["ok"] and r.json()["person_no"] == "S1"  # the card's holder
    client.close()
    with gateway.db.tx() as cur:
        cur.execute("SELECT person_no, book FROM campus_library_loans")
        assert [tuple(row) for row in cur.fetchall()] == [("S1", "B-0001")]


def test_a_void_racing_its_spend_refunds_what_the_spend_took(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    """A till voids a sale whose answer it lost while the spend is still inside the gateway
    (held here behind a lock on the person's account): the void must not answer "nothing to
    refund" and then let the spend commit - the allowance would be taken from a sale the
    till called voided. PostgreSQL only: SQLite's one writer never lets the two overlap."""
    if gateway.db.dialect != POSTGRES:
        pytest.skip("SQLite runs one writer at a time: a spend and its void cannot overlap")
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    token = gateway.register(CANTEEN_ID, "campus", role="pos")
    answers: dict[str, httpx.Response] = {}
    void_body = {"terminal_id": CANTEEN_ID, "sale_seq": 7}
    spending = threading.Thread(
        target=lambda: answers.update(spend=spend(gateway.url, token, 7, card.serial.hex(), 1_000))
    )
    voiding = threading.Thread(
        target=lambda: answers.update(
            void=as_terminal(gateway.url, token, "/v1/campus/allowance/void", void_body)
        )
    )
    with pytest.raises(Rollback), gateway.db.tx() as cur:
        cur.execute("SELECT 1 FROM campus_allowance_accounts WHERE person_no = 'S1' FOR UPDATE")
        spending.start()
        deadline = time.monotonic() + 30
        while lock_waiters(gateway) < 1:  # the spend checked for a void and waits on S1
            assert time.monotonic() < deadline, "the spend never waited on the account"
            time.sleep(0.02)
        voiding.start()
        voiding.join(2)  # done at once when unguarded; else it waits for the spend
        raise Rollback
    spending.join(60)
    voiding.join(60)
    paid = answers["spend"].status_code == 200
    refunded = answers["void"].json()["refunded_fen"]
    assert (paid, refunded) in ((True, 1_000), (False, 0)), {k: v.text for k, v in answers.items()}
    assert allowance_of(gateway.url, "S1") == 3_000  # voided: the allowance is whole again


SECOND_TILL = "310000000302"


def test_two_tills_at_once_cannot_spend_past_the_day_limit(gateway: GatewayServer) -> None:
    """S1 may spend 1,500 fen of the allowance a day. Two tills sell him 1,000 fen at the
    same moment: each checked the day's spends before the other's committed (PostgreSQL:
    both held here behind a lock on his account), so both were paid, 2,000 fen in a day.
    One sale must be refused over the limit, and only the other taken."""
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    credit(gateway.url, "2026-11", [{"person_no": "S1", "amount_fen": 3_000}])
    limit = {"scope": "person", "name": "S1", "day_limit_fen": 1_500}
    assert admin(gateway.url, "/v1/admin/campus/limits", limit).status_code == 200
    answers: dict[str, httpx.Response] = {}

    def sell(terminal_id: str) -> None:
        token = gateway.register(terminal_id, "campus", role="pos")
        body = {
            "terminal_id": terminal_id,
            "sale_seq": 1,
            "card_serial": card.serial.hex(),
            "person_no": "S1",
            "amount_fen": 1_000,
            "meal": "lunch",
        }
        answers[terminal_id] = as_terminal(gateway.url, token, "/v1/campus/allowance/spend", body)

    tills = [threading.Thread(target=sell, args=(t,)) for t in (CANTEEN_ID, SECOND_TILL)]
    race_held(
        gateway,
        tills,
        lambda cur: cur.execute(
            "SELECT 1 FROM campus_allowance_accounts WHERE person_no = 'S1' FOR UPDATE"
        ),
        waiting=2,
        what="the two sales at the account",
    )
    got = sorted((r.status_code, r.json().get("error")) for r in answers.values())
    assert got == [(200, None), (409, "over_limit")], {k: v.text for k, v in answers.items()}
    refused = next(r for r in answers.values() if r.status_code == 409)
    assert (
        "spent 1000 fen of the allowance today, the day limit is 1500" in refused.json()["reason"]
    )
    assert allowance_of(gateway.url, "S1") == 2_000  # one lunch taken, not two
    assert gateway.count("campus_allowance_spends") == 1
