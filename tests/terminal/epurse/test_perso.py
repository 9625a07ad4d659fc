"""Personalisation: the card it makes equals a factory-issued one and passes every
transaction flow; no clear key crosses the desk; the HSM refuses what it should."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.hsm import HostSecurityModule, LocalLoadHost
from simulators.blank_card import SoftBlankCard
from simulators.profiles import CardProfile, demo_keyset, issue_card
from terminal.apdu import iso
from terminal.apdu.errors import MacMismatch, WrongPin
from terminal.apdu.flow import card
from terminal.cos import commands as cc
from terminal.cos.layouts import DfHeader, KeyFileHeader, KeyType
from terminal.epurse import commands as c
from terminal.epurse import flows, perso
from terminal.epurse.commands import TxnType
from terminal.epurse.perso import KeyLoadRequest, PersoDeclined, PersoError
from terminal.journal import SETTLED
from terminal.layout import build
from terminal.readers.sim import AFTER
from tests.conftest import FrozenClock
from tests.issuance_kit import SHANGHAI, desk_session, new_blank, perso_hsm, plan
from tests.terminal.roles.fleet import DEBIT, Fleet, check_invariants, record_commands

KIOSK = bytes.fromhex("310000000090")


def personalised(number: int, clock: FrozenClock, hsm: HostSecurityModule, **kw: object):  # type: ignore[no-untyped-def]
    card = new_blank(number)
    session = desk_session(card, clock)
    session.run(perso.personalise(plan(number, **kw), hsm, card.chip_id))
    return card, session


def test_the_personalised_card_is_the_card_a_factory_would_issue(clock: FrozenClock) -> None:
    hsm = perso_hsm(clock)
    card, _ = personalised(3, clock, hsm, card_kind=2, pin="2468", max_balance=50_000)
    profile = CardProfile(
        card_number="0" + plan(3).card_number,
        issuer_id=SHANGHAI,
        holder_name="张三",
        id_number=plan(3).id_number,
        card_kind=2,
        pin="2468",
        max_balance=50_000,
        start_date=date(2024, 1, 1),
        expiry_date=date(2034, 12, 31),
    )
    reference = issue_card(profile, demo_keyset(SHANGHAI))
    assert card.purse is not None
    assert card.purse.state == reference.state


def test_no_clear_key_crosses_the_desk(clock: FrozenClock) -> None:
    hsm = perso_hsm(clock)
    card = new_blank(4)
    sent = record_commands(card)
    session = desk_session(card, clock)
    p = plan(4)
    session.run(perso.personalise(p, hsm, card.chip_id))
    keys = demo_keyset(SHANGHAI).card_keys(p.serial)
    secrets_ = [keys.purchase, keys.load, keys.tac, keys.maintenance, card.state.transport_key]
    wire = b"".join(sent)
    for key in secrets_:
        raw = bytes.fromhex(key) if isinstance(key, str) else key
        assert raw[:8] not in wire and raw[8:] not in wire
    assert sum(a[:2] == b"\x84\xd4" for a in sent) == 4  # four protected WRITE KEYs


def test_a_personalised_card_passes_every_transaction_flow(tmp_path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    hsm = perso_hsm(clock)
    fleet = Fleet(tmp_path / "j.db", clock)
    cards: list[SoftBlankCard] = []
    for n in (11, 12):
        card, session = personalised(n, clock, hsm)
        info = session.run(flows.select())
        session.run(flows.load(info, KIOSK, 3_000, session.now(), LocalLoadHost(hsm), pin="123456"))
        cards.append(card)
    purses = [card.purse for card in cards]
    opening = {p.serial: p.balance for p in purses}  # type: ignore[union-attr]
    opening_atc = {p.serial: p.state.offline_atc for p in purses}  # type: ignore[union-attr]

    def tap(card: SoftBlankCard, gate):  # type: ignore[no-untyped-def]
        fleet.reader.insert(card)
        card.reset()
        return gate.tap()

    a, b = cards
    assert tap(a, fleet.bus).fare == 200  # composite purchase, trip record
    clock.advance(minutes=3)
    assert tap(b, fleet.entry).green
    clock.advance(minutes=12)
    assert tap(b, fleet.exit).fare == 400  # metro fare from the 2701 record
    clock.advance(minutes=2)
    fleet.reader.insert(a)
    a.reset()
    fleet.reader.tear_at_ins(DEBIT, AFTER)
    assert not fleet.bus.tap().green  # card pulled right after DEBIT
    clock.advance(seconds=5)
    retry = tap(a, fleet.bus)
    assert retry.message == "paid (interrupted tap completed)"  # GET TRANSACTION PROVE
    for row in fleet.journal.rows():
        assert row.state == SETTLED
        assert hsm.purchase_tac_valid(
            issuer_id=bytes.fromhex(row.issuer_id),
            card_serial=bytes.fromhex(row.card_serial),
            amount=row.amount,
            txn_type=row.txn_type,
            terminal_id=bytes.fromhex(row.terminal_id),
            terminal_seq=row.terminal_seq,
            when=row.txn_time,
            tac=bytes.fromhex(row.tac or ""),
        )
    check_invariants(fleet.journal, purses, opening, opening_atc)  # type: ignore[arg-type]
    assert a.purse.balance == 3_000 - 400 and b.purse.balance == 3_000 - 400  # type: ignore[union-attr]

    session = desk_session(a, clock)
    info = session.run(flows.select())
    with pytest.raises(WrongPin):
        session.run(flows.prepare_load(info, KIOSK, 100, clock(), pin="000000"))
    assert session.run(flows.prepare_load(info, KIOSK, 100, clock(), pin="123456")).amount == 100
    log = session.run(flows.read_log())
    assert [e.txn_type for e in log][-1] == TxnType.EP_LOAD

    clock.advance(minutes=5)
    fleet.hotlist.apply(1, [b.purse.serial])  # type: ignore[union-attr]
    blocked = tap(b, fleet.bus)  # APPLICATION BLOCK MACed with the maintenance key
    assert blocked.message == "card reported lost: blocked"
    assert b.purse.state.blocked == "temporary"  # type: ignore[union-attr]


def test_a_cryptogram_is_bound_to_its_chip(clock: FrozenClock) -> None:
    hsm = perso_hsm(clock)
    mine, other = new_blank(1), new_blank(2)
    s = desk_session(other, clock)
    s.run(perso.authenticate(hsm, other.chip_id))
    s.run(_one(cc.create_file(c.FID_EP, build(DfHeader, name=c.AID_TUNION_EP))))
    s.run(_one(iso.select_fid(c.FID_EP)))
    s.run(_one(cc.create_file(cc.FID_KEY_FILE, build(KeyFileHeader))))
    challenge = s.run(_one(iso.get_challenge(4))).data
    stolen = KeyLoadRequest(SHANGHAI, plan().serial, mine.chip_id, KeyType.PURCHASE, 1, challenge)
    with pytest.raises(MacMismatch):
        s.run(_one(cc.write_key(1, hsm.protected_key(stolen))))
    assert other.state.keys == {}


def _one(command):  # type: ignore[no-untyped-def]
    return (yield card(command))


def test_the_hsm_refuses_what_it_cannot_vouch_for(clock: FrozenClock) -> None:
    hsm = perso_hsm(clock)
    chip = bytes(8)
    request = KeyLoadRequest(SHANGHAI, plan().serial, chip, KeyType.PURCHASE, 1, bytes(4))
    assert len(hsm.protected_key(request)) == 28  # Ld ‖ 20-byte record, padded: 24; MAC: 4
    with pytest.raises(PersoDeclined, match="unknown issuer"):
        hsm.protected_key(KeyLoadRequest(bytes(8), plan().serial, chip, KeyType.LOAD, 1, bytes(4)))
    with pytest.raises(PersoDeclined, match="not a card key"):
        hsm.protected_key(
            KeyLoadRequest(SHANGHAI, plan().serial, chip, KeyType.EXTERNAL_AUTH, 1, bytes(4))
        )
    bare = HostSecurityModule([demo_keyset(SHANGHAI)], clock)
    with pytest.raises(PersoDeclined, match="transport master"):
        bare.transport_cryptogram(chip, bytes(8))


def test_another_vendor_key_set_is_refused_by_the_card(clock: FrozenClock) -> None:
    wrong = HostSecurityModule([demo_keyset(SHANGHAI)], clock, transport_master=bytes(16))
    card = new_blank(1)
    with pytest.raises(PersoError, match="refused the transport key"):
        desk_session(card, clock).run(perso.personalise(plan(), wrong, card.chip_id))
    assert card.state.auth_tries == 14


def test_plans_with_unwritable_data_are_refused() -> None:
    with pytest.raises(PersoError, match="GBK"):
        plan(name="张三丰张三丰张三丰张三丰")
    with pytest.raises(PersoError, match="card number"):
        plan(1).__class__(SHANGHAI, "12345", "张三", "X")
    with pytest.raises(PersoError, match="PIN"):
        plan(pin="12")
    with pytest.raises(PersoError, match="expiry"):
        plan(start_date=date(2030, 1, 1), expiry_date=date(2029, 1, 1))
