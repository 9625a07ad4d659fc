"""A card answering what it likes: the balance word with its top bit set
(docs/security.md, "Cards and traces").

Real cards answer GET BALANCE with ``8000164E``: the amount is the low 31 bits (57.10
yuan) and the top bit is a flag whose meaning is not public. It must be shown as a flag,
never as 21 million yuan, and no terminal may debit from a balance word it does not
understand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import demo_card, demo_card_number, demo_psam
from terminal.epurse import flows
from terminal.epurse.flows import BalanceFlagSet
from terminal.epurse.layouts import ModeRecord
from terminal.fares.engine import Mode
from terminal.journal import Journal
from terminal.layout import build, parse
from terminal.readers.sim import SimReader
from terminal.roles.onecard_pos import OneCardPos, PaymentRefused
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession
from tests.cli_kit import ykt
from tests.terminal.roles.fleet import CREDIT, RULES, Fleet

BALANCE = 5_710  # 0x164E; with the flag the card answers 8000164E


def flagged_card(number: int = 21) -> SoftEPurseCard:
    card = demo_card(number, balance=BALANCE)
    card.state.balance_flag = True
    return card


def flagged_card_file(tmp_path: Path) -> Path:
    path = tmp_path / "flagged.json"
    flagged_card().save(path)
    return path


def session_for(card: SoftEPurseCard, clock) -> TerminalSession:  # type: ignore[no-untyped-def]
    session = TerminalSession(SimReader(card), SimReader(demo_psam("310000000771")), clock=clock)
    session.start()
    return session


def test_the_card_really_answers_with_the_top_bit_set(clock) -> None:  # type: ignore[no-untyped-def]
    card = flagged_card()
    session = session_for(card, clock)
    session.card_reader.connect()
    session.run(flows.select())
    raw = session.card_reader.transmit(bytes.fromhex("805C000204"))
    assert raw.hex().upper() == "8000164E9000"


def test_read_shows_57_10_and_the_flag(tmp_path: Path) -> None:
    card = flagged_card_file(tmp_path)
    text = ykt("read", "--card", str(card))
    assert text.returncode == 0, text.stderr
    assert "Balance       ¥57.10 (flag set)" in text.stdout
    assert "21,474" not in text.stdout and "214748" not in text.stdout
    doc = json.loads(ykt("read", "--card", str(card), "--json").stdout)
    assert (doc["balance_fen"], doc["balance_flag"]) == (BALANCE, True)


def test_validator_refuses_a_flagged_card_and_journals_nothing(tmp_path: Path) -> None:
    card, journal = flagged_card_file(tmp_path), tmp_path / "j.db"
    r = ykt("validator", "--card", str(card), "--journal", str(journal), "--taps", "2")
    assert r.returncode == 0, r.stderr
    taps = [x for x in r.stdout.splitlines() if x.startswith(("GREEN", "RED"))]
    assert len(taps) == 2 and all(x.startswith("RED") for x in taps), r.stdout
    assert all("top bit set" in x and "not charged" in x for x in taps), taps
    assert json.loads(card.read_text())["state"]["balance"] == BALANCE
    with Journal(journal) as j:
        assert j.rows() == []


def test_a_fare_file_may_allow_the_flag_explicitly(tmp_path: Path) -> None:
    from terminal.fares import DEMO_FARES

    fares = tmp_path / "fares.toml"
    fares.write_text("allow_balance_flag = true\n" + DEMO_FARES.read_text())
    card, journal = flagged_card_file(tmp_path), tmp_path / "j.db"
    r = ykt("validator", "--fares", str(fares), "--card", str(card), "--journal", str(journal))
    assert r.returncode == 0, r.stderr
    assert json.loads(card.read_text())["state"]["balance"] == BALANCE - 200
    with Journal(journal) as j:
        assert j.totals()["settled"] == (1, 200)


def test_pos_refuses_a_flagged_card_and_journals_nothing(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    card = flagged_card()
    with Journal(tmp_path / "pos.db") as journal:
        pos = PointOfSale(session_for(card, clock), journal)
        with pytest.raises(BalanceFlagSet, match=r"top bit set \(INITIALIZE FOR PURCHASE\)"):
            pos.charge(150)
        assert journal.rows() == []
    assert (card.balance, card.state.offline_atc, card.state.log) == (BALANCE, 0, [])
    with Journal(tmp_path / "allowing.db") as journal:
        allowed = PointOfSale(session_for(card, clock), journal, allow_balance_flag=True)
        assert allowed.charge(150).balance_after == BALANCE - 150 == card.balance
        assert journal.totals()["settled"] == (1, 150)


def test_one_card_pos_refuses_the_ep_on_get_balance(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    from terminal.emv.ca_keys import CaKeyStore
    from terminal.emv.config import TerminalConfig
    from terminal.roles.onecard_pos import PaymentRule

    card = flagged_card()
    with Journal(tmp_path / "pos.db") as journal:
        pos = OneCardPos(
            session_for(card, clock), journal, TerminalConfig(), CaKeyStore(), PaymentRule(("ep",))
        )
        with pytest.raises(PaymentRefused, match="ep: the card's balance word has its top bit set"):
            pos.charge(150)
        assert journal.rows() == []
    assert (card.balance, card.state.offline_atc) == (BALANCE, 0)


# -- a card pulled away right after CREDIT FOR LOAD --------------------------------------------
KIOSK = "310000000090"


def _loads(gateway, serial: str) -> dict[str, tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    """The gateway's loads of the card: reference -> (state, amount, outbox rows)."""
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT l.reference, l.state, l.amount, (SELECT COUNT(*) FROM outbox o"
            " WHERE o.kind = 'load' AND o.ref_id = l.id) FROM loads l"
            " WHERE l.card_serial = ?",
            (serial,),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in cur.fetchall()}


def test_a_card_pulled_after_credit_then_a_kiosk_restart_cannot_keep_unbooked_money(
    gateway, clock, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The holder pulls the card the moment CREDIT FOR LOAD is sent; the kiosk loses power.
    The card holds the money but the gateway only an authorised load, which clearing never
    sees. At the card's next visit the restarted kiosk's journal names the load: the card
    is made to prove it (confirmed and booked for clearing), the holder's new top-up above
    the ceiling is refused in words, and a void of the credited load is refused."""
    from terminal.readers.sim import AFTER
    from terminal.roles.debit import LoadInterrupted
    from terminal.roles.kiosk import Kiosk, KioskConfig, TopUpRefused
    from terminal.roles.load_host import HttpLoadHost
    from terminal.uplink import GatewayClient, GatewayRefused

    client = GatewayClient(gateway.url, gateway.register(KIOSK, "card-centre", role="kiosk"))
    host = HttpLoadHost(client, sleep=lambda s: None)
    card = demo_card(66, balance=90_000)
    serial = card.serial.hex().upper()
    limits = KioskConfig(max_balance=100_000)
    path = tmp_path / "kiosk.db"
    reader = SimReader(card)
    with Journal(path) as journal:
        kiosk = Kiosk(
            TerminalSession(reader, clock=clock),
            host,
            bytes.fromhex(KIOSK),
            config=limits,
            journal=journal,
        )
        reader.tear_at_ins(CREDIT, AFTER)
        with pytest.raises(LoadInterrupted):
            kiosk.top_up(5_000)
    assert card.balance == 95_000
    ((ref, (state, amount, _)),) = _loads(gateway, serial).items()
    assert (state, amount) == ("authorized", 5_000)  # the hole the journal closes
    # power back; the same card comes back and asks for more than fits under the ceiling
    reader = SimReader(card)
    with Journal(path) as journal:
        kiosk = Kiosk(
            TerminalSession(reader, clock=clock),
            host,
            bytes.fromhex(KIOSK),
            config=limits,
            journal=journal,
        )
        with pytest.raises(TopUpRefused) as caught:
            kiosk.top_up(10_000)
        assert "the card holds ¥950.00 and at most ¥1000.00" in caught.value.reason
        (row,) = journal.load_rows()
        assert (row.reference, row.state, row["amount"]) == (ref, "settled", 5_000)
        assert row["tac"] is not None and journal.open_loads() == []
    assert card.balance == 95_000  # credited once, nothing more
    assert _loads(gateway, serial) == {ref: ("confirmed", 5_000, 1)}  # booked for clearing
    with pytest.raises(GatewayRefused) as void:
        host.void_challenge(ref)
    assert (void.value.status, void.value.code) == (409, "load_confirmed")
    assert "cannot be void" in void.value.reason
    client.close()


# -- forged trip records: a bike rent mark cleared, a parking entry moved forward -----------
# A card's 0x1A records are written by UPDATE CAPP DATA CACHE and covered by no MAC, so a
# hostile card can answer any record it likes. What it claims about an opening (a rent, an
# entry) is believed only when its 0x18 log, which the COS keeps at every DEBIT, holds the
# debit that wrote it; else the journal's opening is used, else the full charge or a refusal.


def forge(card: SoftEPurseCard, record_no: int, **changes: object) -> None:
    """The card now answers its 27xx record with ``changes`` (nothing else moves)."""
    rid = f"27{record_no:02X}"
    rec = dict(parse(ModeRecord, bytes.fromhex(card.state.capp[rid]), rid))
    rec.pop("_io", None)
    for const in ("tag", "length"):
        rec.pop(const)
    rec.update(changes)
    card.state.capp[rid] = build(ModeRecord, **rec).hex().upper()


def modes_fleet(tmp_path: Path, clock, name: str = "j.db") -> Fleet:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / name, clock)
    f.add_cards(1, balance=20_000)
    return f


def rows(f: Fleet) -> list[tuple[str, int, str]]:
    return [(r.context["mode"], r.amount, r.state) for r in f.journal.rows()]


def test_bike_mark_cleared_then_returned_at_the_same_station_pays_from_the_journal(
    tmp_path: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    f = modes_fleet(tmp_path, clock)
    card = f.cards[0]
    assert f.tap(card, f.gate(Mode.BIKE_RENT, "0301")).green
    clock.advance(hours=3)
    forge(card, 0x06, status=0, open_time=None)
    r = f.tap(card, f.gate(Mode.BIKE_RETURN, "0302"))
    assert r.green and r.fare == 300  # 3 hours: the table's 300, as if the mark were there
    assert card.balance == 19_700
    assert rows(f) == [("bike-rent", 0, "settled"), ("bike-return", 300, "settled")]
    assert f.journal.rows()[-1].context["rented"] == (clock.now - timedelta(hours=3)).isoformat()
    f.check_invariants()


def test_bike_mark_cleared_then_returned_at_another_station_pays_the_maximum(
    tmp_path: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    rent_station = modes_fleet(tmp_path, clock, "a.db")
    card = rent_station.cards[0]
    assert rent_station.tap(card, rent_station.gate(Mode.BIKE_RENT, "0301")).green
    clock.advance(minutes=30)
    forge(card, 0x06, status=0)
    other = Fleet(tmp_path / "b.db", clock)
    r = other.tap(card, other.gate(Mode.BIKE_RETURN, "0305"))
    assert r.green and r.fare == 2_000 and "no rent found: maximum fee" in r.notes
    assert card.balance == 18_000
    assert rows(other) == [("bike-return", 2_000, "settled")]


def test_bike_rent_time_moved_forward_is_not_believed(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    f = modes_fleet(tmp_path, clock)
    card = f.cards[0]
    rented = clock.now
    f.tap(card, f.gate(Mode.BIKE_RENT, "0301"))
    clock.advance(hours=3)
    forge(card, 0x06, open_time=clock.now - timedelta(minutes=10))  # "rented 10 min ago"
    r = f.tap(card, f.gate(Mode.BIKE_RETURN, "0302"))
    assert r.green and r.fare == 300  # 3 hours, not the 10 minutes' 0
    assert "the card's opening is not in its transaction log" in r.notes
    assert f.journal.rows()[-1].context["rented"] == rented.isoformat()
    f.check_invariants()


def test_bike_mark_cleared_cannot_rent_a_second_bike_here(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    f = modes_fleet(tmp_path, clock)
    card = f.cards[0]
    f.tap(card, f.gate(Mode.BIKE_RENT, "0301"))
    clock.advance(minutes=5)
    forge(card, 0x06, status=0, close_time=clock.now, charged=0)  # a return that never was
    atc = card.state.offline_atc
    r = f.tap(card, f.gate(Mode.BIKE_RENT, "0302"))
    assert not r.green and "already renting" in r.message and "not returned" in r.message
    assert (card.state.offline_atc, card.balance) == (atc, 20_000)
    assert rows(f) == [("bike-rent", 0, "settled")]


def test_bike_deposit_hold_inflated_on_the_card_is_not_credited(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    held = replace(
        RULES,
        modes=replace(
            RULES.modes, bike=replace(RULES.modes.bike, deposit=1_000, deposit_mode="hold")
        ),
    )
    other = Fleet(tmp_path / "b.db", clock)
    f = modes_fleet(tmp_path, clock)
    card = f.cards[0]
    rent = f.gate(Mode.BIKE_RENT, "0301")
    rent.config = replace(rent.config, rules=held)
    assert f.tap(card, rent).fare == 1_000
    clock.advance(hours=2)
    forge(card, 0x06, held=9_000)  # "I left 90 yuan with you"
    back = other.gate(Mode.BIKE_RETURN, "0305")
    back.config = replace(back.config, rules=held)
    r = other.tap(card, back)
    assert r.green and r.fare == 2_000 and "no rent found: maximum fee" in r.notes
    assert card.balance == 20_000 - 1_000 - 2_000
    assert rows(other) == [("bike-return", 2_000, "settled")]


def test_parking_entry_moved_forward_pays_from_the_car_parks_journal(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    f = modes_fleet(tmp_path, clock)
    card = f.cards[0]
    f.tap(card, f.gate(Mode.PARKING_ENTRY, "0401"))
    clock.advance(hours=9)
    forge(card, 0x07, open_time=clock.now - timedelta(minutes=10))  # "parked 10 min ago"
    r = f.tap(card, f.gate(Mode.PARKING_EXIT, "0402"))
    assert r.green and r.fare == 3_100  # 9 hours (600 + 400 + 7 x 300), not 10 min's 0
    assert "the card's opening is not in its transaction log" in r.notes
    assert rows(f) == [("parking-entry", 0, "settled"), ("parking-exit", 3_100, "settled")]
    assert card.balance == 16_900
    f.check_invariants()


def test_parking_entry_moved_forward_with_no_journal_is_refused(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    entry = modes_fleet(tmp_path, clock, "entry.db")
    card = entry.cards[0]
    entry.tap(card, entry.gate(Mode.PARKING_ENTRY, "0401"))
    clock.advance(hours=9)
    forge(card, 0x07, open_time=clock.now - timedelta(minutes=10))
    exit_gate = Fleet(tmp_path / "exit.db", clock)
    atc = card.state.offline_atc
    r = exit_gate.tap(card, exit_gate.gate(Mode.PARKING_EXIT, "0402"))
    assert not r.green and "not in its transaction log" in r.message
    assert "see the attendant" in r.message
    assert (card.state.offline_atc, card.balance) == (atc, 20_000)
    assert exit_gate.journal.rows() == []


def test_parking_entry_in_the_future_is_refused(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    entry = modes_fleet(tmp_path, clock, "entry.db")
    card = entry.cards[0]
    entry.tap(card, entry.gate(Mode.PARKING_ENTRY, "0401"))
    clock.advance(hours=2)
    forge(card, 0x07, open_time=clock.now + timedelta(hours=1))
    exit_gate = Fleet(tmp_path / "exit.db", clock)
    r = exit_gate.tap(card, exit_gate.gate(Mode.PARKING_EXIT, "0402"))
    assert not r.green and "opening time is in the future" in r.message
    assert card.balance == 20_000 and exit_gate.journal.rows() == []


# -- a card swapped under a torn debit --------------------------------------------------------
# Recovery decides from the card in the field whether a torn DEBIT committed. The card
# must be the one torn: an 8-byte serial is unique within an issuer only, so a card of
# another issuer with the same serial is another card, and its counter says nothing.


def twin_of(number: int, balance: int) -> SoftEPurseCard:
    """A Beijing card whose 0x15 carries the Shanghai demo card ``number``'s serial."""
    from simulators.profiles import DEMO_ISSUERS, CardProfile, demo_keyset, issue_card

    shanghai, beijing = DEMO_ISSUERS["shanghai"], DEMO_ISSUERS["beijing"]
    profile = CardProfile(
        card_number=demo_card_number(shanghai, number), issuer_id=beijing, balance=balance
    )
    return issue_card(profile, demo_keyset(beijing))


def test_a_card_of_another_issuer_with_the_same_serial_cannot_void_a_torn_debit(
    tmp_path: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    """Card A's sale is torn after DEBIT committed (A paid 1000 fen, the row stays open).
    Card B of another issuer, same serial, same offline counter as A had, pays at the same
    POS: its counter "still 0" must not void A's row. A's next tap completes A's sale."""
    from terminal.readers.sim import AFTER
    from terminal.roles.debit import PaymentInterrupted
    from tests.terminal.roles.fleet import DEBIT

    a, b = demo_card(31, balance=5_000), twin_of(31, balance=5_000)
    reader = SimReader(a)
    session = TerminalSession(reader, SimReader(demo_psam("310000000771")), clock=clock)
    session.start()
    with Journal(tmp_path / "pos.db") as journal:
        pos = PointOfSale(session, journal)
        assert session.run(flows.select()).serial == b.serial  # the twin really is one
        reader.tear_at_ins(DEBIT, AFTER)
        with pytest.raises(PaymentInterrupted):
            pos.charge(1_000)
        assert a.balance == 4_000  # A paid; only its row proves it
        reader.insert(b)
        sale = pos.charge(500)
        assert (sale.row.issuer_id, sale.row.state, b.balance) == (
            b.issuer_id.hex().upper(),
            "settled",
            4_500,
        )
        assert sale.recovered == ()  # B resolved nothing of A's
        (open_row,) = journal.open_rows()
        assert (open_row.issuer_id, open_row.amount) == (a.issuer_id.hex().upper(), 1_000)
        reader.insert(a)
        again = pos.charge(1_000)  # A comes back within the window: the same sale, completed
        assert again.completed and again.row.state == "settled" and again.row.tac
    assert a.balance == 4_000 and b.balance == 4_500  # each paid once
    with Journal(tmp_path / "pos.db") as journal:
        assert journal.totals()["settled"] == (2, 1_500) and journal.totals()["void"] == (0, 0)


# -- a card claiming a torn debit it cannot prove -----------------------------------------------
# A torn sale is recovered from what the card proves (GET TRANSACTION PROVE). A card without
# the purchase key can answer PROVE with any eight bytes; while the PSAM still holds the torn
# sale's session key (no INIT SAM FOR PURCHASE since), it checks the MAC2 and the made-up
# proof is refused: the sale is not paid.


class ForgedProof:
    """A card that answers GET TRANSACTION PROVE with a proof it made up."""

    def __init__(self, inner: SoftEPurseCard):
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def process(self, apdu: bytes) -> bytes:
        from terminal.epurse.commands import Ins

        if apdu[1] == Ins.GET_TRANSACTION_PROVE:
            return bytes.fromhex("0BADC0DE0BADF00D9000")
        return self.inner.process(apdu)


def test_a_made_up_proof_of_a_torn_sale_is_refused_and_not_paid(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """The card's DEBIT answer is lost; at its re-tap it claims the debit committed with a
    forged MAC2. The PSAM (still holding that sale's session) refuses it: the clerk is told
    the sale is NOT paid, the row is suspect with the reason, nothing else is charged and
    nothing is uploaded as settled."""
    from terminal.apdu.errors import CardError
    from terminal.words import sale_refusal, say, sentence

    card = ForgedProof(demo_card(41, balance=5_000))
    with torn_sale(tmp_path, clock, card, PointOfSale) as (pos, journal):
        balance = card.inner.balance
        with pytest.raises(CardError) as refused:
            pos.charge(1_000)
        assert refused.value.sw == 0x9302
        assert "NOT paid" in str(refused.value)
        assert sale_refusal(refused.value) == say("sale.proof_refused")
        assert "NOT paid" in sentence("sale.proof_refused", "en")
        (row,) = journal.rows()  # no second sale was started
        assert row.state == "suspect" and not row.mac2_verified
        assert "PSAM refused its MAC2" in (row.resolution or "")
        assert row.mac2 == "0BADC0DE" and row.tac == "0BADF00D"  # kept for clearing
        assert journal.totals()["settled"] == (0, 0)
        assert card.inner.balance == balance  # the re-tap took nothing


def one_card_pos(session: TerminalSession, journal: Journal) -> OneCardPos:
    """A one-card POS trying the purse first, then Electronic Cash."""
    from terminal.roles.onecard_pos import PaymentRule
    from tests.terminal.emv.helpers import CONFIG, STORE

    return OneCardPos(session, journal, CONFIG, STORE, PaymentRule(("ep", "ec")))


@contextmanager
def torn_sale(
    tmp_path: Path, clock: Any, card: Any, pos_of: Callable[[TerminalSession, Journal], Any]
) -> Iterator[tuple[Any, Journal]]:
    """A POS (``pos_of``) whose 10.00 EP sale on ``card`` was torn after DEBIT (the card
    paid, its answer lost); the card presented again. Yields the POS and its journal."""
    from terminal.readers.sim import AFTER
    from terminal.roles.debit import PaymentInterrupted
    from tests.terminal.roles.fleet import DEBIT

    reader = SimReader(card)
    session = TerminalSession(reader, SimReader(demo_psam("310000000771")), clock=clock)
    session.start()
    with Journal(tmp_path / "pos.db") as journal:
        pos = pos_of(session, journal)
        reader.tear_at_ins(DEBIT, AFTER)
        with pytest.raises(PaymentInterrupted):
            pos.charge(1_000)
        reader.insert(card)
        yield pos, journal


def test_a_resident_card_with_a_made_up_proof_is_not_charged_from_ec_instead(
    tmp_path: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    """At the one-card POS (EP first, then EC) a resident card's EP sale is torn after
    DEBIT; at the re-tap the card forges the proof. The refusal reaches the clerk as "NOT
    paid"; the POS does not take it as a card refusal and go on to charge Electronic
    Cash: nothing else is charged in this tap."""
    from simulators.emv_profiles import resident_card
    from terminal.roles.debit import RecoveredProofRefused

    card = resident_card(43, ec_balance=6_000, ep_balance=5_000)
    with torn_sale(tmp_path, clock, ForgedProof(card), one_card_pos) as (pos, journal):
        with pytest.raises(RecoveredProofRefused, match="NOT paid"):
            pos.charge(1_000)
        (row,) = journal.rows()
        assert row.state == "suspect" and "PSAM refused its MAC2" in (row.resolution or "")
        assert journal.ec_rows() == [] and journal.totals()["settled"] == (0, 0)
    assert card.app("emv").ec_balance == 6_000  # EC was not charged in its place


def test_a_torn_ep_sale_retried_under_another_rule_is_not_charged_again_from_ec(
    tmp_path: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    """A resident card's EP sale is torn after DEBIT (the card paid 10.00). The customer
    presents it again and the cashier retries the same sale with EC first (the register's
    rule for a sale, or EC approving offline this time where it declined before): the POS
    finds the torn EP sale paid and completes it; EC is not charged a second time."""
    from simulators.emv_profiles import resident_card
    from terminal.roles.onecard_pos import PaymentRule

    card = resident_card(44, ec_balance=6_000, ep_balance=5_000)
    with torn_sale(tmp_path, clock, card, one_card_pos) as (pos, journal):
        assert card.app("epurse").card.balance == 4_000  # the card paid
        clock.advance(seconds=20)
        sale = pos.charge(1_000, PaymentRule(("ec", "ep")))
        assert (sale.source, sale.completed) == ("ep", True)
        assert sale.ep is not None and sale.ep.row.state == "settled"
        assert journal.ec_rows() == [] and journal.totals()["settled"] == (1, 1_000)
        assert journal.open_rows() == []
    assert card.app("emv").ec_balance == 6_000  # EC was not charged for the same sale
    assert card.app("epurse").card.balance == 4_000


def test_a_genuine_torn_sale_is_settled_with_its_mac2_checked(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """The same tear with a genuine card: its proof passes the PSAM, the sale is completed
    once and the row is settled with MAC2 verified."""
    card = demo_card(42, balance=5_000)
    with torn_sale(tmp_path, clock, card, PointOfSale) as (pos, journal):
        sale = pos.charge(1_000)
        assert sale.completed and sale.row.state == "settled" and sale.row.mac2_verified
        assert "MAC2 verified by the PSAM" in (sale.row.resolution or "")
        assert journal.totals()["settled"] == (1, 1_000) and len(journal.rows()) == 1
    assert card.balance == 4_000
