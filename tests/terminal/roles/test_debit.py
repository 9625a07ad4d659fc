"""The one journaled debit path: every debiting role goes through it, none can debit without
a journal, and a POS sale cut at every card APDU is completed or voided, never lost or
charged twice."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from simulators.emv_profiles import resident_card
from simulators.profiles import demo_card, demo_psam
from terminal.apdu.errors import MacMismatch, TransportError
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig
from terminal.epurse.recovery import SETTLED as RECOVERED
from terminal.epurse.recovery import VOID as VOIDED
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import INTENT, SETTLED, SUSPECT, VOID, Journal
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles import debit as debit_module
from terminal.roles.debit import DebitPath, PaymentInterrupted
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator, ValidatorConfig
from tests.terminal.roles.fleet import (
    CREDIT_SAM,
    DEBIT,
    Answering,
    check_invariants,
    is_debit,
    record_commands,
)

TERMINAL = Path(__file__).resolve().parents[3] / "terminal"
POS_ID = "310000000101"


def session_for(card, clock, psam=None) -> TerminalSession:  # type: ignore[no-untyped-def]
    s = TerminalSession(SimReader(card), SimReader(psam or demo_psam(POS_ID)), clock=clock)
    s.start()
    return s


# -- no journal, no debit -----------------------------------------------------------------


def test_no_role_can_be_built_without_a_journal(clock) -> None:  # type: ignore[no-untyped-def]
    card = demo_card(1, balance=5_000)
    s = session_for(card, clock)
    config = ValidatorConfig(mode=Mode.BUS, rules=load_rules())
    builders = {
        "path": lambda: DebitPath(s, None),  # type: ignore[arg-type]
        "pos": lambda: PointOfSale(s, None),  # type: ignore[arg-type]
        "one-card pos": lambda: OneCardPos(s, None, TerminalConfig(), CaKeyStore()),  # type: ignore[arg-type]
        "validator": lambda: Validator(s, None, Hotlist(), config),  # type: ignore[arg-type]
    }
    for name, build in builders.items():
        with pytest.raises(TypeError, match="needs a journal"):
            build()
        assert (card.balance, card.state.offline_atc) == (5_000, 0), name


def test_only_the_debit_path_sends_debit_or_writes_intents() -> None:
    """Outside the flows that compose it and the path that journals it, no terminal module
    calls the DEBIT half of a purchase (the path runs it as its step's ``complete``) or
    writes an intent row."""
    allowed = {
        "complete_purchase": {"epurse/flows.py"},
        "record_intent": {"journal/journal.py", "roles/journaling.py", "roles/debit.py"},
        "purchase": {"epurse/flows.py"},
    }
    found: dict[str, set[str]] = {name: set() for name in allowed}
    for path in TERMINAL.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name in found:
                    found[name].add(path.relative_to(TERMINAL).as_posix())
    assert {k: v - allowed[k] for k, v in found.items()} == {k: set() for k in allowed}
    assert "roles/debit.py" in found["record_intent"]


@pytest.fixture
def counted(monkeypatch):  # type: ignore[no-untyped-def]
    calls: list[str] = []
    real = DebitPath.debit

    def debit(self, info, step, context, **kw):  # type: ignore[no-untyped-def]
        calls.append(info.card_number)
        return real(self, info, step, context, **kw)

    monkeypatch.setattr(debit_module.DebitPath, "debit", debit)
    return calls


def test_every_role_debits_through_the_path(tmp_path, clock, counted) -> None:  # type: ignore[no-untyped-def]
    card = demo_card(1, balance=5_000)
    with Journal(tmp_path / "j.db", clock=clock) as journal:
        sale = PointOfSale(session_for(card, clock), journal).charge(300)
        assert len(counted) == 1 and sale.row.state == SETTLED

        s = session_for(card, clock, demo_psam("310000000201"))
        bus = Validator(s, journal, Hotlist(), ValidatorConfig(mode=Mode.BUS, rules=load_rules()))
        card.reset()
        assert bus.tap().green and len(counted) == 2

        resident = resident_card(2, ec_balance=100, ep_balance=5_000)
        one = OneCardPos(
            session_for(resident, clock, demo_psam("310000000102")),
            journal,
            TerminalConfig(trust_test_keys=True),
            CaKeyStore.builtin(),
            PaymentRule.parse("ec,ep"),
        )
        assert one.charge(450).source == "ep" and len(counted) == 3
        assert [(r.amount, r.state) for r in journal.rows()] == [
            (300, SETTLED),
            (200, SETTLED),
            (450, SETTLED),
        ]
    assert card.balance == 5_000 - 300 - 200


# -- the outcomes of one debit --------------------------------------------------------------


def test_card_refusing_debit_voids_the_row(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    card = demo_card(1, balance=5_000)
    with Journal(tmp_path / "j.db", clock=clock) as journal:
        pos = PointOfSale(session_for(Answering(card, DEBIT, b"\x93\x02"), clock), journal)
        with pytest.raises(MacMismatch):
            pos.charge(300)
        [row] = journal.rows()
        assert row.state == VOID and "card refused DEBIT" in (row.resolution or "")
    assert (card.balance, card.state.offline_atc) == (5_000, 0)


def test_psam_refusing_mac2_after_the_card_paid_keeps_the_proof(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """The card debited; a PSAM that then refuses CREDIT SAM FOR PURCHASE with any status
    word must not turn the debit into a void (money taken, no record to clear)."""
    card = demo_card(1, balance=5_000)
    psam = Answering(demo_psam(POS_ID), CREDIT_SAM, b"\x69\x85")
    with Journal(tmp_path / "j.db", clock=clock) as journal:
        sale = PointOfSale(session_for(card, clock, psam), journal).charge(300)
        [row] = journal.rows()
        assert (row.state, row.amount, row.tac is not None) == (SUSPECT, 300, True)
        assert not sale.verified and row.mac2_verified is False
        check_invariants(journal, [card], {card.serial: 5_000}, {card.serial: 0})
    assert card.balance == 4_700


def test_psam_lost_after_the_card_paid_keeps_the_proof(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    card = demo_card(1, balance=5_000)
    sam_reader = SimReader(demo_psam(POS_ID))
    s = TerminalSession(SimReader(card), sam_reader, clock=clock)
    s.start()
    sam_reader.tear_at_ins(CREDIT_SAM, BEFORE)
    with Journal(tmp_path / "j.db", clock=clock) as journal:
        PointOfSale(s, journal).charge(300)
        assert [(r.state, r.amount) for r in journal.rows()] == [(SUSPECT, 300)]
    assert card.balance == 4_700


# -- the card pulled at every APDU of a POS sale ----------------------------------------------


def pos_sale_commands(tmp_path, clock) -> list[bytes]:  # type: ignore[no-untyped-def]
    card = demo_card(1, balance=5_000)
    seen = record_commands(card)
    with Journal(tmp_path / "probe.db", clock=clock) as journal:
        PointOfSale(session_for(card, clock), journal).charge(1_250)
    return seen


def test_pos_sale_cut_before_and_after_every_apdu(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    commands = pos_sale_commands(tmp_path, clock)
    assert sum(is_debit(a) for a in commands) == 1 and len(commands) >= 3
    for index, apdu in enumerate(commands):
        for when in (BEFORE, AFTER):
            card = demo_card(1, balance=5_000)
            reader = SimReader(card)
            s = TerminalSession(reader, SimReader(demo_psam(POS_ID)), clock=clock)
            s.start()
            with Journal(tmp_path / f"pos-{index}-{when}.db", clock=clock) as journal:
                pos = PointOfSale(s, journal)
                reader.tear_at(index, when)
                with pytest.raises(TransportError) as torn:
                    pos.charge(1_250)
                torn_debit = is_debit(apdu)
                assert isinstance(torn.value, PaymentInterrupted) == torn_debit, (index, when)
                open_rows = journal.open_rows()
                assert [r.state for r in open_rows] == ([INTENT] if torn_debit else [])
                reader.insert(card)  # the customer presents the card again
                clock.advance(seconds=5)
                retry = pos.charge(1_250)  # the cashier makes the same sale again
                assert journal.open_rows() == []
                if torn_debit and when == AFTER:  # the card had paid: completed, not re-charged
                    assert retry.completed and retry.recovered[0].outcome == RECOVERED
                elif torn_debit:
                    assert not retry.completed and retry.recovered[0].outcome == VOIDED
                settled = [r for r in journal.rows() if r.state in (SETTLED, SUSPECT)]
                assert [r.amount for r in settled] == [1_250], (index, when)
                assert retry.row.id == settled[0].id
                check_invariants(journal, [card], {card.serial: 5_000}, {card.serial: 0})
            assert card.balance == 5_000 - 1_250, (index, apdu.hex(), when)


def test_a_different_amount_after_a_torn_sale_is_a_new_sale(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """The retry rule matches the same amount only: the torn sale is settled and listed,
    and the new amount is charged on its own."""
    card = demo_card(1, balance=5_000)
    reader = SimReader(card)
    s = TerminalSession(reader, SimReader(demo_psam(POS_ID)), clock=clock)
    s.start()
    with Journal(tmp_path / "j.db", clock=clock) as journal:
        pos = PointOfSale(s, journal)
        reader.tear_at_ins(DEBIT, AFTER)
        with pytest.raises(PaymentInterrupted, match="present the same card again"):
            pos.charge(1_000)
        reader.insert(card)
        sale = pos.charge(200)
        assert not sale.completed and sale.recovered[0].outcome == RECOVERED
        assert sorted(r.amount for r in journal.rows() if r.state == SETTLED) == [200, 1_000]
    assert card.balance == 5_000 - 1_200
