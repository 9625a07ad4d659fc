"""Multi-application reads (resident and social security cards) and the one-card POS that
pays from Electronic Cash or the T-Union EP by rule."""

from __future__ import annotations

import pytest

from simulators.emv_profiles import SsseProfile, emv_card, resident_card, ssse_card
from simulators.profiles import demo_card
from terminal.emv.config import KIND_EMV, KIND_EPURSE, KIND_SSSE, TerminalConfig
from terminal.emv.kernel import Outcome
from terminal.emv.oda import OdaMethod
from terminal.emv.selection import CONTACT, CONTACTLESS
from terminal.journal import SETTLED, VOID
from terminal.readers.sim import SimReader
from terminal.roles.inspect import inspect_card
from terminal.roles.onecard_pos import OneCardPos, PaymentRefused, PaymentRule
from terminal.roles.session import TerminalSession
from tests.terminal.emv.helpers import CONFIG, STORE, drive


def test_resident_card_read_shows_ec_and_ep_with_oda() -> None:
    card = resident_card(1, ec_balance=7_700, ep_balance=3_300)
    report = drive(inspect_card(CONFIG, STORE, interface=CONTACTLESS), SimReader(card))
    assert report.source == "PPSE"
    assert [a.kind for a in report.apps] == [KIND_EMV, KIND_EPURSE]
    emv = report.apps[0].emv
    assert emv is not None and emv.ec.balance == 7_700
    assert emv.app.oda.method == OdaMethod.FDDA and emv.app.oda.passed
    assert emv.app.outcome == Outcome.ONLINE_REQUEST  # a read never debits
    assert report.apps[1].epurse is not None and report.apps[1].epurse.balance == 3_300
    assert not report.only_epurse
    assert card.app("emv").ec_balance == 7_700


def test_unlisted_ep_is_found_by_probing() -> None:
    card = resident_card(1, ep_listed=False)
    report = drive(inspect_card(CONFIG, STORE), SimReader(card))
    assert [a.kind for a in report.apps] == [KIND_EMV, KIND_EPURSE]
    assert report.apps[1].candidate.source == "AID list"


def test_social_security_card_read_over_contact() -> None:
    card = ssse_card(1, ssse=SsseProfile(name="李四", card_number="B98765432"))
    report = drive(inspect_card(CONFIG, STORE, interface=CONTACT), SimReader(card))
    assert report.source == "PSE"
    kinds = [a.kind for a in report.apps]
    assert kinds == [KIND_EMV, KIND_SSSE]
    ssse = report.first(KIND_SSSE).ssse  # type: ignore[union-attr]
    assert ssse is not None
    assert ssse.basic.card_number == "B98765432"
    assert ssse.holder is not None and ssse.holder.name == "李四"
    emv = report.first(KIND_EMV).emv  # type: ignore[union-attr]
    assert emv is not None and emv.app.oda.method == OdaMethod.DDA and emv.app.oda.passed


def test_protected_holder_file_is_reported_not_fatal() -> None:
    card = ssse_card(1, ssse=SsseProfile(holder_pin_required=True))
    report = drive(inspect_card(CONFIG, STORE, interface=CONTACT), SimReader(card))
    ssse = report.first(KIND_SSSE).ssse  # type: ignore[union-attr]
    assert ssse is not None and ssse.holder is None and "PIN" in ssse.holder_note
    with_pin = drive(
        inspect_card(CONFIG, STORE, interface=CONTACT, ssse_pin="123456"), SimReader(card)
    )
    assert with_pin.first(KIND_SSSE).ssse.holder is not None  # type: ignore[union-attr]


def test_plain_tunion_card_is_the_legacy_ep_only_view() -> None:
    report = drive(inspect_card(CONFIG, STORE), SimReader(demo_card(1, balance=1_234)))
    assert report.source == "AID list"
    assert report.only_epurse and report.apps[0].epurse.balance == 1_234  # type: ignore[union-attr]


def test_a_broken_application_is_reported_and_the_others_still_read() -> None:
    card = resident_card(1)
    card.app("emv").set_record(1, 1, bytes.fromhex("7005570101"))  # truncated TLV
    report = drive(inspect_card(CONFIG, STORE), SimReader(card))
    assert "MalformedResponse" in report.apps[0].error
    assert report.apps[1].epurse is not None


# -- one-card POS --------------------------------------------------------------------------


def test_ec_first_rule_pays_from_electronic_cash(pos_for, journal) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000, ep_balance=5_000)
    sale = pos_for(card).charge(1_200)
    assert sale.source == "ec" and sale.balance_after == 3_800
    assert sale.ec is not None and sale.ec.cryptogram is not None
    assert card.app("emv").ec_balance == 3_800 and card.app("epurse").card.balance == 5_000
    row = sale.ec_row
    assert sale.journaled and row is not None and row.state == SETTLED
    crypt = sale.ec.cryptogram
    assert row["cryptogram"] == crypt.cryptogram.hex().upper()
    assert row["atc"] == int.from_bytes(crypt.atc, "big") and row["cid"] == crypt.cid
    assert row["pan"] == sale.ec.pan and row["amount"] == 1_200
    assert row["ec_balance_before"] == 5_000 and row["ec_balance_after"] == 3_800
    assert row["ec_seq"] == 1 and row.upload_seq == 1 and journal.pending_upload() == 1
    assert row["unpredictable_number"] in row["dol_data"]  # the UN journaled is the one sent


def test_a_card_decline_voids_the_ec_row_and_the_ep_pays(psam, clock, journal) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000, ep_balance=5_000)
    card.app("emv").state.ec_single_limit = 1_000  # above it the card declines offline (AAC)
    session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    session.start()
    config = TerminalConfig(trust_test_keys=True, offline_only=True)
    sale = OneCardPos(session, journal, config, STORE).charge(1_200)
    assert sale.source == "ep" and any("ec: declined" in a for a in sale.attempts)
    (ec,) = journal.ec_rows()
    assert ec.state == VOID and "AAC" in (ec["resolution"] or "") and ec.upload_seq is None
    assert card.app("emv").ec_balance == 5_000 and card.app("epurse").card.balance == 3_800
    assert journal.pending_upload() == 1  # the EP sale only


def test_short_ec_falls_back_to_the_ep(pos_for, journal) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=500, ep_balance=5_000)
    sale = pos_for(card).charge(1_200)
    assert sale.source == "ep" and sale.balance_after == 3_800
    assert sale.ep is not None and sale.ep.verified and sale.journaled
    assert journal.totals()["settled"] == (1, 1_200)
    assert any("ec: balance" in a for a in sale.attempts)
    assert card.app("emv").ec_balance == 500


def test_capped_ep_first_rule(pos_for) -> None:  # type: ignore[no-untyped-def]
    rule = PaymentRule.parse("ep<=500,ec")
    card = resident_card(1, ec_balance=5_000, ep_balance=5_000)
    pos = pos_for(card, rule)
    assert pos.charge(200).source == "ep"
    assert pos.charge(900).source == "ec"


def test_refused_when_no_source_can_pay(pos_for, journal) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=100, ep_balance=100)
    with pytest.raises(PaymentRefused) as err:
        pos_for(card).charge(1_000)
    assert len(err.value.attempts) == 2
    assert journal.rows() == []


def test_emv_only_card_cannot_use_the_ep(pos_for) -> None:  # type: ignore[no-untyped-def]
    card = emv_card(1, ec_balance=100)
    with pytest.raises(PaymentRefused, match="no T-Union EP"):
        pos_for(card, PaymentRule.parse("ep,ec")).charge(1_000)


def test_rule_parsing_rejects_unknown_sources() -> None:
    with pytest.raises(ValueError):
        PaymentRule.parse("cash")
