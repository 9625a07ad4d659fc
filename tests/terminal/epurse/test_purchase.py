"""Purchase end to end on the software card and PSAM: balance, counters, log, TAC, failures."""

from dataclasses import replace

import pytest

from terminal.apdu.errors import InsufficientBalance, MacMismatch
from terminal.epurse import flows
from terminal.epurse.commands import TxnType
from terminal.epurse.model import PendingPurchase
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession


def test_purchase_end_to_end(session: TerminalSession, card, hsm, clock) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    intents: list[PendingPurchase] = []
    result = session.run(
        flows.purchase(info, session.sam, 250, session.now(), on_intent=intents.append)
    )
    p = result.pending
    assert intents == [p]
    assert (p.balance_before, result.balance_after, card.balance) == (10_000, 9_750, 9_750)
    assert p.offline_atc == 0 and card.state.offline_atc == 1
    assert p.terminal_id == bytes.fromhex("310000000001")
    assert result.mac2_verified
    assert hsm.purchase_tac_valid(
        issuer_id=info.issuer_id,
        card_serial=info.serial,
        amount=250,
        txn_type=TxnType.EP_PURCHASE,
        terminal_id=p.terminal_id,
        terminal_seq=p.terminal_seq,
        when=clock.now,
        tac=result.tac,
    )
    log = session.run(flows.read_log())
    assert (log[0].amount, log[0].txn_type, log[0].atc, log[0].when) == (
        250,
        TxnType.EP_PURCHASE,
        0,
        clock.now,
    )
    assert log[0].terminal_id == p.terminal_id


def test_terminal_sequence_advances_per_purchase(session: TerminalSession) -> None:
    info = session.run(flows.select())
    seqs = [
        session.run(flows.purchase(info, session.sam, 1, session.now())).pending.terminal_seq
        for _ in range(3)
    ]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]


def test_tac_does_not_verify_for_altered_amount(session: TerminalSession, hsm) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    r = session.run(flows.purchase(info, session.sam, 100, session.now()))
    p = r.pending
    assert not hsm.purchase_tac_valid(
        issuer_id=p.issuer_id,
        card_serial=p.card_serial,
        amount=1000,
        txn_type=p.txn_type,
        terminal_id=p.terminal_id,
        terminal_seq=p.terminal_seq,
        when=p.when,
        tac=r.tac,
    )


def test_tampered_mac1_is_refused_by_the_card(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    pending = session.run(flows.prepare_purchase(info, session.sam, 300, session.now()))
    forged = replace(pending, mac1=bytes(b ^ 0x01 for b in pending.mac1))
    with pytest.raises(MacMismatch):
        session.run(flows.complete_purchase(forged))
    assert card.balance == 10_000 and card.state.offline_atc == 0 and card.state.log == []


def test_tampered_mac2_is_refused_by_the_sam(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    pending = session.run(flows.prepare_purchase(info, session.sam, 300, session.now()))

    original = card.process

    def corrupt_mac2(apdu: bytes) -> bytes:
        out = original(apdu)
        if apdu[:2] == b"\x80\x54":
            out = out[:4] + bytes(b ^ 0xFF for b in out[4:8]) + out[8:]
        return out

    card.process = corrupt_mac2  # type: ignore[method-assign]
    result = session.run(flows.complete_purchase(pending))
    assert result.mac2_verified is False
    assert card.balance == 9_700  # the card did debit: the result must be kept as suspect


def test_insufficient_balance_leaves_card_untouched(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    before = (card.balance, card.state.offline_atc, list(card.state.log))
    with pytest.raises(InsufficientBalance) as exc:
        session.run(flows.purchase(info, session.sam, 10_001, session.now()))
    assert exc.value.sw == 0x9401
    assert (card.balance, card.state.offline_atc, card.state.log) == before


def test_init_reports_overdraft_limit_and_key_version(psam, clock) -> None:  # type: ignore[no-untyped-def]
    from simulators.profiles import demo_card

    card = demo_card(2, balance=100, overdraft_limit=500)
    s = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    s.start()
    info = s.run(flows.select())
    pending = s.run(flows.prepare_purchase(info, s.sam, 50, s.now()))
    assert (pending.balance_before, pending.key_version, pending.algorithm) == (100, 1, 0)


def test_capp_init_uses_type_09(session: TerminalSession) -> None:
    info = session.run(flows.select())
    r = session.run(flows.purchase(info, session.sam, 200, session.now(), capp=True))
    assert r.pending.txn_type == TxnType.CAPP_PURCHASE
    assert session.run(flows.read_log())[0].txn_type == TxnType.CAPP_PURCHASE
