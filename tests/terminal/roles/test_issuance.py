"""The issuance desk: new cards, refusals, replacement with the balance carried over, and a
card pulled away after every APDU of an issuance and of a replacement."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from string import Formatter

import pytest

from gateway.cards import CarryRules
from gateway.hsm import HostSecurityModule, LocalLoadHost
from gateway.registry import DEFAULT_FIRST_SEQUENCE, SqliteCardRegistry
from simulators.blank_card import SoftBlankCard
from simulators.profiles import demo_card, demo_psam
from terminal.apdu.errors import ApplicationBlocked, FileNotFound, TransportError
from terminal.cos.layouts import LifeCycle
from terminal.epurse import flows, perso
from terminal.epurse.commands import TxnType
from terminal.epurse.host import LoadHost
from terminal.epurse.perso import PersoError
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.identity import IdNumberError
from terminal.journal import Journal
from terminal.journal.journal import SETTLED
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles.debit import CreditPath
from terminal.roles.issuance import (
    CARRY_PURPOSE,
    CardAlreadyIssued,
    DeskConfig,
    IssuanceDesk,
    IssuanceError,
    IssuanceRefusal,
)
from terminal.roles.kiosk import Kiosk
from terminal.roles.load_host import HttpLoadHost
from terminal.roles.registry import Applicant, CardState, DuplicateCard
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator, ValidatorConfig
from terminal.uplink import GatewayClient
from terminal.uplink.issuance import GatewayCardBook, GatewayCentre, PushResult
from terminal.words import CATALOGUE
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer, start_gateway
from tests.issuance_kit import SHANGHAI, VALID_ID, new_blank, perso_hsm
from tests.subsidy_kit import id_number
from tests.terminal.cli.test_words import english

DESK_ID = bytes.fromhex("310000000080")
KIOSK_ID = bytes.fromhex("310000000090")
ZHANG = Applicant("张三", VALID_ID)
LI = "110101199003074514"


@dataclass(frozen=True)
class Online:
    """A real gateway with the desk's and the kiosk's credentials."""

    gw: GatewayServer
    desk_token: str
    kiosk_token: str


@dataclass
class CardCentre:
    """A desk, its registry and HSM, a kiosk, and a bus validator sharing the hotlist. With
    a gateway (``online``) the desk carries balances through its journaled credit path and
    the kiosk tops up through the gateway; without one the desk has no credit path."""

    clock: FrozenClock
    tmp: Path
    online: Online | None = None
    first_sequence: int = DEFAULT_FIRST_SEQUENCE
    hsm: HostSecurityModule = field(init=False)
    registry: SqliteCardRegistry = field(init=False)
    hotlist: Hotlist = field(init=False)
    kiosk_host: LoadHost = field(init=False)
    desk_reader: SimReader = field(init=False)
    desk: IssuanceDesk = field(init=False)
    journal: Journal | None = None
    book: GatewayCardBook = field(init=False)

    def __post_init__(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.hsm = perso_hsm(self.clock)
        self.registry = SqliteCardRegistry(clock=self.clock, first_sequence=self.first_sequence)
        self.hotlist = Hotlist()
        self.desk_reader = SimReader(name="desk")
        session = TerminalSession(self.desk_reader, clock=self.clock)
        credits = centre = None
        if self.online is None:
            self.kiosk_host = LocalLoadHost(self.hsm)
        else:
            url = self.online.gw.url
            self.kiosk_host = HttpLoadHost(GatewayClient(url, self.online.kiosk_token))
            self.journal = Journal(self.tmp / "desk.db", clock=self.clock)
            desk_client = GatewayClient(url, self.online.desk_token)
            credits = CreditPath(session, self.journal, HttpLoadHost(desk_client))
            centre = GatewayCentre(desk_client)
            # the whole book each time: the tests open several books for one desk id
            self.book = GatewayCardBook(desk_client, lambda since: self.registry.export(0))
        self.desk = IssuanceDesk(
            session,
            self.hsm,
            self.registry,
            DeskConfig(SHANGHAI, DESK_ID),
            credits=credits,
            hotlist=self.hotlist,
            centre=centre,
        )
        self.tap_reader = SimReader(name="bus")
        self.kiosk_reader = SimReader(name="kiosk")
        self.kiosk = TerminalSession(self.kiosk_reader, clock=self.clock)

    @cached_property
    def bus(self) -> Validator:
        session = TerminalSession(
            self.tap_reader, SimReader(demo_psam("310000000201")), clock=self.clock
        )
        session.start()
        return Validator(
            session,
            Journal(self.tmp / "bus.db", clock=self.clock),
            self.hotlist,
            ValidatorConfig(mode=Mode.BUS, rules=load_rules(), station="0001"),
        )

    def at_desk(self, card: object) -> None:
        self.desk_reader.insert(card)  # type: ignore[arg-type]

    def tap(self, card: object):  # type: ignore[no-untyped-def]
        self.tap_reader.insert(card)  # type: ignore[arg-type]
        return self.bus.tap()

    def top_up(self, card: object, amount: int) -> int:
        self.kiosk_reader.insert(card)  # type: ignore[arg-type]
        s = self.kiosk
        info = s.run(flows.select())
        return s.run(flows.load(info, KIOSK_ID, amount, s.now(), self.kiosk_host)).balance_after

    def live_records(self, id_number: str = VALID_ID) -> list:  # type: ignore[type-arg]
        return [r for r in self.registry.by_id_number(id_number) if r.state != CardState.VOID]

    def desk_loads(self, card_serial: str) -> list[tuple[str, int, str]]:
        """The gateway's loads by this desk onto one card: (reference, amount, state)."""
        assert self.online is not None
        with self.online.gw.db.tx() as cur:
            cur.execute(
                "SELECT reference, amount, state FROM loads WHERE terminal_id = ?"
                " AND card_serial = ? ORDER BY id",
                (DESK_ID.hex().upper(), card_serial),
            )
            return [(r, int(a), st) for r, a, st in cur.fetchall()]


@pytest.fixture
def centre(clock: FrozenClock, tmp_path: Path) -> CardCentre:
    return CardCentre(clock, tmp_path)


@pytest.fixture
def online(db, clock: FrozenClock) -> Iterator[Online]:  # type: ignore[no-untyped-def]
    """A gateway (that vouches for a lost card's balance once it is hotlisted) with the
    desk's and the kiosk's credentials: the desk claims its numbers there and pushes its
    book, so the gateway knows the replacement whose carried balance it authorises."""
    gateway = start_gateway(db, clock, carry=SETTLED_AT_ONCE)
    yield Online(
        gateway,
        gateway.register(DESK_ID.hex(), "card-centre", "issuance"),
        gateway.register(KIOSK_ID.hex(), "card-centre", "kiosk"),
    )
    gateway.server.stop()


@pytest.fixture
def online_centre(clock: FrozenClock, tmp_path: Path, online: Online) -> CardCentre:
    return CardCentre(clock, tmp_path, online)


def test_a_new_card_is_registered_and_works_at_kiosk_and_bus(centre: CardCentre) -> None:
    card = new_blank(1)
    centre.at_desk(card)
    issued = centre.desk.issue(ZHANG)
    assert card.activated and not issued.resumed
    assert issued.record.state == CardState.ACTIVE and issued.record.chip_id == card.chip_id
    assert issued.snapshot.info.card_number == issued.record.card_number
    assert issued.snapshot.holder is not None and issued.snapshot.holder.name == "张三"
    assert issued.snapshot.balance == 0
    assert centre.top_up(card, 1_000) == 1_000
    tap = centre.tap(card)
    assert tap.green and tap.balance == 800


def test_the_same_id_number_cannot_get_a_second_card_of_a_kind(centre: CardCentre) -> None:
    centre.at_desk(new_blank(1))
    first = centre.desk.issue(ZHANG).record
    second = new_blank(2)
    centre.at_desk(second)
    with pytest.raises(DuplicateCard, match=first.card_number):
        centre.desk.issue(Applicant("张三", VALID_ID.lower()))  # same number, lowercase x
    assert second.life_cycle == LifeCycle.CREATION  # nothing was written
    student = centre.desk.issue(Applicant("张三", VALID_ID, card_kind=2))
    assert student.snapshot.management is not None
    assert student.snapshot.management.card_kind == 2


@pytest.mark.parametrize(
    ("applicant", "error"),
    [
        (Applicant("张三", "110105194912310021"), IdNumberError),  # wrong check character
        (Applicant("张三", "11010519490231002X"), IdNumberError),  # 31 February
        (Applicant("张三丰张三丰张三丰张三丰", VALID_ID), PersoError),  # 24 bytes of GBK
        (Applicant("Zoë 😀", VALID_ID), PersoError),  # not writable in GBK
    ],
)
def test_bad_applicants_are_refused_before_a_number_is_taken(
    centre: CardCentre, applicant: Applicant, error: type[Exception]
) -> None:
    card = new_blank(1)
    centre.at_desk(card)
    with pytest.raises(error):
        centre.desk.issue(applicant)
    assert centre.registry.export() == [] and card.life_cycle == LifeCycle.CREATION


def test_an_operational_card_that_is_not_ours_is_refused(centre: CardCentre) -> None:
    centre.at_desk(demo_card(5))
    with pytest.raises(CardAlreadyIssued, match="already personalised") as raised:
        centre.desk.issue(ZHANG)
    assert raised.value.code == IssuanceRefusal.PERSONALISED


def test_replacement_hotlists_the_lost_card_and_carries_its_balance(
    online_centre: CardCentre,
) -> None:
    centre = online_centre
    old_card = new_blank(1)
    centre.at_desk(old_card)
    old = centre.desk.issue(ZHANG).record
    centre.top_up(old_card, 4_800)
    centre.clock.advance(hours=1)

    new_card = new_blank(2)
    centre.at_desk(new_card)
    issued = centre.desk.replace(old.card_number, card_book=centre.book)

    assert old.serial in centre.hotlist
    assert issued.record.replaces == old.card_number and issued.record.carry_fen == 4_800
    assert issued.snapshot.balance == 4_800 and new_card.purse.balance == 4_800  # type: ignore[union-attr]
    assert issued.carried is not None and issued.carried.request.terminal_id == DESK_ID
    newest = issued.snapshot.log[0]
    assert (newest.txn_type, newest.amount, newest.terminal_id) == (TxnType.EP_LOAD, 4_800, DESK_ID)
    # one load at the gateway, confirmed with the card's TAC, and the desk's journal agrees
    [(reference, amount, state)] = centre.desk_loads(issued.snapshot.info.serial_hex)
    assert (amount, state) == (4_800, "confirmed")
    assert centre.journal is not None and centre.journal.open_loads() == []
    [row] = centre.journal.load_rows()
    assert (row.reference, row.state, row["purpose"]) == (reference, SETTLED, CARRY_PURPOSE)
    assert row["tac"] == issued.carried.tac.hex().upper()
    book = centre.registry.get(old.card_number)
    assert (book.state, book.replaced_by) == (CardState.REPLACED, issued.record.card_number)

    centre.clock.advance(minutes=5)
    refused = centre.tap(old_card)
    assert not refused.green and refused.message == "card reported lost: blocked"
    with pytest.raises(ApplicationBlocked):
        centre.tap_reader.connect()
        centre.bus.session.run(flows.select())
    ride = centre.tap(new_card)
    assert ride.green and ride.balance == 4_600


def test_a_replacement_without_a_hotlist_is_refused(centre: CardCentre) -> None:
    centre.at_desk(new_blank(1))
    old = centre.desk.issue(ZHANG).record
    centre.desk.hotlist = None
    centre.at_desk(new_blank(2))
    with pytest.raises(Exception, match="hotlisted"):
        centre.desk.replace(old.card_number)
    assert centre.registry.get(old.card_number).state == CardState.LOST


def _assert_incomplete_card_is_refused(centre: CardCentre, card: SoftBlankCard) -> None:
    """A card left unfinished says so at the desk and is refused by terminals."""
    centre.desk_reader.insert(card)
    centre.desk_reader.connect()
    probe = centre.desk.session.run(perso.probe())
    assert probe.life_cycle in (LifeCycle.CREATION, LifeCycle.INITIALISATION)
    with pytest.raises((ApplicationBlocked, FileNotFound)):
        centre.desk.session.run(flows.select())


@pytest.mark.parametrize("when", [BEFORE, AFTER])
def test_issuance_interrupted_after_any_apdu_is_detected_and_restarts(
    clock: FrozenClock, tmp_path: Path, when: str
) -> None:
    probe_centre = CardCentre(clock, tmp_path)
    probe_centre.at_desk(new_blank(1))
    probe_centre.desk.issue(ZHANG)
    total = probe_centre.desk_reader.exchanges
    assert total >= 25
    for index in range(total):
        centre = CardCentre(clock, tmp_path / f"{when}-{index}")
        card = new_blank(1)
        centre.at_desk(card)
        centre.desk_reader.tear_at(index, when)
        with pytest.raises(TransportError):
            centre.desk.issue(ZHANG)
        pending = centre.live_records()
        assert all(r.state == CardState.PENDING for r in pending)
        left = card.life_cycle
        if not card.activated:
            _assert_incomplete_card_is_refused(centre, card)
        centre.at_desk(card)
        issued = centre.desk.issue(ZHANG)
        assert card.activated and issued.record.state == CardState.ACTIVE
        assert [r.card_number for r in centre.live_records()] == [issued.record.card_number]
        if pending:  # the number taken before the cut is the one the card got
            assert pending[0].card_number == issued.record.card_number
        assert issued.resumed == (left != LifeCycle.CREATION)
        assert centre.top_up(card, 300) == 300, (index, when)


@pytest.mark.parametrize("when", [BEFORE, AFTER])
def test_replacement_interrupted_after_any_apdu_carries_the_balance_exactly_once(
    clock: FrozenClock, tmp_path: Path, online: Online, when: str
) -> None:
    """Cut the card after (or before) every APDU of a replacement, carried load included:
    the next visit finishes it, the balance is carried once, the gateway's loads and the
    desk's journal agree and nothing is left open."""
    runs = iter(range(10_000))

    def lost_card_centre(name: str) -> tuple[CardCentre, str]:
        run = next(runs)
        first = DEFAULT_FIRST_SEQUENCE + 10 * run  # a new card serial at the gateway
        centre = CardCentre(clock, tmp_path / name, online, first)
        old_card = new_blank(1)
        centre.at_desk(old_card)
        old = centre.desk.issue(Applicant(ZHANG.name, id_number(run + 1))).record  # a holder each
        centre.top_up(old_card, 2_500)
        return centre, old.card_number

    centre, old_number = lost_card_centre("probe")
    centre.at_desk(new_blank(2))
    start = centre.desk_reader.exchanges
    centre.desk.replace(old_number, card_book=centre.book)
    total = centre.desk_reader.exchanges - start
    assert total >= 30
    found_loaded: list[bool] = []
    for index in range(total):
        centre, old_number = lost_card_centre(f"{when}-{index}")
        card = new_blank(2)
        centre.at_desk(card)
        centre.desk_reader.tear_at(index, when)
        with pytest.raises(TransportError):
            centre.desk.replace(old_number, card_book=centre.book)
        assert centre.registry.get(old_number).state == CardState.LOST
        centre.at_desk(card)
        issued = centre.desk.replace(old_number, card_book=centre.book)
        assert card.purse is not None and card.purse.balance == 2_500, (index, when)
        assert issued.record.carry_loaded_at is not None
        assert centre.registry.get(old_number).state == CardState.REPLACED
        loads = [e for e in issued.snapshot.log if e.txn_type == TxnType.EP_LOAD]
        assert len(loads) == 1 and loads[0].amount == 2_500
        found_loaded.append(issued.carried is None)
        # the gateway's loads by this desk and its journal agree, one confirmed, none open
        assert centre.journal is not None and centre.journal.open_loads() == []
        at_gateway = {
            ref: (amount, state)
            for ref, amount, state in centre.desk_loads(issued.snapshot.info.serial_hex)
        }
        in_journal = {
            r.reference: (r["amount"], "confirmed" if r.state == SETTLED else r.state)
            for r in centre.journal.load_rows()
        }
        assert at_gateway == in_journal, (index, when)
        assert sorted(at_gateway.values()).count((2_500, "confirmed")) == 1
        assert all(state in ("confirmed", "void") for _, state in at_gateway.values())
    # some cuts came after the card had credited: the desk found the balance, loaded nothing
    assert any(found_loaded) and not all(found_loaded)


def test_an_offline_desk_refuses_a_replacement_with_a_balance_to_carry(
    centre: CardCentre,
) -> None:
    """Without the gateway's journaled load the desk carries nothing: refused before any
    card work, the old card's balance stays on the book for a desk that can carry it."""
    old_card = new_blank(1)
    centre.at_desk(old_card)
    old = centre.desk.issue(ZHANG).record
    centre.top_up(old_card, 2_500)
    centre.registry.report_balance(old.card_number, 2_500, centre.clock.now)
    new_card = new_blank(2)
    centre.at_desk(new_card)
    with pytest.raises(IssuanceError, match=r"balance of 2500 fen is carried only through") as e:
        centre.desk.replace(old.card_number)
    assert (e.value.code, e.value.fields["balance"]) == (IssuanceRefusal.CARRY_OFFLINE, 2_500)
    assert new_card.life_cycle == LifeCycle.CREATION  # no card work at all
    book = centre.registry.get(old.card_number)
    assert book.replaced_by is None and book.balance_fen == 2_500
    assert [r.card_number for r in centre.live_records()] == [old.card_number]


# -- a batch ------------------------------------------------------------------------------------
@dataclass
class BlankCards:
    """The desk's card feeder: a fresh blank chip per row, and what happened to each row."""

    centre: CardCentre
    chips: dict[int, SoftBlankCard] = field(default_factory=dict)
    events: list[tuple[str, int]] = field(default_factory=list)

    def present(self, line: int) -> None:
        self.chips[line] = new_blank(line)
        self.centre.at_desk(self.chips[line])
        self.events.append(("present", line))

    def refused(self, line: int) -> None:
        self.events.append(("refused", line))

    def issued(self, line: int, card_number: str) -> str:
        self.events.append(("issued", line))
        return f"chip-{line}"


def test_a_batch_issues_every_good_row_and_reports_why_the_others_were_refused(
    centre: CardCentre,
) -> None:
    rows = [
        (2, {"name": "张三", "id_number": VALID_ID, "card_kind": "1", "pin": ""}),
        (3, {"name": "王五", "id_number": "110105194912310021", "card_kind": "1"}),
        (4, {"name": "李四", "id_number": LI, "card_kind": "x"}),
        (5, {"name": "李四", "id_number": LI, "card_kind": "2", "pin": "2468"}),
        (6, {"name": "张三", "id_number": VALID_ID, "card_kind": "1"}),
    ]
    feeder = BlankCards(centre)
    seen: list[int] = []
    results = centre.desk.issue_batch(rows, feeder, done=lambda r: seen.append(r.row))

    assert [(r.row, r.status) for r in results] == [
        (2, "ok"),
        (3, "refused"),
        (4, "refused"),
        (5, "ok"),
        (6, "refused"),
    ]
    assert seen == [2, 3, 4, 5, 6]
    assert "IdNumberError" in (results[1].reason or "") and "check character" in (
        results[1].reason or ""
    )
    assert results[2].reason == "ValueError: card_kind 'x' is not a number"
    assert (results[4].reason or "").startswith("DuplicateCard")
    # bad data is refused before a card is asked for; a duplicate before the card is written
    assert feeder.events == [
        ("present", 2),
        ("issued", 2),
        ("refused", 3),
        ("refused", 4),
        ("present", 5),
        ("issued", 5),
        ("present", 6),
        ("refused", 6),
    ]
    assert feeder.chips[2].activated and feeder.chips[5].activated
    assert feeder.chips[6].life_cycle == LifeCycle.CREATION
    assert results[3].to_json() == {
        "row": 5,
        "name": "李四",
        "status": "ok",
        "card_number": results[3].card_number,
        "file": "chip-5",
    }
    assert results[2].to_json() == {
        "row": 4,
        "name": "李四",
        "status": "refused",
        "reason": "ValueError: card_kind 'x' is not a number",
    }
    live = {r.card_number for r in centre.live_records(VALID_ID) + centre.live_records(LI)}
    assert live == {results[0].card_number, results[3].card_number}


# -- a replacement the gateway vouches for ------------------------------------------------------
DESK = "310000000080"
KIOSK = "310000000090"


@dataclass
class GatewayDesk:
    """A desk on the real clock keeping a real gateway's card book, with one issued card
    that a kiosk topped up through that gateway."""

    gw: GatewayServer
    tmp: Path
    registry: SqliteCardRegistry = field(init=False)
    desk: IssuanceDesk = field(init=False)
    book: GatewayCardBook = field(init=False)
    pushes: list[PushResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        hsm = perso_hsm(datetime.now)
        self.registry = SqliteCardRegistry(self.tmp / "cards.db")
        self.reader = SimReader(name="desk")
        client = GatewayClient(self.gw.url, self.gw.register(DESK, "card-centre", "issuance"))
        session = TerminalSession(self.reader)
        self.journal = Journal(self.tmp / "desk.db")
        self.desk = IssuanceDesk(
            session,
            hsm,
            self.registry,
            DeskConfig(SHANGHAI, DESK_ID),
            credits=CreditPath(session, self.journal, HttpLoadHost(client)),
            hotlist=Hotlist(),
            centre=GatewayCentre(client),
        )
        self.book = GatewayCardBook(client, self.registry.export, pushed=self.pushes.append)
        self.old_card = new_blank(1)
        self.reader.insert(self.old_card)
        self.old = self.desk.issue(ZHANG).record
        self.book.push()
        with GatewayClient(self.gw.url, self.gw.register(KIOSK, "card-centre", "kiosk")) as kc:
            kiosk = Kiosk(
                TerminalSession(SimReader(self.old_card)),
                HttpLoadHost(kc),
                KIOSK_ID,
                journal=Journal(self.tmp / "kiosk.db"),
            )
            assert kiosk.top_up(5_000).result.balance_after == 5_000

    def close(self) -> None:
        self.book.client.close()
        self.registry.close()
        self.gw.server.stop()


@pytest.fixture
def open_desk(db, tmp_path: Path) -> Iterator[Callable[..., GatewayDesk]]:  # type: ignore[no-untyped-def]
    """Opens a ``GatewayDesk`` on a gateway with the given settings; closes it after."""
    opened: list[GatewayDesk] = []

    def open_(**settings: object) -> GatewayDesk:
        opened.append(GatewayDesk(start_gateway(db, **settings), tmp_path))
        return opened[-1]

    yield open_
    for desk in opened:
        desk.close()


SETTLED_AT_ONCE = CarryRules(settling=timedelta(0))  # a balance as soon as it is hotlisted


def test_replace_with_the_card_book_carries_the_balance_the_gateway_proves(
    open_desk: Callable[..., GatewayDesk],
) -> None:
    d = open_desk(carry=SETTLED_AT_ONCE)
    new_card = new_blank(2)
    d.reader.insert(new_card)
    issued = d.desk.replace(d.old.card_number, card_book=d.book)

    assert issued.record.carry_fen == 5_000 and new_card.purse.balance == 5_000  # type: ignore[union-attr]
    assert issued.carried is not None and issued.carried.request.amount == 5_000
    lost = d.registry.get(d.old.card_number)
    assert lost.state == CardState.REPLACED and lost.balance_fen == 5_000
    # the loss reached the gateway before the balance was asked for
    assert len(d.pushes) == 2 and d.pushes[1].counts


def test_replace_with_the_card_book_is_refused_with_the_gateways_reason_and_carries_nothing(
    open_desk: Callable[..., GatewayDesk],
) -> None:
    d = open_desk()  # the default settling period: no balance yet
    new_card = new_blank(2)
    d.reader.insert(new_card)
    loads = d.gw.count("loads")
    with pytest.raises(IssuanceError, match=r"nothing is carried: .*offline transactions") as e:
        d.desk.replace(d.old.card_number, card_book=d.book)
    assert e.value.code == IssuanceRefusal.CARRY_REFUSED

    assert new_card.life_cycle == LifeCycle.CREATION  # no card work at all
    old = d.registry.get(d.old.card_number)
    assert old.state == CardState.LOST and old.replaced_by is None
    assert [r["card_number"] for r in d.registry.export(0)] == [d.old.card_number]
    assert d.gw.count("loads") == loads


def test_replace_with_the_card_book_is_refused_when_the_desk_book_disagrees(
    open_desk: Callable[..., GatewayDesk],
) -> None:
    """The desk's book has a newer balance than the one the gateway proves: refused."""
    d = open_desk(carry=SETTLED_AT_ONCE)
    d.registry.report_balance(d.old.card_number, 4_000, datetime.now() + timedelta(hours=1))
    new_card = new_blank(2)
    d.reader.insert(new_card)
    with pytest.raises(IssuanceError, match=r"book holds 4000 fen .* the gateway proves 5000") as e:
        d.desk.replace(d.old.card_number, card_book=d.book)
    assert e.value.code == IssuanceRefusal.CARRY_MISMATCH
    assert new_card.life_cycle == LifeCycle.CREATION
    assert d.registry.get(d.old.card_number).replaced_by is None


def test_every_issuance_refusal_has_words_in_both_languages() -> None:
    """Each code has its catalogue sentence; the Chinese names no field the English lacks."""
    for code in IssuanceRefusal:
        zh, en = CATALOGUE[f"issuance.{code}"]
        fields = {name for _, name, _, _ in Formatter().parse(en) if name}
        assert {name for _, name, _, _ in Formatter().parse(zh) if name} <= fields, code
        assert english(zh.format(**dict.fromkeys(fields, "1"))) is None, code
