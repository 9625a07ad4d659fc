"""Taxi, public bike, coach and parking validators on software cards: normal rides, refusals,
the card records they write, torn debits and the upload to a real gateway."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gateway.forwarder import Forwarder
from simulators.profiles import demo_card
from terminal.epurse.layouts import ModeRecord, TripRecord
from terminal.fares.engine import Mode
from terminal.journal import SETTLED
from terminal.layout import parse
from terminal.readers.sim import AFTER, BEFORE
from terminal.roles.transport import ModeUnavailable, Ride
from terminal.uplink import GatewayClient, Uplink
from tests.terminal.roles.fleet import RULES, Fleet, is_debit, record_commands

TAXI_RIDE = Ride(meter=3_150, driver="D0042", vehicle="HU-A1234")


@pytest.fixture
def fleet(tmp_path, clock) -> Fleet:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "journal.db", clock)
    f.add_cards(2, balance=20_000)
    return f


def record(card, number: int):  # type: ignore[no-untyped-def]
    return parse(ModeRecord, bytes.fromhex(card.state.capp[f"27{number:02X}"]), "27xx")


def newest_trip(card):  # type: ignore[no-untyped-def]
    return parse(TripRecord, bytes.fromhex(card.state.trips[0]), "1E")


# -- taxi ---------------------------------------------------------------------------------
def test_taxi_pays_the_meter_and_records_driver_and_vehicle(fleet: Fleet) -> None:
    card = fleet.cards[0]
    taxi = fleet.gate(Mode.TAXI, ride=TAXI_RIDE)
    r = fleet.tap(card, taxi)
    assert (r.green, r.fare, r.balance, card.balance) == (True, 3_150, 16_850, 16_850)
    rec = record(card, 0x04)
    assert (rec.vehicle, rec.driver, rec.charged) == (b"HU-A1234", b"D0042   ", 3_150)
    trip = newest_trip(card)
    assert (trip.industry, trip.amount, trip.balance) == (0x04, 3_150, 16_850)
    row = fleet.journal.rows(SETTLED)[0]
    assert row.context["driver"] == "D0042" and row.context["vehicle"] == "HU-A1234"
    assert row.context["mode"] == "taxi" and row.amount == 3_150
    fleet.check_invariants()


def test_taxi_refuses_no_meter_a_meter_above_the_maximum_and_a_short_balance(
    fleet: Fleet,
) -> None:
    card = fleet.cards[0]
    assert fleet.tap(card, fleet.gate(Mode.TAXI)).message == "no fare on the meter"
    too_much = fleet.tap(card, fleet.gate(Mode.TAXI, ride=Ride(meter=50_001)))
    assert not too_much.green and "above the fare file's maximum" in too_much.message
    poor = demo_card(9, balance=1_000)
    fleet.cards.append(poor)
    fleet.opening[poor.serial], fleet.opening_atc[poor.serial] = 1_000, 0
    short = fleet.tap(poor, fleet.gate(Mode.TAXI, ride=TAXI_RIDE))
    assert (short.green, short.message, poor.balance) == (False, "insufficient balance", 1_000)
    assert card.balance == 20_000 and fleet.journal.rows(SETTLED) == []
    fleet.check_invariants()


def test_a_one_trip_meter_amount_is_paid_once(fleet: Fleet) -> None:
    from terminal.roles.transport.taxi import TaxiMeter

    taxi = fleet.gate(Mode.TAXI)
    assert isinstance(taxi, TaxiMeter)
    taxi.one_trip = True
    taxi.set_meter(1_500)
    assert fleet.tap(fleet.cards[0], taxi).fare == 1_500
    assert fleet.tap(fleet.cards[1], taxi).message == "no fare on the meter"
    fleet.check_invariants()


# -- bike ---------------------------------------------------------------------------------
def test_bike_rent_then_return_at_another_dock(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    card = fleet.cards[0]
    rent = fleet.gate(Mode.BIKE_RENT, "0301", Ride(vehicle="B000777"))
    r = fleet.tap(card, rent)
    assert (r.green, r.fare, card.balance) == (True, 0, 20_000)
    rec = record(card, 0x06)
    assert (rec.status, rec.open_time, rec.vehicle) == (1, clock.now, b"B000777 ")
    again = fleet.tap(card, fleet.gate(Mode.BIKE_RENT, "0302"))
    assert not again.green and "already renting B000777" in again.message
    clock.advance(minutes=90)
    other_dock = fleet.gate(Mode.BIKE_RETURN, "0305")
    back = fleet.tap(card, other_dock)
    assert (back.green, back.fare, card.balance) == (True, 100, 19_900)
    rec = record(card, 0x06)
    assert (rec.status, rec.charged, rec.close_place) == (0, 100, bytes.fromhex("0305"))
    assert fleet.tap(card, fleet.gate(Mode.BIKE_RENT, "0302")).green  # free to rent again
    fleet.check_invariants()


def test_bike_deposit_check_and_hold(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    poor = demo_card(9, balance=2_999)
    r = fleet.tap(poor, fleet.gate(Mode.BIKE_RENT))
    assert not r.green and "insufficient balance for the deposit" in r.message
    assert poor.state.offline_atc == 0 and "2706" not in poor.state.capp
    held = replace(
        RULES, modes=replace(RULES.modes, bike=replace(RULES.modes.bike, deposit_mode="hold"))
    )
    rent = fleet.gate(Mode.BIKE_RENT)
    rent.config = replace(rent.config, rules=held)
    card = fleet.cards[0]
    assert fleet.tap(card, rent).fare == 3_000 and card.balance == 17_000
    clock.advance(hours=5)  # 300 + 200 = 500 fee, the 3 000 deposit credited
    back = fleet.gate(Mode.BIKE_RETURN, "0302")
    back.config = replace(back.config, rules=held)
    r = fleet.tap(card, back)
    assert r.green and r.fare == 0 and "deposit" in r.notes[-1]
    fleet.check_invariants()


def test_bike_fee_table_steps_and_cap() -> None:
    from datetime import datetime, timedelta

    bike = RULES.modes.bike
    t0 = datetime(2026, 3, 1, 8)
    fees = [bike.fee(t0, t0 + timedelta(minutes=m)) for m in (0, 60, 61, 120, 240, 241, 301)]
    assert fees == [0, 0, 100, 100, 300, 500, 700]
    assert bike.fee(t0, t0 + timedelta(days=3)) == bike.max_fee == 2_000


# -- coach --------------------------------------------------------------------------------
def test_coach_ticket_at_boarding_by_origin_and_destination(fleet: Fleet) -> None:
    card = fleet.cards[0]
    coach = fleet.gate(Mode.COACH, "0201", Ride(destination="0203"))
    r = fleet.tap(card, coach)
    assert (r.green, r.fare, card.balance) == (True, 4_800, 15_200)
    rec = record(card, 0x08)
    assert (rec.open_place, rec.close_place, rec.charged) == (b"\x02\x01", b"\x02\x03", 4_800)
    assert fleet.journal.rows(SETTLED)[0].context["destination"] == "0203"
    nowhere = fleet.tap(fleet.cards[1], fleet.gate(Mode.COACH, "0201", Ride(destination="0299")))
    assert not nowhere.green and "no coach fare from 0201 to 0299" in nowhere.message
    with pytest.raises(ModeUnavailable, match=r"0101 is not in coach\.stations"):
        fleet.gate(Mode.COACH, "0101")
    fleet.check_invariants()


# -- parking ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stay", "fee"),
    [
        ({"minutes": 15}, 0),
        ({"minutes": 16}, 600),
        ({"hours": 3, "minutes": 1}, 1_600),
        ({"hours": 20}, 4_000),
        ({"days": 2, "minutes": 30}, 8_600),
    ],
)
def test_parking_entry_then_exit_by_the_tariff(fleet: Fleet, clock, stay, fee) -> None:  # type: ignore[no-untyped-def]
    card = fleet.cards[0]
    entered = clock.now
    assert fleet.tap(card, fleet.gate(Mode.PARKING_ENTRY, "0401")).green
    assert (record(card, 0x07).status, record(card, 0x07).open_time) == (1, entered)
    clock.advance(**stay)
    r = fleet.tap(card, fleet.gate(Mode.PARKING_EXIT, "0402"))
    assert (r.green, r.fare, card.balance) == (True, fee, 20_000 - fee)
    rec = record(card, 0x07)
    assert (rec.status, rec.open_time, rec.charged) == (0, entered, fee)
    fleet.check_invariants()


def test_parking_exit_without_entry_and_double_entry_are_refused(fleet: Fleet) -> None:
    card = fleet.cards[0]
    r = fleet.tap(card, fleet.gate(Mode.PARKING_EXIT))
    assert not r.green and "no entry recorded" in r.message and card.state.offline_atc == 0
    fleet.tap(card, fleet.gate(Mode.PARKING_ENTRY))
    again = fleet.tap(card, fleet.gate(Mode.PARKING_ENTRY, "0402"))
    assert not again.green and "already parked" in again.message
    assert card.balance == 20_000
    fleet.check_invariants()


# -- every mode ---------------------------------------------------------------------------
def scenario(f: Fleet, clock, mode: Mode):  # type: ignore[no-untyped-def]
    """The card and the gate of one paying tap in ``mode`` (after its opening tap)."""
    card = f.cards[0]
    if mode is Mode.BIKE_RETURN:
        f.tap(card, f.gate(Mode.BIKE_RENT, "0301"))
        clock.advance(minutes=70)
        return card, f.gate(Mode.BIKE_RETURN, "0302"), 100
    if mode is Mode.PARKING_EXIT:
        f.tap(card, f.gate(Mode.PARKING_ENTRY, "0401"))
        clock.advance(minutes=50)
        return card, f.gate(Mode.PARKING_EXIT, "0402"), 600
    gates = {
        Mode.TAXI: (f.gate(Mode.TAXI, ride=TAXI_RIDE), 3_150),
        Mode.BIKE_RENT: (f.gate(Mode.BIKE_RENT, "0301"), 0),
        Mode.COACH: (f.gate(Mode.COACH, "0201", Ride(destination="0202")), 2_500),
        Mode.PARKING_ENTRY: (f.gate(Mode.PARKING_ENTRY, "0401"), 0),
    }
    return card, *gates[mode]


MODES = [
    Mode.TAXI,
    Mode.BIKE_RENT,
    Mode.BIKE_RETURN,
    Mode.COACH,
    Mode.PARKING_ENTRY,
    Mode.PARKING_EXIT,
]


@pytest.mark.parametrize("mode", MODES)
def test_hotlisted_card_is_refused_in_every_mode(tmp_path, clock, mode: Mode) -> None:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1, balance=20_000)
    card, gate, _ = scenario(f, clock, mode)
    before = (card.balance, card.state.offline_atc)
    f.hotlist.apply(f.hotlist.version + 1, [card.serial])
    r = f.tap(card, gate)
    assert not r.green and "reported lost" in r.message
    assert (card.balance, card.state.offline_atc) == before and f.journal.open_rows() == []


def card_commands(tmp_path, clock, mode: Mode) -> list[bytes]:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / f"probe-{mode}.db", clock)
    f.add_cards(1, balance=20_000)
    card, gate, _ = scenario(f, clock, mode)
    seen = record_commands(card)
    assert f.tap(card, gate).green
    return seen


@pytest.mark.parametrize("mode", MODES)
def test_card_cut_before_and_after_every_apdu_is_recovered(tmp_path, clock, mode: Mode) -> None:  # type: ignore[no-untyped-def]
    commands = card_commands(tmp_path, clock, mode)
    assert any(is_debit(a) for a in commands)
    for index, apdu in enumerate(commands):
        for when in (BEFORE, AFTER):
            f = Fleet(tmp_path / f"{mode}-{index}-{when}.db", clock)
            f.add_cards(1, balance=20_000)
            card, gate, charged = scenario(f, clock, mode)
            f.reader.insert(card)
            f.reader.tear_at(index, when)
            assert not gate.tap().green, (index, when)
            assert len(f.journal.open_rows()) == (1 if is_debit(apdu) else 0)
            clock.advance(seconds=5)
            retry = f.tap(card, gate)
            assert retry.green, (index, apdu.hex(), when, retry)
            assert f.journal.open_rows() == []
            f.check_invariants()
            assert card.balance == 20_000 - charged, (index, when)


def test_every_mode_uploads_to_the_gateway_and_is_cleared(
    gateway, clearing, tmp_path, clock
) -> None:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1, balance=50_000)
    card = f.cards[0]
    gates = [
        f.gate(Mode.TAXI, ride=TAXI_RIDE, tid="310000000501"),
        f.gate(Mode.BIKE_RENT, "0301", tid="310000000502"),
        f.gate(Mode.BIKE_RETURN, "0302", tid="310000000503"),
        f.gate(Mode.COACH, "0201", Ride(destination="0203"), tid="310000000504"),
        f.gate(Mode.PARKING_ENTRY, "0401", tid="310000000505"),
        f.gate(Mode.PARKING_EXIT, "0402", tid="310000000506"),
    ]
    for gate in gates:
        clock.advance(minutes=80)
        assert f.tap(card, gate).green
    clients = {
        tid: GatewayClient(gateway.url, gateway.register(tid, role="validator"))
        for tid in (g.session.sam.terminal_id_hex for g in gates)
    }
    up = Uplink(f.journal, clients, clock=clock)
    while up.send_batch():
        pass
    assert f.journal.pending_upload() == 0
    with gateway.db.tx() as cur:
        cur.execute("SELECT terminal_id, amount, context FROM txn ORDER BY txn_time")
        stored = [(t, a, json.loads(c)["mode"]) for t, a, c in cur.fetchall()]
    assert stored == [
        ("310000000501", 3_150, "taxi"),
        ("310000000502", 0, "bike-rent"),
        ("310000000503", 100, "bike-return"),
        ("310000000504", 4_800, "coach"),
        ("310000000505", 0, "parking-entry"),
        ("310000000506", 1_000, "parking-exit"),
    ]
    for c in clients.values():
        c.close()
    fwd = Forwarder(gateway.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 6
    assert clearing.ledger.stats() == {"accepted": 6, "deliveries": 6, "rejected": 0}
    assert clearing.settlement()["totals"]["purchase_amount"] == 50_000 - card.balance == 9_050
