"""The gateway's card book: desks push issuance records (each stored once), losses from
desks and kiosks become hotlist deltas, and replacement balances come from settled records."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from gateway import cards, hotlist
from gateway.cards import CarryRules
from gateway.forwarder import Forwarder
from gateway.registry import SqliteCardRegistry
from simulators.profiles import demo_psam
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.issuance import IssuanceDesk
from terminal.roles.registry import Applicant, CardState
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator, ValidatorConfig
from terminal.uplink import GatewayRefused, Uplink, sync_local_hotlist
from terminal.uplink.issuance import last_known_balance, push_issuance
from tests.gateway_fixtures import GatewayServer, start_gateway
from tests.issuance_kit import SHANGHAI, assemble_desk, leased, new_blank
from tests.subsidy_kit import DESK, KIOSK_A, PEOPLE, Centre, book_cards, card_for, client_for
from tests.traffic import JournaledTerminal


@pytest.fixture
def gateway(db, clock) -> Iterator[GatewayServer]:
    """A gateway on the test's clock that gives a lost card's balance without a settling
    period (docs/security.md: replacement balance)."""
    gw = start_gateway(db, clock, carry=CarryRules(settling=timedelta(0), clock=clock))
    yield gw
    gw.server.stop()


@pytest.fixture
def registry(clock, gateway):
    reg = SqliteCardRegistry(clock=clock)
    reg.hold(leased(gateway, DESK))
    yield reg
    reg.close()


def test_issuance_records_arrive_once_however_often_they_are_pushed(gateway, registry):
    issued = book_cards(registry, PEOPLE[:2])
    with client_for(gateway, DESK, "issuance") as desk:
        first = push_issuance(desk, registry.export)
        # the export holds each card as it is now, at its newest revision
        assert first.sent == 2 and first.counts == {"stored": 2} and first.cursor == 4
        # nothing new: the cursor says so, and nothing is sent
        assert push_issuance(desk, registry.export).sent == 0
        # a desk that lost track re-sends everything: all duplicates, nothing changes
        again = push_issuance(desk, registry.export, since=0)
        assert again.counts == {"duplicate": 2}
        registry.report_lost(issued[0].card_number)
        third = push_issuance(desk, registry.export)
        assert third.sent == 1 and third.counts == {"stored": 1} and third.cursor == 5
    assert gateway.count("card_revisions") == 3 and gateway.count("cards") == 2
    book = cards.get_card(gateway.db, issued[0].card_number)
    assert book is not None and book.state == CardState.LOST and book.desk_revision == 5
    assert book.card_record().holder.id_number == PEOPLE[0][1]


def test_a_lost_or_replaced_card_from_a_desk_is_published_as_a_hotlist_delta(gateway, registry):
    (rec,) = book_cards(registry, PEOPLE[:1])
    registry.report_lost(rec.card_number)
    registry.mark_hotlisted(rec.card_number, 77)  # the desk's local hotlist version
    with client_for(gateway, DESK, "issuance") as desk:
        push_issuance(desk, registry.export)
        push_issuance(desk, registry.export, since=0)  # again: no second delta
        latest, changes = hotlist.delta(gateway.db)
    assert [(c.action, c.card_serial) for c in changes] == [("add", rec.serial.hex().upper())]
    book = cards.get_card(gateway.db, rec.card_number)
    assert book is not None and book.hotlist_version == latest == 1  # the gateway's version


def test_conflicts_stale_revisions_and_malformed_records(gateway, registry):
    pending = registry.begin_issue(SHANGHAI, Applicant(*PEOPLE[0]), bytes(8))
    records = registry.export()
    registry.activate(pending.card_number)
    records += registry.export(1)
    with client_for(gateway, DESK, "issuance") as desk:
        desk.request("POST", "/v1/issuance/records", json={"records": records[1:]})
        stale = desk.request("POST", "/v1/issuance/records", json={"records": records[:1]})
        assert stale["answers"][0]["status"] == "stale"
        altered = copy.deepcopy(records[1])
        altered["holder"]["name"] = "赵六"
        doc = desk.request("POST", "/v1/issuance/records", json={"records": [altered]})
        assert doc["answers"][0]["status"] == "conflict"
        bad = copy.deepcopy(records[1])
        bad["revision"] = 9
        bad["serial"] = "0000000000000000"
        with pytest.raises(GatewayRefused) as exc:
            desk.request("POST", "/v1/issuance/records", json={"records": [bad]})
        assert exc.value.status == 422 and "serial must be" in exc.value.reason
    with client_for(gateway, "310000000081", "issuance") as other_desk:
        newer = copy.deepcopy(records[1])
        newer["revision"] = 10
        doc = other_desk.request("POST", "/v1/issuance/records", json={"records": [newer]})
        assert doc["answers"][0] == {
            "card_number": newer["card_number"],
            "revision": 10,
            "status": "conflict",
            "code": "other_desk",
            "reason": f"card {newer['card_number']} belongs to the book of desk {DESK}",
        }
    with client_for(gateway, "310000000001", "pos") as pos, pytest.raises(GatewayRefused) as exc:
        pos.request("POST", "/v1/issuance/records", json={"records": records})
    assert exc.value.status == 403
    assert gateway.count("card_revisions") == 2  # the stale one is kept in the history
    book = cards.get_card(gateway.db, records[1]["card_number"])
    assert book is not None and book.desk_revision == 2 and book.record["holder"]["name"] == "张三"


def test_a_loss_reported_at_a_kiosk_hotlists_the_card_and_stands(gateway, registry):
    alice, bob = book_cards(registry, PEOPLE[:2])
    with client_for(gateway, DESK, "issuance") as desk, client_for(gateway, KIOSK_A, "kiosk") as k:
        push_issuance(desk, registry.export)

        def loss(number: str, id_number: str) -> dict:
            return k.request(
                "POST", "/v1/cards/loss", json={"card_number": number, "id_number": id_number}
            )

        with pytest.raises(GatewayRefused) as exc:
            loss(alice.card_number, PEOPLE[1][1])  # someone else's ID number
        assert exc.value.status == 403 and "not the card holder" in exc.value.reason
        with pytest.raises(GatewayRefused) as exc:
            loss("3100029000099999999", PEOPLE[0][1])
        assert exc.value.status == 404
        assert gateway.count("hotlist_changes") == 0
        done = loss(alice.card_number, PEOPLE[0][1].lower())
        assert done["state"] == "lost" and done["hotlist_version"] == 1
        assert done["lost_via"] == f"kiosk {KIOSK_A}"
        assert loss(alice.card_number, PEOPLE[0][1])["hotlist_version"] == 1  # idempotent
        # the desk, not knowing yet, sends a newer revision that still says active
        registry.report_balance(alice.card_number, 0, registry._clock())
        push_issuance(desk, registry.export)
    book = cards.get_card(gateway.db, alice.card_number)
    assert book is not None and book.desk_state == "active" and book.state == "lost"
    assert hotlist.listed(gateway.db) == {
        (alice.issuer_id.hex().upper(), alice.serial.hex().upper())
    }
    assert cards.get_card(gateway.db, bob.card_number).state == "active"  # type: ignore[union-attr]


def test_a_lost_cards_balance_comes_from_confirmed_loads_and_verified_purchases(
    gateway, clock, tmp_path
):
    centre = Centre(gateway, clock)
    (rec,) = centre.issue(PEOPLE[:1])
    card = card_for(rec)
    with client_for(gateway, "310000000082", "issuance") as desk2:
        kiosk, _ = centre.kiosk(card=card)
        kiosk.top_up(3_000)
        clock.advance(minutes=1)
        kiosk.top_up(1_000)
        clock.advance(minutes=5)
        bus = JournaledTerminal("310000000201", tmp_path / "bus.db", clock)
        bus.tap(card, 250)
        with client_for(gateway, "310000000201", "validator") as up:
            assert Uplink(bus.journal, {"310000000201": up}).drain() == 1
        bus.close()
        # a card still in use has no balance to carry
        with pytest.raises(GatewayRefused) as refused:
            last_known_balance(desk2, rec.card_number)
        assert refused.value.code == "card_in_use" and "report it lost" in refused.value.reason
        centre.registry.report_lost(rec.card_number)
        push_issuance(centre.desk, centre.registry.export)
        found = last_known_balance(desk2, rec.card_number)
        assert found is not None and found["balance_fen"] == card.balance == 3_750
        assert found["source"] == "purchase" and found["as_of"] == clock.now.isoformat()
        assert found["anchor"]["kind"] == "load" and found["anchor"]["balance_fen"] == 4_000
        assert found["purchases"] == [
            {"terminal_id": "310000000201", "terminal_seq": 1, "amount": 250}
        ]
        # what a desk does with it before a replacement (docs/issuance.md §4)
        book = centre.registry.report_balance(
            rec.card_number, found["balance_fen"], datetime.fromisoformat(found["as_of"])
        )
        assert book.balance_fen == 3_750
    centre.close()


def test_a_replacement_at_the_desk_reaches_the_gateway_and_every_validator(
    gateway, clearing, clock, tmp_path
):
    """Issue at the desk, ride, replace with the balance from the gateway's settled records
    and the carry loaded through the gateway; the old card is a hotlist delta."""
    centre = Centre(gateway, clock)
    desk_reader = SimReader(name="desk")
    desk_journal = Journal(tmp_path / "desk.db", clock=clock)
    device = assemble_desk(
        clock,
        reader=desk_reader,
        terminal_id=DESK,
        registry=centre.registry,
        client=centre.desk,
        journal=desk_journal,
    )
    desk: IssuanceDesk = device.role
    old_card = new_blank(1)
    desk_reader.insert(old_card)
    old = desk.issue(Applicant(*PEOPLE[0])).record
    push_issuance(centre.desk, centre.registry.export)
    kiosk, _ = centre.kiosk(card=old_card)
    kiosk.top_up(5_000)
    clock.advance(minutes=3)
    bus = JournaledTerminal("310000000201", tmp_path / "bus.db", clock)
    bus.tap(old_card.purse, 300)  # type: ignore[arg-type]
    with client_for(gateway, "310000000201", "validator") as up:
        Uplink(bus.journal, {"310000000201": up}).drain()
    clock.advance(hours=1)

    centre.registry.report_lost(old.card_number)
    push_issuance(centre.desk, centre.registry.export)
    found = last_known_balance(centre.desk, old.card_number)
    assert found is not None and found["balance_fen"] == 4_700
    centre.registry.report_balance(
        old.card_number, found["balance_fen"], datetime.fromisoformat(found["as_of"])
    )
    new_card = new_blank(2)
    desk_reader.insert(new_card)
    issued = desk.replace(old.card_number)
    assert issued.record.carry_fen == 4_700 and new_card.purse.balance == 4_700  # type: ignore[union-attr]
    pushed = push_issuance(centre.desk, centre.registry.export)
    assert pushed.counts == {"stored": 2}

    book_old = cards.get_card(gateway.db, old.card_number)
    book_new = cards.get_card(gateway.db, issued.record.card_number)
    assert book_old is not None and book_old.state == "replaced"
    assert book_old.hotlist_version == 1 and book_new is not None and book_new.state == "active"
    with gateway.db.tx() as cur:
        cur.execute("SELECT terminal_id, amount, state FROM loads ORDER BY id")
        assert cur.fetchall() == [(KIOSK_A, 5_000, "confirmed"), (DESK, 4_700, "confirmed")]
    Forwarder(gateway.db, clearing.url).drain()
    assert clearing.settlement()["totals"]["load_amount"] == 9_700

    reader = SimReader(name="bus 2")
    session = TerminalSession(reader, SimReader(demo_psam("310000000202")), clock=clock)
    session.start()
    hotlist = Hotlist()
    validator = Validator(
        session,
        Journal(tmp_path / "bus2.db", clock=clock),
        hotlist,
        ValidatorConfig(mode=Mode.BUS, rules=load_rules()),
    )
    with client_for(gateway, "310000000202", "validator") as up:
        assert sync_local_hotlist(up, hotlist) == 1
    reader.insert(old_card)
    assert validator.tap().message == "card reported lost: blocked"
    clock.advance(minutes=5)
    reader.insert(new_card)
    assert validator.tap().green
    bus.close()
    centre.close()
