"""A torn Electronic Cash sale at the one-card POS, at every failure point, with the
software EMV card: matched at the card's next tap (or at the POS's next start) with what
the card proves - paid, not paid, or it cannot tell - never charged twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from simulators.emv_profiles import resident_card
from terminal.emv.config import KIND_EMV, KIND_EPURSE
from terminal.emv.selection import CONTACTLESS, discover
from terminal.journal import SETTLED, SUSPECT, VOID, Journal
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.roles.debit import EcPaymentUncertain
from terminal.roles.onecard_pos import (
    OneCardPos,
    PaymentRefused,
    complete_ec_purchase,
    ec_intent,
    prepare_ec_purchase,
)
from terminal.roles.session import TerminalSession
from tests.terminal.emv.helpers import CONFIG, STORE

GPO, READ_RECORD = 0xA8, 0xB2


def tear_at(ins: int, when: str, *, after_gpo: bool = False) -> Callable[[bytes], str | None]:
    """Pull the card at the first command with ``ins`` (after GPO, when asked)."""
    seen = {"gpo": not after_gpo}

    def rule(apdu: bytes) -> str | None:
        if apdu[1] == GPO:
            seen["gpo"] = True
            if ins == GPO:
                return when
        elif apdu[1] == ins and seen["gpo"]:
            return when
        return None

    return rule


def torn_sale(pos: OneCardPos, rule: Callable[[bytes], str | None]) -> object:
    """Run a 12.00 sale with the card pulled where ``rule`` says; put the card back."""
    reader = pos.session.card_reader
    card = reader.card
    reader.tear_when(rule)
    with pytest.raises(EcPaymentUncertain, match="present the same card again"):
        pos.charge(1_200)
    reader.insert(card)
    return card


def test_card_pulled_before_gpo_reached_it_is_voided_and_the_retry_charges_once(
    pos_for, journal
) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=6_000)
    pos = pos_for(card)
    pos.charge(1_000)  # the card has a history: its log is what knows it again
    torn_sale(pos, tear_at(GPO, BEFORE))
    (open_row,) = journal.open_ec_rows()
    assert card.app("emv").ec_balance == 5_000 and journal.pending_upload() == 1
    sale = pos.charge(1_200)
    assert sale.source == "ec" and not sale.completed and sale.ec_row.state == SETTLED
    _, torn, _ = journal.ec_rows()
    assert torn.id == open_row.id and torn.state == VOID
    assert "as before the sale" in torn["resolution"] and torn.upload_seq is None
    assert card.app("emv").ec_balance == 3_800 and journal.pending_upload() == 2


def test_a_card_with_no_history_is_not_voided_on_a_guess(pos_for, journal, clock) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000)  # never used: another new card looks the same
    pos = pos_for(card)
    torn_sale(pos, tear_at(GPO, BEFORE))
    assert pos.charge(1_200).ec_row.state == SETTLED  # the customer pays once
    assert len(journal.open_ec_rows()) == 1 and card.app("emv").ec_balance == 3_800
    clock.advance(days=2)
    pos.charge(100)
    torn = journal.ec_rows()[0]
    assert torn.state == SUSPECT and "did not come back" in torn["resolution"]


@pytest.mark.parametrize(
    "rule",
    [tear_at(GPO, AFTER), tear_at(READ_RECORD, BEFORE, after_gpo=True)],
    ids=["answer-to-gpo-lost", "pulled-while-reading-records"],
)
def test_card_that_paid_completes_the_retried_sale_without_charging_again(
    pos_for, journal, rule
) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000)
    pos = pos_for(card)
    torn_sale(pos, rule)
    assert card.app("emv").ec_balance == 3_800  # the card took the money
    assert journal.pending_upload() == 0 and len(journal.open_ec_rows()) == 1
    sale = pos.charge(1_200)
    assert sale.completed and sale.source == "ec" and sale.balance_after == 3_800
    (row,) = journal.ec_rows()
    assert row.state == SUSPECT and row["resolution"].startswith("paid, no TC")
    assert "log shows this sale" in row["resolution"]
    assert row["atc"] == row["context"]["atc_before"] + 1 and row["ec_balance_after"] == 3_800
    assert card.app("emv").ec_balance == 3_800 and journal.pending_upload() == 1


def test_a_paid_torn_sale_found_at_a_different_amount_still_lets_the_new_sale_run(
    pos_for, journal
) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000)
    pos = pos_for(card)
    torn_sale(pos, tear_at(GPO, AFTER))
    sale = pos.charge(300)  # not the torn sale: a new one
    assert not sale.completed and sale.ec_row.state == SETTLED
    torn, _ = journal.ec_rows()
    assert torn.state == SUSPECT and torn["resolution"].startswith("paid")
    assert card.app("emv").ec_balance == 3_500


def test_stopped_between_intent_and_gpo_is_voided_at_the_next_start(psam, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=6_000)
    with Journal(tmp_path / "before.db") as j:  # a history: the card's log knows it again
        OneCardPos(started(card, psam, clock), j, CONFIG, STORE).charge(1_000)
    path = tmp_path / "pos.db"
    stopped_before_gpo(card, psam, clock, path, send_gpo=False)
    with Journal(path) as j:
        pos = OneCardPos(started(card, psam, clock), j, CONFIG, STORE)
        ((verdict, row),) = pos.recover_present()
        assert verdict == "not paid" and row.state == VOID and j.open_ec_rows() == []
    assert card.app("emv").ec_balance == 5_000


def test_stopped_after_gpo_is_found_paid_at_the_next_start(psam, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000)
    path = tmp_path / "pos.db"
    stopped_before_gpo(card, psam, clock, path, send_gpo=True)
    assert card.app("emv").ec_balance == 3_800
    with Journal(path) as j:
        pos = OneCardPos(started(card, psam, clock), j, CONFIG, STORE)
        ((verdict, row),) = pos.recover_present()
        assert verdict == "paid" and row.state == SUSPECT and row["ec_balance_after"] == 3_800
        assert j.pending_upload() == 1
    with Journal(path) as j:  # no card in the field at start: nothing is read or decided
        assert OneCardPos(started(None, psam, clock), j, CONFIG, STORE).recover_present() == []


def test_a_card_without_a_log_cannot_tell_and_is_not_charged_again(pos_for, journal) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000)
    card.app("emv").state.keeps_log = False
    pos = pos_for(card)
    torn_sale(pos, tear_at(GPO, AFTER))
    with pytest.raises(PaymentRefused, match="may have paid"):
        pos.charge(1_200)
    (row,) = journal.ec_rows()
    assert row.state == SUSPECT and "keeps no log" in row["resolution"]
    assert card.app("emv").ec_balance == 3_800 and journal.pending_upload() == 1
    assert journal.rows() == []  # the EP was not tried either


def test_another_card_leaves_the_torn_sale_open_until_the_window_passes(
    pos_for, journal, clock
) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000)
    pos = pos_for(card)
    torn_sale(pos, tear_at(GPO, AFTER))
    other = resident_card(2, ec_balance=5_000)
    pos.session.card_reader.insert(other)
    assert pos.charge(500).ec_row.state == SETTLED
    assert len(journal.open_ec_rows()) == 1  # not that card's sale: still waiting for it
    clock.advance(days=2)
    assert pos.charge(500).ec_row.state == SETTLED
    row = journal.ec_rows()[0]
    assert row.state == SUSPECT and "did not come back" in row["resolution"]
    assert other.app("emv").ec_balance == 4_000


def started(card, psam, clock) -> TerminalSession:  # type: ignore[no-untyped-def]
    session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    session.start()
    return session


def stopped_before_gpo(card, psam, clock, path, *, send_gpo: bool) -> None:  # type: ignore[no-untyped-def]
    """A POS that wrote its intent and stopped (power cut) before (or just after) GPO."""
    session = started(card, psam, clock)
    with Journal(path) as j:
        session.card_reader.connect()
        found = session.run(discover(CONFIG, CONTACTLESS, kinds=(KIND_EMV, KIND_EPURSE)))
        pending = session.run(prepare_ec_purchase(found.candidates, 1_200, session.now()))
        pending = dataclasses.replace(pending, unpredictable_number=bytes.fromhex("01020304"))
        tid = session.sam.terminal_id
        j.record_ec_intent(ec_intent(pending, CONFIG, tid, j.next_ec_seq(tid), {"pos": "POS"}))
        if send_gpo:
            session.run(complete_ec_purchase(pending, CONFIG, STORE))
        assert len(j.open_ec_rows()) == 1
