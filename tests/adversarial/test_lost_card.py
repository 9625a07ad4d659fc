"""A card in the hands of whoever found or stole it: once reported lost (挂失) the hotlist
refuses it at every payment source, not only the T-Union purse; before that, a kiosk
subsidy pickup asks for the holder, not only the card (docs/security.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.hotlist import listed as hotlist_listed
from gateway.subsidy.holder import HolderRules
from simulators.emv_profiles import resident_card
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig
from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.load_host import request_json
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.pos import CardRefused
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayRefused
from tests.gateway_fixtures import GatewayServer, fail_once, rows_written, start_gateway
from tests.subsidy_kit import (
    KIOSK_A,
    PEOPLE,
    Centre,
    admin,
    answer,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    roster,
)

LOCK_MS = 2_000  # the test gateway's lock-out; 30 minutes by default


@pytest.mark.parametrize("rule", ["ec", "ep", "auto"])
def test_a_lost_resident_card_pays_from_no_source(psam, clock, tmp_path, rule: str) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000, ep_balance=5_000)
    ep = card.app("epurse").card
    hotlist = Hotlist()
    hotlist.apply(1, added=[ep.serial])
    session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    session.start()
    with Journal(tmp_path / "pos.db") as journal:
        pos = OneCardPos(
            session,
            journal,
            TerminalConfig(trust_test_keys=True),
            CaKeyStore.builtin(),
            PaymentRule.named(rule),
            hotlist=hotlist,
        )
        with pytest.raises(CardRefused, match="reported lost"):
            pos.charge(1_200)
        assert journal.rows() == [] and journal.pending_upload() == 0
    assert card.app("emv").ec_balance == 5_000 and ep.balance == 5_000


# -- a stolen card at the subsidy kiosk --------------------------------------------------------
@pytest.fixture
def guarded(db, clock) -> Iterator[GatewayServer]:  # type: ignore[no-untyped-def]
    gw = start_gateway(db, clock, pickup_holder=HolderRules(tries=3, lock_ms=LOCK_MS))
    yield gw
    gw.server.stop()


def one_number(gw: GatewayServer, sql: str, *params: Any) -> Any:
    with gw.db.tx() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def test_a_stolen_card_without_the_holders_digits_picks_up_nothing(guarded, clock, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    centre = Centre(guarded, clock)
    try:
        (zhang,) = centre.issue(PEOPLE[:1])
        doc = import_roster(
            guarded,
            roster(f"{holder_row(zhang)},H18,20000,2026-10"),
        )
        rid = int(doc["roster"]["id"])
        approve_roster(guarded, rid)
        card = card_for(zhang, balance=0)
        kiosk, _ = centre.kiosk(KIOSK_A, card)
        right = answer(0)
        # the 公示 listing shows the first 6 and last 4 characters: the thief guesses the birth date
        guesses = [right[:6] + day + right[-4:] for day in ("19800102", "19750615", "19901231")]
        assert right not in guesses

        def line() -> dict[str, Any]:
            r = admin(guarded, "GET", "/v1/admin/subsidies/report", params={"roster_id": rid})
            (only,) = r.json()["lines"]
            return dict(only)

        def pickup(holder: str) -> GatewayRefused:
            """The thief's request: the card's own INITIALIZE FOR LOAD, the digits guessed."""
            kiosk.session.card_reader.connect()
            info = kiosk.session.run(flows.select())
            req = kiosk.session.run(flows.prepare_load(info, kiosk.terminal_id, 20_000, clock()))
            body = {"load": request_json(req), "lines": [line()["line_id"]], "holder": holder}
            with pytest.raises(GatewayRefused) as caught:
                kiosk.subsidies.client.request("POST", "/v1/subsidies/pickups", json=body)  # type: ignore[union-attr]
            return caught.value

        # the first guess through the kiosk itself: refused, nothing journaled
        with pytest.raises(LoadDeclined, match="does not match the holder of card"):
            kiosk.pick_up(guesses[0])
        assert kiosk.credits.journal.load_rows() == []  # type: ignore[union-attr]
        second = pickup(guesses[1])
        assert (second.status, second.code) == (403, "not_the_holder")
        assert "does not match the holder" in second.reason
        assert "1 more wrong answer" in second.reason
        third = pickup(guesses[2])
        assert (third.status, third.code) == (403, "not_the_holder")
        assert "now locked for" in third.reason
        # locked: the right digits are refused too, until the lock expires
        locked = pickup(right)
        assert (locked.status, locked.code) == (403, "pickup_locked")
        assert "locked until" in locked.reason and "3 wrong answers" in locked.reason
        with pytest.raises(LoadDeclined, match="locked until"):
            kiosk.pick_up(right)
        # nothing paid, nothing stored but the count
        assert guarded.count("loads") == 0 and card.balance == 0
        assert line()["status"] == "pending"
        assert one_number(guarded, "SELECT failures FROM subsidy_pickup_guard") == 3
        assert guarded.count("subsidy_pickup_guard") == 1
        logged = "\n".join(
            r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("gateway", "uvicorn")
        )
        for said in (*guesses, right):
            assert said not in logged
            for reason in (second.reason, third.reason, locked.reason):
                assert said not in reason

        time.sleep(LOCK_MS / 1000 + 0.2)
        got = kiosk.pick_up(right)
        assert got.paid_fen == 20_000 and card.balance == 20_000
        assert line()["status"] == "paid" and guarded.count("loads") == 1
        assert guarded.count("subsidy_pickup_guard") == 0  # a right answer clears the count
    finally:
        centre.close()


# -- a loss report that fails half way ---------------------------------------------------------
def _book_facts(gw: GatewayServer, card_number: str) -> tuple[bool, int | None, set[str]]:
    """(lost in the book, the hotlist version on the card, the serials listed now)."""
    with gw.db.tx() as cur:
        cur.execute(
            "SELECT lost_at, hotlist_version FROM cards WHERE card_number = ?", (card_number,)
        )
        lost_at, version = cur.fetchone()
    return lost_at is not None, version, {serial for _, serial in hotlist_listed(gw.db)}


def _report(gw: GatewayServer, token: str, record: Any, id_number: str) -> httpx.Response:
    body = {"card_number": record.card_number, "id_number": id_number}
    return httpx.post(
        gw.url + "/v1/cards/loss", json=body, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_loss_report_rolled_back_at_its_hotlist_step_lands_whole(gateway, clock) -> None:  # type: ignore[no-untyped-def]
    """The hotlist step (recording the card's hotlist version) fails once with a
    serialization failure after the card was marked lost: the report runs again whole, the
    kiosk gets its answer, and the card is never lost without its hotlist entry."""
    centre = Centre(gateway, clock)
    try:
        (zhang,) = centre.issue(PEOPLE[:1])
        token = gateway.register(KIOSK_A, "card-centre", role="kiosk")
        fail_once(gateway.db, "cards", at_row=2)
        r = _report(gateway, token, zhang, PEOPLE[0][1])
        assert r.status_code == 200, r.text
        assert rows_written(gateway.db) == 4  # the failed try's two rows, then the re-run's
        lost, version, listed = _book_facts(gateway, zhang.card_number)
        assert (lost, listed) == (True, {zhang.serial.hex().upper()})
        with gateway.db.tx() as cur:  # the one change (the failed try's version is skipped)
            cur.execute("SELECT version, action FROM hotlist_changes")
            assert cur.fetchall() == [(version, "add")]
        assert version == r.json()["hotlist_version"]
    finally:
        centre.close()


def _hotlist_step_dies(gw: GatewayServer, dies: bool = True) -> None:
    """The hotlist step cannot run (as if the process died before it), or runs again."""
    names = ("hotlist_changes", "hotlist_changes_away")
    old, new = names if dies else names[::-1]
    with gw.db.tx() as cur:
        cur.execute(f"ALTER TABLE {old} RENAME TO {new}")


def test_a_loss_report_whose_hotlist_step_dies_changes_nothing_and_runs_again(  # type: ignore[no-untyped-def]
    gateway, clock
) -> None:
    """挂失 whose hotlist step never runs: the card is not lost without its hotlist entry
    (it would keep paying at validators); the kiosk's second try lands the whole report."""
    centre = Centre(gateway, clock)
    try:
        (zhang,) = centre.issue(PEOPLE[:1])
        token = gateway.register(KIOSK_A, "card-centre", role="kiosk")
        _hotlist_step_dies(gateway)
        failed = _report(gateway, token, zhang, PEOPLE[0][1])
        assert failed.status_code == 500
        assert _book_facts(gateway, zhang.card_number) == (False, None, set())
        _hotlist_step_dies(gateway, dies=False)
        again = _report(gateway, token, zhang, PEOPLE[0][1])
        assert again.status_code == 200, again.text
        assert again.json()["state"] == "lost"
        serial = zhang.serial.hex().upper()
        assert _book_facts(gateway, zhang.card_number) == (True, 1, {serial})
        assert gateway.count("hotlist_changes") == 1
    finally:
        centre.close()


def test_an_unblock_whose_hotlist_step_dies_keeps_the_card_lost_and_runs_again(  # type: ignore[no-untyped-def]
    gateway, clock
) -> None:
    """解挂 whose hotlist step never runs: the card stays lost and listed instead of active
    but still refused everywhere, and the operator's second try is not refused as
    ``not_lost`` by the first one's half."""
    centre = Centre(gateway, clock)
    try:
        (zhang,) = centre.issue(PEOPLE[:1])
        token = gateway.register(KIOSK_A, "card-centre", role="kiosk")
        assert _report(gateway, token, zhang, PEOPLE[0][1]).status_code == 200
        serial = zhang.serial.hex().upper()
        _hotlist_step_dies(gateway)
        path = f"/v1/admin/cards/{zhang.card_number}/unblock"
        body = {"actor": "clerk 7", "id_number": PEOPLE[0][1], "note": "found it"}
        failed = admin(gateway, "POST", path, json=body)
        assert failed.status_code == 500
        _hotlist_step_dies(gateway, dies=False)
        assert _book_facts(gateway, zhang.card_number) == (True, 1, {serial})
        again = admin(gateway, "POST", path, json=body)
        assert again.status_code == 200, again.text
        assert again.json()["state"] == "active"
        assert _book_facts(gateway, zhang.card_number) == (False, None, set())
        assert gateway.count("hotlist_changes") == 2
    finally:
        centre.close()
