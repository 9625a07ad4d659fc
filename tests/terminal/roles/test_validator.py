"""The validator end to end on software cards: fares, records, refusals, hotlist."""

import pytest

from simulators.profiles import demo_card
from terminal.epurse import commands as c
from terminal.epurse.layouts import MetroRecord, TripRecord
from terminal.fares.engine import METRO_ENTERED, METRO_EXITED, TRIP_EP_ENTRY, TRIP_EP_EXIT
from terminal.layout import parse
from tests.terminal.roles.fleet import Fleet


@pytest.fixture
def fleet(tmp_path, clock) -> Fleet:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "journal.db", clock)
    f.add_cards(3)
    return f


def trips(card) -> list:  # type: ignore[no-untyped-def]
    return [parse(TripRecord, bytes.fromhex(t), "1E") for t in card.state.trips]


def metro(card):  # type: ignore[no-untyped-def]
    return parse(MetroRecord, bytes.fromhex(card.state.capp["2701"]), "2701")


def test_metro_entry_then_exit_writes_records_and_charges_table_fare(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    card = fleet.cards[0]
    r = fleet.tap(card, fleet.entry)
    assert r.green and r.fare == 0
    rec = metro(card)
    assert rec.status == METRO_ENTERED and rec.entry_station[-2:] == bytes.fromhex("0101")
    assert trips(card)[0].txn_type == TRIP_EP_ENTRY
    clock.advance(minutes=30)
    r = fleet.tap(card, fleet.exit)
    assert r.green and r.fare == 400 and r.balance == 4_600 and card.balance == 4_600
    rec = metro(card)
    assert rec.status == METRO_EXITED and rec.actual_amount == 400
    assert rec.entry_station[-2:] == bytes.fromhex("0101")
    assert rec.exit_station[-2:] == bytes.fromhex("0103")
    t = trips(card)[0]
    assert (t.txn_type, t.amount, t.balance, t.when) == (TRIP_EP_EXIT, 400, 4_600, clock.now)
    assert card.state.log and fleet.journal.totals()["settled"] == (2, 400)
    fleet.check_invariants()


def test_exit_without_entry_is_refused_and_not_charged(fleet: Fleet) -> None:
    card = fleet.cards[0]
    r = fleet.tap(card, fleet.exit)
    assert not r.green and "no entry" in r.message
    assert card.balance == 5_000 and card.state.offline_atc == 0


def test_overtime_and_missing_exit_penalties(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    card = fleet.cards[0]
    fleet.tap(card, fleet.entry)
    clock.advance(hours=5)
    r = fleet.tap(card, fleet.exit)
    assert r.fare == 400 + 300 and "over 240 min" in r.notes[0]
    fleet.tap(card, fleet.entry)
    clock.advance(days=1)
    r = fleet.tap(card, fleet.entry)
    assert r.fare == 400 and "no exit recorded" in r.notes[0]
    fleet.check_invariants()


def test_transfer_discount_within_window_only(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    card = fleet.cards[0]
    fleet.tap(card, fleet.entry)
    clock.advance(minutes=20)
    fleet.tap(card, fleet.exit)
    clock.advance(minutes=30)
    r = fleet.tap(card, fleet.bus)
    assert r.fare == 100 and "transfer" in r.notes[0]
    clock.advance(minutes=200)
    assert fleet.tap(card, fleet.bus).fare == 200
    fleet.check_invariants()


@pytest.mark.parametrize(("kind", "fare"), [(3, 0), (2, 100), (4, 0), (1, 200)])
def test_concession_card_kinds(fleet: Fleet, kind: int, fare: int) -> None:
    card = demo_card(50 + kind, balance=1_000, card_kind=kind)
    r = fleet.tap(card, fleet.bus)
    assert r.green and r.fare == fare and card.balance == 1_000 - fare


def test_double_tap_within_window_not_charged_twice(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    card = fleet.cards[0]
    assert fleet.tap(card, fleet.bus).fare == 200
    clock.advance(seconds=30)
    again = fleet.tap(card, fleet.bus)
    assert again.green and again.message == "already paid" and card.balance == 4_800
    clock.advance(seconds=61)
    assert fleet.tap(card, fleet.bus).fare == 200
    fleet.check_invariants()


def test_insufficient_balance_is_red_and_untouched(fleet: Fleet) -> None:
    card = demo_card(77, balance=150)
    r = fleet.tap(card, fleet.bus)
    assert not r.green and r.message == "insufficient balance" and r.fare == 200
    assert card.balance == 150 and card.state.trips == []


def test_expired_and_non_interoperable_cards_refused(fleet: Fleet, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    expired = demo_card(80, balance=1_000, expiry_date=date(2025, 1, 1))
    assert "expired" in fleet.tap(expired, fleet.bus).message
    local = demo_card(81, balance=1_000, interop_type=b"\x00\x00")
    r = fleet.tap(local, fleet.bus)
    assert not r.green and "interoperable" in r.message and local.balance == 1_000


def test_hotlisted_card_is_blocked_with_psam_mac_then_refused(fleet: Fleet) -> None:
    card = fleet.cards[1]
    fleet.hotlist.apply(1, [card.serial])
    r = fleet.tap(card, fleet.bus)
    assert not r.green and "reported lost" in r.message and "blocked" in r.message
    assert card.state.blocked == "temporary" and card.balance == 5_000
    r = fleet.tap(card, fleet.entry)
    assert not r.green and r.message.startswith("card blocked")


def test_results_print_one_line(fleet: Fleet) -> None:
    line = fleet.tap(fleet.cards[0], fleet.bus).line()
    assert line.startswith("GREEN") and "¥2.00" in line and "ms" in line and "\n" not in line


def test_the_validator_keeps_going_after_a_bad_card(fleet: Fleet) -> None:
    class Junk:
        atr = b"\x3b\x00"

        def process(self, apdu: bytes) -> bytes:
            return b"\x6a\x82" if apdu[1] == 0xA4 else b"\x90\x00"

    fleet.reader.insert(Junk())  # type: ignore[arg-type]
    r = fleet.bus.tap()
    assert not r.green and "not a usable" in r.message
    assert fleet.tap(fleet.cards[0], fleet.bus).green


def test_capp_p1_and_bus_record_options(fleet: Fleet) -> None:
    from dataclasses import replace

    fleet.bus.config = replace(fleet.bus.config, bus_capp_record=True, capp_p1_from_record=False)
    card = fleet.cards[2]
    assert fleet.tap(card, fleet.bus).green
    assert card.state.capp["2702"][:6] == "27027D"
    assert c.SFI_CAPP_VARIABLE == 0x1A
