"""Fault injection: cut the card before/after every APDU of a tap, and cut the terminal's
power between every two journal writes; after recovery nothing is lost or charged twice."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from simulators.epurse_card import PROVE_SAME, SoftEPurseCard
from terminal.epurse.commands import Ins
from terminal.epurse.recovery import ProveCounter
from terminal.journal import INTENT, SETTLED, VOID
from terminal.money import format_fen
from terminal.readers.sim import AFTER, BEFORE
from terminal.roles.validator import TapOutcome
from terminal.words import say, sentence, tap_words
from tests.terminal.roles.fleet import CREDIT_SAM, DEBIT, Fleet, is_debit, record_commands


class PowerCut(BaseException):
    """The terminal process dies here (BaseException: nothing in the validator catches it)."""


def card_commands(tmp_path, clock, gate_name: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The card APDUs of one normal tap at ``gate_name`` (after an entry, for an exit)."""
    f = Fleet(tmp_path / "probe.db", clock)
    f.add_cards(1)
    card = f.cards[0]
    if gate_name == "exit":
        f.tap(card, f.entry)
        clock.advance(minutes=10)
    seen = record_commands(card)
    assert f.tap(card, getattr(f, gate_name)).green
    return seen


@pytest.mark.parametrize("gate_name", ["bus", "entry", "exit"])
def test_cut_card_before_and_after_every_apdu(tmp_path, clock, gate_name: str) -> None:  # type: ignore[no-untyped-def]
    commands = card_commands(tmp_path, clock, gate_name)
    assert any(is_debit(a) for a in commands) and len(commands) >= 7
    for index, apdu in enumerate(commands):
        for when in (BEFORE, AFTER):
            f = Fleet(tmp_path / f"{gate_name}-{index}-{when}.db", clock)
            f.add_cards(1)
            card = f.cards[0]
            if gate_name == "exit":
                f.tap(card, f.entry)
                clock.advance(minutes=10)
            gate = getattr(f, gate_name)
            f.reader.insert(card)
            f.reader.tear_at(index, when)
            first = gate.tap()
            assert not first.green, (index, when, first)
            torn_debit = is_debit(apdu)
            assert len(f.journal.open_rows()) == (1 if torn_debit else 0)
            clock.advance(seconds=5)
            retry = f.tap(card, gate)
            assert retry.green, (index, apdu.hex(), when, retry)
            assert f.journal.open_rows() == []
            if torn_debit and when == AFTER:
                assert retry.message == "paid (interrupted tap completed)"
                assert retry.recovered[0].outcome == SETTLED
            f.check_invariants()
            charged = {"bus": 200, "entry": 0, "exit": 400}[gate_name]
            assert card.balance == f.opening[card.serial] - charged


JOURNAL_WRITES = ["record_intent", "settle"]


@pytest.mark.parametrize("method", JOURNAL_WRITES)
@pytest.mark.parametrize("moment", ["before", "after"])
def test_power_cut_around_every_journal_write(tmp_path, clock, method: str, moment: str) -> None:  # type: ignore[no-untyped-def]
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(2)
    card = f.cards[0]
    journal = f.journal
    real = getattr(journal, method)

    def cut(*args, **kwargs):  # type: ignore[no-untyped-def]
        if moment == "before":
            raise PowerCut(method)
        real(*args, **kwargs)
        raise PowerCut(method)

    setattr(journal, method, cut)
    f.reader.insert(card)
    with pytest.raises(PowerCut):
        f.bus.tap()
    journal.close()
    f.restart()  # new process: journal reopened from its file
    rows = f.journal.rows()
    if method == "record_intent" and moment == "before":
        assert rows == [] and card.state.offline_atc == 0
    elif method == "settle" and moment == "after":
        assert [r.state for r in rows] == [SETTLED]
    else:
        assert [r.state for r in rows] == [INTENT]
    clock.advance(seconds=10)
    retry = f.tap(card, f.bus)
    assert retry.green
    f.check_invariants()
    assert card.balance == 5_000 - 200
    other = f.tap(f.cards[1], f.bus)
    assert other.green and other.fare == 200
    f.check_invariants()


def torn_debit(tmp_path, clock, when: str) -> tuple[Fleet, SoftEPurseCard]:  # type: ignore[no-untyped-def]
    """A fleet with one card on its reader whose next DEBIT is torn ``when`` (BEFORE: the
    card never sees it, AFTER: the card debits and the answer is lost)."""
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(1)
    f.reader.insert(f.cards[0])
    f.reader.tear_at_ins(DEBIT, when)
    return f, f.cards[0]


def test_torn_debit_resolved_at_another_gate_sharing_the_journal(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f, card = torn_debit(tmp_path, clock, AFTER)
    assert not f.entry.tap().green
    clock.advance(minutes=15)
    r = f.tap(card, f.exit)  # the exit gate settles the entry's torn debit, then charges
    assert r.recovered and r.recovered[0].outcome == SETTLED
    assert r.green and r.fare == 400
    f.check_invariants()


def test_card_never_debited_is_voided_and_charged_normally(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f, card = torn_debit(tmp_path, clock, BEFORE)
    f.bus.tap()
    clock.advance(seconds=3)
    r = f.tap(card, f.bus)
    assert r.recovered[0].outcome == VOID and r.green and r.fare == 200
    assert [row.state for row in f.journal.rows()] == [VOID, SETTLED]
    f.check_invariants()


def test_torn_debit_then_card_used_elsewhere(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """The card's counter moved on at another operator's terminal before it came back."""
    f, card = torn_debit(tmp_path, clock, BEFORE)
    f.bus.tap()
    other = Fleet(tmp_path / "other.db", clock)
    clock.advance(minutes=1)
    other.tap(card, other.bus)  # a debit recorded elsewhere
    clock.advance(minutes=5)
    r = f.tap(card, f.bus)
    assert r.recovered[0].outcome == VOID and "another terminal" in r.recovered[0].reason
    assert r.green and r.fare == 200


def test_prove_counter_is_configurable(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f, card = torn_debit(tmp_path, clock, AFTER)
    card.state.prove_counter = PROVE_SAME
    f.bus.config = replace(f.bus.config, prove_counter=ProveCounter.SAME)
    f.bus.tap()
    r = f.tap(card, f.bus)
    assert r.recovered[0].outcome == SETTLED
    f.check_invariants()


def test_mismatched_prove_counter_leaves_a_suspect_not_a_loss(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    f, card = torn_debit(tmp_path, clock, AFTER)
    card.state.prove_counter = PROVE_SAME  # the card disagrees with the terminal's setting
    f.bus.tap()
    r = f.tap(card, f.bus)
    assert r.recovered[0].outcome == "suspect" and "9406" in r.recovered[0].reason
    assert r.green and card.balance == 5_000 - 200
    f.check_invariants()


def test_random_faults_across_a_fleet(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(978)
    f = Fleet(tmp_path / "j.db", clock)
    f.add_cards(12, balance=20_000)
    gates = [f.bus, f.entry, f.exit]
    cuts = power = 0
    for _ in range(600):
        card = rng.choice(f.cards)
        gate = rng.choice(gates)
        f.reader.insert(card)
        roll = rng.random()
        if roll < 0.15:
            f.reader.tear_at(rng.randrange(14), rng.choice([BEFORE, AFTER]))
            cuts += 1
        elif roll < 0.20:
            method = rng.choice(JOURNAL_WRITES)
            real = getattr(f.journal, method)

            def cut(*a, _real=real, _m=method, **k):  # type: ignore[no-untyped-def]
                if rng.random() < 0.5:
                    _real(*a, **k)
                raise PowerCut(_m)

            setattr(f.journal, method, cut)
            power += 1
        try:
            gate.tap()
        except PowerCut:
            f.journal.close()
            f.restart()
            gates = [f.bus, f.entry, f.exit]
        f.reader.tear_when(None)
        clock.advance(seconds=rng.randint(1, 400))
    for card in f.cards:  # every card comes back once more: all torn rows resolve
        f.tap(card, f.bus)
    assert f.journal.open_rows() == []
    assert cuts > 50 and power > 10
    f.check_invariants()


# -- the recovered proof checked by the PSAM ----------------------------------------------------


def test_torn_debit_recovered_with_its_mac2_checked_by_the_psam(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """The same gate, no sale since: its PSAM still holds the torn sale's session and
    checks the MAC2 the card proves."""
    f, card = torn_debit(tmp_path, clock, AFTER)
    assert not f.bus.tap().green
    sam_seen = record_commands(f.psams["310000000201"])
    retry = f.tap(card, f.bus)
    assert retry.outcome is TapOutcome.COMPLETED and retry.row is not None
    assert [a[1] for a in sam_seen] == [CREDIT_SAM]
    assert retry.row.state == SETTLED and retry.row.mac2_verified is True
    assert "MAC2 verified by the PSAM" in (retry.row.resolution or "")
    assert tap_words(retry, "bus") == say("tap.completed", fare=format_fen(retry.fare))
    f.check_invariants()
    assert card.balance == 5_000 - 200


@pytest.mark.parametrize("gone", ["another sale", "terminal restart"])
def test_torn_debit_recovered_after_the_psam_session_is_gone(tmp_path, clock, gone: str) -> None:  # type: ignore[no-untyped-def]
    """Another sale since (a new 8070) or a restart: the terminal does not ask the PSAM
    (it would check against the wrong session) and says the sale is paid, MAC2 not checked."""
    f, card = torn_debit(tmp_path, clock, AFTER)
    f.add_cards(1)
    assert not f.bus.tap().green
    if gone == "another sale":
        assert f.tap(f.cards[1], f.bus).green
    else:
        f.journal.close()
        f.restart()
    clock.advance(seconds=5)
    sam_seen = record_commands(f.psams["310000000201"])
    retry = f.tap(card, f.bus)
    assert retry.outcome is TapOutcome.COMPLETED and retry.row is not None
    assert CREDIT_SAM not in [a[1] for a in sam_seen]
    assert retry.row.state == SETTLED and retry.row.mac2_verified is False
    assert "MAC2 not checked (TAC checked at clearing)" in (retry.row.resolution or "")
    said = say("tap.completed_unchecked", fare=format_fen(retry.fare))
    assert tap_words(retry, "bus") == said
    assert "paid, MAC2 not checked" in sentence("tap.completed_unchecked", "en", fare="2.00")
    f.check_invariants()
    assert card.balance == 5_000 - 200


@pytest.mark.parametrize("psam", ["lost its session", "reader gone"])
def test_a_psam_that_cannot_check_leaves_mac2_not_checked(tmp_path, clock, psam: str) -> None:  # type: ignore[no-untyped-def]
    """The terminal believes the session is current but the PSAM answers 6985 (it was
    powered anew behind the terminal's back) or does not answer: that is not a bad MAC2,
    so the sale is paid with MAC2 not checked, never suspect."""
    f, card = torn_debit(tmp_path, clock, AFTER)
    assert not f.bus.tap().green
    if psam == "lost its session":
        f.psams["310000000201"].reset()
    else:
        f.bus.session.sam_reader.tear_at_ins(CREDIT_SAM, BEFORE)
    retry = f.tap(card, f.bus)
    assert retry.outcome is TapOutcome.COMPLETED and retry.row is not None
    assert retry.row.state == SETTLED and retry.row.mac2_verified is False
    answer = "answered 6985" if psam == "lost its session" else "did not answer"
    assert f"MAC2 not checked (TAC checked at clearing): the PSAM {answer}" in (
        retry.row.resolution or ""
    )
    f.check_invariants()
    assert card.balance == 5_000 - 200


def test_cut_card_at_every_apdu_of_the_recovery_tap(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """The re-tap that recovers a torn debit (and has the PSAM check its MAC2) is cut
    before and after each of its card APDUs: the card is charged once, the row is settled
    once, and the PSAM still checks the proof (the session is spent only by the 8072)."""
    probe, card = torn_debit(tmp_path, clock, AFTER)
    assert not probe.bus.tap().green
    probe.reader.insert(card)
    card.reset()
    commands = record_commands(card)
    assert probe.bus.tap().outcome is TapOutcome.COMPLETED
    assert Ins.GET_TRANSACTION_PROVE in [a[1] for a in commands]
    for index, apdu in enumerate(commands):
        for when in (BEFORE, AFTER):
            (tmp_path / f"{index}-{when}").mkdir()
            f, card = torn_debit(tmp_path / f"{index}-{when}", clock, AFTER)
            assert not f.bus.tap().green
            f.reader.insert(card)
            card.reset()
            f.reader.tear_at(index, when)
            f.bus.tap()
            clock.advance(seconds=5)
            f.tap(card, f.bus)
            assert f.journal.open_rows() == [], (index, apdu.hex(), when)
            (row,) = f.journal.rows()
            assert (row.state, row.mac2_verified) == (SETTLED, True), (index, apdu.hex(), when)
            f.check_invariants()
            assert card.balance == 5_000 - 200, (index, apdu.hex(), when)


def test_a_row_made_suspect_by_another_device_while_its_card_is_recovered(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """Another device sharing the journal makes the torn row suspect (its window passed)
    while this one is proving it with the card: this device stays in service, leaves the
    row as the other made it (the proof goes to the log), and the tap is a new ride."""
    from datetime import timedelta

    from terminal.journal import SUSPECT

    f, card = torn_debit(tmp_path, clock, AFTER)
    assert not f.bus.tap().green
    clock.advance(hours=25)

    def sweep_at_prove(apdu: bytes) -> None:
        if apdu[1] == Ins.GET_TRANSACTION_PROVE:
            assert len(f.journal.suspect_unreturned(clock(), timedelta(hours=24))) == 1

    f.reader.tear_when(sweep_at_prove)
    r = f.tap(card, f.bus)
    assert r.green and r.fare == 200 and r.recovered == ()
    torn, ride = f.journal.rows()
    assert torn.state == SUSPECT and "did not come back" in (torn.resolution or "")
    assert ride.state == SETTLED and card.balance == 5_000 - 400  # both debits were real
