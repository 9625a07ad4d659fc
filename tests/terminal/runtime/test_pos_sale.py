"""A POS sale as the cash register sees it (``sell``): an interrupted sale completed at the
card's next tap prints what was checked on its receipt, and a refused proof reads NOT paid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulators.emv_profiles import resident_card
from simulators.profiles import demo_psam
from terminal.journal import Journal
from terminal.readers.sim import AFTER, SimReader
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.session import TerminalSession
from terminal.runtime.pos import sell
from terminal.words import say
from tests.adversarial.test_hostile_card import ForgedProof
from tests.terminal.emv.helpers import CONFIG, STORE
from tests.terminal.roles.fleet import DEBIT

TID = "310000000771"


def pos_with(card: Any, journal: Journal, clock: Any) -> tuple[OneCardPos, SimReader]:
    reader = SimReader(card)
    session = TerminalSession(reader, SimReader(demo_psam(TID)), clock=clock)
    session.start()
    return OneCardPos(session, journal, CONFIG, STORE, PaymentRule(("ep",))), reader


def torn(pos: OneCardPos, reader: SimReader, card: Any) -> None:
    """A 10.00 sale whose DEBIT answer is lost after the card paid; the card put back."""
    reader.tear_at_ins(DEBIT, AFTER)
    outcome = sell(pos, 1_000, TID, merchant="shop")
    assert not outcome.ok and outcome.doc["text"] == say("sale.interrupted")
    reader.insert(card)


def test_completed_with_the_psam_session_the_receipt_says_charged_once(
    tmp_path: Path, clock: Any
) -> None:
    card = resident_card(51)
    with Journal(tmp_path / "pos.db") as journal:
        pos, reader = pos_with(card, journal, clock)
        torn(pos, reader, card)
        outcome = sell(pos, 1_000, TID, merchant="shop")
        assert outcome.ok and outcome.doc["completed"] and outcome.receipt is not None
        assert outcome.receipt.notes == [say("receipt.completed")]
        assert say("receipt.completed") in outcome.receipt.text()
    assert card.app("epurse").card.balance == 5_000 - 1_000


def test_completed_after_another_sale_the_receipt_says_mac2_not_checked(
    tmp_path: Path, clock: Any
) -> None:
    """Another card's sale between (a new INIT SAM): the PSAM no longer holds the torn sale's
    session, so the receipt says the MAC2 was not checked; the customer is charged once."""
    card, other = resident_card(52), resident_card(53)
    with Journal(tmp_path / "pos.db") as journal:
        pos, reader = pos_with(card, journal, clock)
        torn(pos, reader, card)
        reader.insert(other)
        assert sell(pos, 300, TID, merchant="shop").ok
        reader.insert(card)
        outcome = sell(pos, 1_000, TID, merchant="shop")
        assert outcome.ok and outcome.doc["completed"] and outcome.receipt is not None
        assert outcome.receipt.notes == [say("receipt.completed"), say("receipt.mac2_unchecked")]
        assert journal.totals()["settled"] == (2, 1_300)
    assert card.app("epurse").card.balance == 5_000 - 1_000


def test_a_refused_proof_is_answered_not_paid(tmp_path: Path, clock: Any) -> None:
    """The cash register's answer for a forged proof says NOT paid, in both its fields."""
    card = resident_card(54)
    forged = ForgedProof(card)  # type: ignore[arg-type]
    with Journal(tmp_path / "pos.db") as journal:
        pos, reader = pos_with(forged, journal, clock)
        torn(pos, reader, forged)
        outcome = sell(pos, 1_000, TID, merchant="shop")
        assert not outcome.ok and outcome.receipt is None
        assert outcome.doc["text"] == say("sale.proof_refused")
        assert "NOT paid" in outcome.doc["refused"]
        assert journal.totals()["settled"] == (0, 0)
