"""The kernel on the software card: qPBOC offline purchase with TC, the online-request,
decline and try-another-interface paths, fDDA policy, tampered records; contact DDA and
SDA; Electronic Cash reads, log and top-up through the issuer script."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from simulators.emv_issuer import SoftEmvIssuer
from simulators.emv_profiles import emv_card, make_issuer
from simulators.multiapp_card import SoftIcc
from terminal.apdu import tlv
from terminal.emv.commands import CryptogramType
from terminal.emv.config import (
    AID_UNIONPAY_DEBIT,
    FDDA_FAILURE_DECLINE,
    SupportedAid,
    TerminalConfig,
    Transaction,
)
from terminal.emv.ec import read_ec_info, read_log
from terminal.emv.errors import OdaFailure
from terminal.emv.fci import LogEntry
from terminal.emv.kernel import ApplicationData, Outcome, ec_load, process_application
from terminal.emv.oda import OdaMethod
from terminal.emv.selection import CONTACT, CONTACTLESS, Candidate, select_application
from terminal.emv.tags import Tag
from terminal.readers.sim import SimReader
from tests.terminal.emv.helpers import CONFIG, STORE, drive, h

NOW = datetime(2026, 11, 28, 8, 30, 15)
CANDIDATE = Candidate(AID_UNIONPAY_DEBIT, SupportedAid(AID_UNIONPAY_DEBIT))


def transact(
    card: SoftIcc,
    amount: int,
    config: TerminalConfig = CONFIG,
    interface: str = CONTACTLESS,
    **txn: object,
) -> ApplicationData:
    card.interface = interface
    reader = SimReader(card)
    fci = drive(select_application(CANDIDATE), reader)
    t = Transaction(amount=amount, when=NOW, **txn)  # type: ignore[arg-type]
    return drive(
        process_application(CANDIDATE.aid, fci, config, STORE, t, interface=interface, now=NOW),
        reader,
    )


def ec(card: SoftIcc) -> int:
    return card.app("emv").ec_balance


def test_qpboc_offline_purchase_is_approved_with_a_tc_and_debits_ec() -> None:
    card = emv_card(1, ec_balance=10_000)
    app = transact(card, 1_234)
    assert app.outcome == Outcome.APPROVED_OFFLINE
    assert app.cryptogram is not None and app.cryptogram.kind == CryptogramType.TC
    assert app.oda.method == OdaMethod.FDDA and app.oda.passed
    assert app.gpo is not None and app.gpo.template == Tag.RESPONSE_FORMAT_2
    assert app.available_offline_amount == 8_766 == ec(card)
    assert app.oda.icc_dynamic_number == app.card[Tag.ATC]


def test_the_ec_log_records_the_offline_purchase() -> None:
    card = emv_card(1, ec_balance=10_000)
    transact(card, 500)
    transact(card, 250)
    reader = SimReader(card)
    drive(select_application(CANDIDATE), reader)
    log = drive(read_log(LogEntry(0x0B, 10)), reader)
    assert [r.amount for r in log.records] == [250, 500]
    assert [r.atc for r in log.records] == [2, 1]
    assert log.records[0].when is not None and log.records[0].when.date() == NOW.date()


def test_amount_above_the_ec_balance_goes_online() -> None:
    card = emv_card(1, ec_balance=1_000)
    app = transact(card, 1_001)
    assert app.outcome == Outcome.ONLINE_REQUEST
    assert app.cryptogram is not None and app.cryptogram.kind == CryptogramType.ARQC
    assert ec(card) == 1_000


def test_offline_only_terminal_gets_a_decline_when_ec_is_short() -> None:
    card = emv_card(1, ec_balance=1_000)
    app = transact(card, 2_000, replace(CONFIG, offline_only=True))
    assert app.outcome == Outcome.DECLINED
    assert app.cryptogram is not None and app.cryptogram.kind == CryptogramType.AAC
    assert ec(card) == 1_000


def test_amount_above_the_single_transaction_limit_goes_online() -> None:
    card = emv_card(1, ec_balance=90_000, ec_single_limit=5_000)
    assert transact(card, 5_001).outcome == Outcome.ONLINE_REQUEST
    assert transact(card, 5_000).outcome == Outcome.APPROVED_OFFLINE


def test_amount_above_the_floor_limit_makes_the_terminal_ask_for_online() -> None:
    card = emv_card(1, ec_balance=90_000)
    app = transact(card, 10_000, replace(CONFIG, floor_limit=5_000))
    assert app.outcome == Outcome.ONLINE_REQUEST
    assert app.terminal[Tag.TTQ][1] & 0x80


def test_amount_at_the_contactless_limit_means_try_another_interface() -> None:
    card = emv_card(1)
    app = transact(card, 100, replace(CONFIG, contactless_limit=100))
    assert app.outcome == Outcome.TRY_ANOTHER_INTERFACE
    assert app.gpo is None


def test_card_refusing_qpboc_means_try_another_interface() -> None:
    card = emv_card(1)
    config = replace(CONFIG, ttq=h("10000000"))  # contact PBOC only, no qPBOC bit
    assert transact(card, 100, config).outcome == Outcome.TRY_ANOTHER_INTERFACE


def test_currency_other_than_the_ec_currency_goes_online() -> None:
    card = emv_card(1)
    assert transact(card, 100, replace(CONFIG, currency="0840")).outcome == Outcome.ONLINE_REQUEST


def test_tampered_record_fails_fdda_and_the_tc_is_not_honoured() -> None:
    card = emv_card(1, ec_balance=10_000)
    emv = card.app("emv")
    emv.set_record(2, 1, emv.record(2, 1).replace(h("9F0D05D8"), h("9F0D05D9")))  # an IAC bit
    app = transact(card, 100)
    assert app.oda.failure == OdaFailure.ICC_CERT_HASH
    assert app.outcome == Outcome.ONLINE_REQUEST
    declining = transact(card, 100, replace(CONFIG, fdda_failure=FDDA_FAILURE_DECLINE))
    assert declining.outcome == Outcome.DECLINED


def test_altered_sda_tag_list_makes_the_static_data_unusable() -> None:
    card = emv_card(1)
    emv = card.app("emv")
    record = bytearray(emv.record(2, 1))
    record[-1] ^= 0x01  # 9F4A 82 -> 83
    emv.set_record(2, 1, bytes(record))
    assert transact(card, 100).oda.failure == OdaFailure.STATIC_DATA_INVALID


def test_tampered_pan_fails_fdda_with_a_hash_mismatch() -> None:
    card = emv_card(1)
    emv = card.app("emv")
    raw = emv.record(2, 1).replace(bytes.fromhex(emv.state.pan[:8]), h("62999900"), 1)
    raw = raw[:5] + bytes([raw[5] ^ 0x10]) + raw[6:]
    emv.set_record(2, 1, raw)
    app = transact(card, 100)
    assert not app.oda.passed
    assert app.oda.failure in (OdaFailure.ICC_CERT_HASH, OdaFailure.ISSUER_ID_MISMATCH)


@pytest.mark.parametrize(
    ("card_format", "accepted", "passes"),
    [
        (0x05, (0x05,), True),
        (0x95, (0x05, 0x95), True),
        (0x95, (0x05,), False),
    ],
)
def test_fdda_format_byte_is_configurable(
    card_format: int, accepted: tuple[int, ...], passes: bool
) -> None:
    card = emv_card(1, fdda_format=card_format)
    app = transact(card, 100, replace(CONFIG, fdda_formats=accepted))
    assert app.oda.passed is passes
    if not passes:
        assert app.oda.failure == OdaFailure.SDAD_FORMAT


def test_untrusted_test_ca_means_ca_key_missing() -> None:
    app = transact(emv_card(1), 100, replace(CONFIG, trust_test_keys=False))
    assert app.oda.failure == OdaFailure.CA_KEY_MISSING
    assert app.outcome == Outcome.ONLINE_REQUEST


def test_expired_application_is_not_approved_offline() -> None:
    from datetime import date

    card = emv_card(1, expiry=date(2026, 1, 31))
    # the card itself will not approve offline past its expiry
    assert transact(card, 100).outcome == Outcome.ONLINE_REQUEST
    # and when a (faulty) card sends a TC anyway, the terminal declines it
    card.app("emv").state.expiry = "991231"
    app = transact(card, 100)
    assert app.cryptogram is not None and app.cryptogram.kind == CryptogramType.TC
    assert app.outcome == Outcome.DECLINED and "expired" in app.reason


def test_contact_read_uses_gpo_format_1_and_dda_with_internal_authenticate() -> None:
    card = emv_card(1)
    app = transact(card, 0, interface=CONTACT)
    assert app.gpo is not None and app.gpo.template == Tag.RESPONSE_FORMAT_1
    assert app.oda.method == OdaMethod.DDA and app.oda.passed
    assert app.outcome == Outcome.READ_ONLY
    assert len(app.oda.icc_dynamic_number or b"") == 8


def test_contact_terminal_without_dda_falls_back_to_sda() -> None:
    card = emv_card(1)
    app = transact(card, 0, replace(CONFIG, capabilities=h("E0F880")), interface=CONTACT)
    assert app.oda.method == OdaMethod.SDA and app.oda.passed
    assert app.oda.data_authentication_code == h("DAC1")


def test_contact_tampered_record_fails_dda_and_sda() -> None:
    card = emv_card(1)
    emv = card.app("emv")
    emv.set_record(2, 1, emv.record(2, 1).replace(h("9F0D05D8"), h("9F0D05D9")))
    dda = transact(card, 0, interface=CONTACT)
    assert dda.oda.method == OdaMethod.DDA and dda.oda.failure == OdaFailure.ICC_CERT_HASH
    sda = transact(card, 0, replace(CONFIG, capabilities=h("E0F880")), interface=CONTACT)
    assert sda.oda.method == OdaMethod.SDA and sda.oda.failure == OdaFailure.SSAD_HASH


def test_ec_info_by_get_data() -> None:
    card = emv_card(1, ec_balance=4_321, ec_balance_limit=50_000, ec_single_limit=2_000)
    reader = SimReader(card)
    drive(select_application(CANDIDATE), reader)
    info = drive(read_ec_info(), reader)
    assert (info.balance, info.balance_limit, info.single_limit) == (4_321, 50_000, 2_000)
    assert info.currency == "0156"


def _load(card: SoftIcc, amount: int, host: SoftEmvIssuer):  # type: ignore[no-untyped-def]
    card.interface = CONTACT
    reader = SimReader(card)
    fci = drive(select_application(CANDIDATE), reader)
    app = drive(
        process_application(
            CANDIDATE.aid, fci, CONFIG, STORE, Transaction(when=NOW), interface=CONTACT, now=NOW
        ),
        reader,
    )
    return drive(ec_load(app, amount, host, CONFIG, now=NOW), reader)


def test_ec_top_up_through_the_issuer_script() -> None:
    card = emv_card(1, ec_balance=1_000)
    host = SoftEmvIssuer()
    result = _load(card, 5_000, host)
    assert result.approved, result.reason
    assert (result.balance_before, result.balance_after) == (1_000, 6_000) == (1_000, ec(card))
    assert result.final_cid & 0xC0 == CryptogramType.TC
    assert [s.ok for s in result.scripts] == [True]
    assert host.loads == [(card.app("emv").state.pan, 5_000)]


def test_ec_top_up_declined_by_the_issuer_leaves_the_balance() -> None:
    card = emv_card(1, ec_balance=1_000)
    result = _load(card, 5_000, SoftEmvIssuer(approve=False))
    assert not result.approved and result.balance_after == 1_000 == ec(card)
    assert result.final_cid & 0xC0 == CryptogramType.AAC


def test_ec_top_up_from_a_host_with_other_keys_fails_on_the_card() -> None:
    card = emv_card(1, ec_balance=1_000)
    stranger = SoftEmvIssuer(replace(make_issuer(), imk_ac=h("11" * 16), imk_mac=h("22" * 16)))
    stranger.arqc_valid = lambda request: True  # type: ignore[method-assign]
    result = _load(card, 5_000, stranger)
    assert not result.approved
    assert ec(card) == 1_000
    assert result.scripts and not result.scripts[0].ok  # the card refused the script MAC


def test_ec_top_up_over_the_balance_limit_is_refused_by_the_card() -> None:
    card = emv_card(1, ec_balance=90_000, ec_balance_limit=100_000)
    result = _load(card, 20_000, SoftEmvIssuer())
    assert not result.approved and ec(card) == 90_000
    assert result.scripts[0].sws == [0x6A80]


def test_scripts_parse_rejects_foreign_templates() -> None:
    from terminal.apdu.errors import MalformedResponse
    from terminal.emv.ec import parse_scripts

    with pytest.raises(MalformedResponse):
        parse_scripts(h("5A0101"))
    with pytest.raises(MalformedResponse):
        parse_scripts(h("7203860101"))  # a one-byte "command"
    script = tlv.build(
        0x72, [tlv.build(0x9F18, h("00000001")), tlv.build(0x86, h("04DA9F7903000001"))]
    )
    scripts = parse_scripts(script.encode())
    assert scripts[0].script_id == h("00000001") and len(scripts[0].commands) == 1
