"""The kernel on recorded and published traces through the replay reader: a real UnionPay
test card (DDA and SDA under CA 09), the emv-tools chains, and exchanges recorded from
the software cards (which the current cards must still reproduce byte for byte)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from simulators.emv_issuer import SoftEmvIssuer
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.commands import CryptogramType
from terminal.emv.config import AID_UNIONPAY_DEBIT, SupportedAid, TerminalConfig, Transaction
from terminal.emv.errors import OdaFailure
from terminal.emv.kernel import Outcome, ec_load, process_application
from terminal.emv.oda import OdaMethod
from terminal.emv.selection import CONTACT, CONTACTLESS, Candidate, discover, select_application
from terminal.readers.replay import ReplayReader
from terminal.readers.trace import load_trace, parse_trace
from terminal.roles.inspect import inspect_card
from tests.terminal.emv import traces
from tests.terminal.emv.helpers import drive, h

DATA = traces.DATA
STORE = CaKeyStore.builtin()
NOW = traces.NOW
CANDIDATE = Candidate(AID_UNIONPAY_DEBIT, SupportedAid(AID_UNIONPAY_DEBIT))
UICS_CONFIG = TerminalConfig(date=date(2015, 3, 16), unpredictable_number=h("7863AFC6"))


def replay(name: str) -> ReplayReader:
    return ReplayReader(DATA / name)


def uics_app(config: TerminalConfig, trace_text: str | None = None):  # type: ignore[no-untyped-def]
    reader = (
        ReplayReader(parse_trace(trace_text)) if trace_text else replay("uics-contact-upi.trace")
    )
    found = drive(discover(config, CONTACT), reader)
    cand = found.candidates[0]
    fci = drive(select_application(cand), reader)
    return drive(
        process_application(cand.aid, fci, config, STORE, Transaction(), interface=CONTACT),
        reader,
    )


def test_uics_card_dda_passes_under_unionpay_ca_09() -> None:
    app = uics_app(UICS_CONFIG)
    assert app.aid == h("A000000333010102")
    assert app.pan == "6210948000000011"
    assert app.oda.method == OdaMethod.DDA and app.oda.passed, app.oda.describe()
    assert app.oda.ca_key == "A000000333/09"
    assert app.oda.issuer_id == "621094"


def test_uics_card_sda_passes_when_the_terminal_does_only_sda() -> None:
    app = uics_app(replace(UICS_CONFIG, capabilities=h("E0F880")))
    assert app.oda.method == OdaMethod.SDA and app.oda.passed, app.oda.describe()


def test_uics_card_with_an_altered_signed_record_fails_dda() -> None:
    text = (DATA / "uics-contact-upi.trace").read_text()
    altered = text.replace("5F24033010315A08", "5F24033012315A08")  # expiry 2030-10 -> 2030-12
    assert altered != text
    app = uics_app(UICS_CONFIG, altered)
    assert app.oda.failure == OdaFailure.ICC_CERT_HASH


def test_uics_card_with_another_unpredictable_number_fails_the_signature() -> None:
    # the trace holds the card's answer to 7863AFC6 only: INTERNAL AUTHENTICATE with
    # another UN is answered by header and position, and the signature (over 7863AFC6)
    # does not verify against this terminal's UN; ykt read reports it "not verifiable"
    app = uics_app(replace(UICS_CONFIG, unpredictable_number=h("7863AFC7")))
    assert app.oda.failure == OdaFailure.SDAD_HASH


@pytest.mark.parametrize("kind", ["sda", "dda"])
def test_emvtools_chains_pass_on_their_own_dates(kind: str) -> None:
    config = traces.emvtools_config(kind)
    reader = replay(f"emvtools-{kind}.trace")
    found = drive(discover(config, CONTACT), reader)
    cand = found.candidates[0]
    fci = drive(select_application(cand), reader)
    app = drive(
        process_application(
            cand.aid, fci, config, STORE_WITH_PUBLISHED, Transaction(), interface=CONTACT
        ),
        reader,
    )
    assert app.oda.method == (OdaMethod.SDA if kind == "sda" else OdaMethod.DDA)
    assert app.oda.passed, app.oda.describe()
    if kind == "sda":
        assert app.oda.data_authentication_code == h("3132")
    else:
        assert app.oda.icc_dynamic_number == h("7A33FB8C9546E1E7")


def _published_store() -> CaKeyStore:
    from tests.terminal.emv import emvtools as V

    store = CaKeyStore.builtin()
    store.add(V.VISA_CA_01)
    store.add(V.MC_CA_05)
    return store


STORE_WITH_PUBLISHED = _published_store()


def test_emvtools_sda_chain_is_refused_as_expired_today() -> None:
    config = replace(traces.emvtools_config("sda"), date=date(2026, 1, 1))
    reader = replay("emvtools-sda.trace")
    cand = drive(discover(config, CONTACT), reader).candidates[0]
    fci = drive(select_application(cand), reader)
    app = drive(
        process_application(
            cand.aid, fci, config, STORE_WITH_PUBLISHED, Transaction(), interface=CONTACT
        ),
        reader,
    )
    assert app.oda.failure == OdaFailure.ISSUER_CERT_EXPIRED


# -- traces recorded from the software cards ------------------------------------------------


def test_recorded_traces_are_what_the_software_cards_still_answer() -> None:
    for name, text in traces.recorded().items():
        assert (DATA / name).read_text() == text, f"{name} differs: regenerate with traces.py"


def _purchase(name: str, config: TerminalConfig):  # type: ignore[no-untyped-def]
    reader = replay(name)
    fci = drive(select_application(CANDIDATE), reader)
    txn = Transaction(amount=_AMOUNTS[name], when=NOW)
    return drive(process_application(CANDIDATE.aid, fci, config, STORE, txn, now=NOW), reader)


_AMOUNTS = {
    "qpboc-offline-purchase.trace": 1_234,
    "qpboc-offline-decline.trace": 2_000,
    "qpboc-tampered-record.trace": 100,
}


def test_replayed_offline_purchase_is_approved_with_tc_and_fdda() -> None:
    app = _purchase("qpboc-offline-purchase.trace", traces.terminal_config())
    assert app.outcome == Outcome.APPROVED_OFFLINE
    assert app.cryptogram is not None and app.cryptogram.kind == CryptogramType.TC
    assert app.oda.method == OdaMethod.FDDA and app.oda.passed
    assert app.available_offline_amount == 10_000 - 1_234


def test_replayed_offline_only_decline() -> None:
    config = replace(traces.terminal_config(), offline_only=True)
    app = _purchase("qpboc-offline-decline.trace", config)
    assert app.outcome == Outcome.DECLINED
    assert app.cryptogram is not None and app.cryptogram.kind == CryptogramType.AAC


def test_replayed_tampered_record_fails_fdda() -> None:
    app = _purchase("qpboc-tampered-record.trace", traces.terminal_config())
    assert app.oda.failure == OdaFailure.ICC_CERT_HASH
    assert app.outcome == Outcome.ONLINE_REQUEST


def test_replayed_fdda_with_an_untrusted_test_ca_fails_as_ca_key_missing() -> None:
    config = replace(traces.terminal_config(), trust_test_keys=False)
    assert (
        _purchase("qpboc-offline-purchase.trace", config).oda.failure == OdaFailure.CA_KEY_MISSING
    )


def test_replayed_resident_card_read() -> None:
    report = drive(
        inspect_card(traces.terminal_config(), STORE, interface=CONTACTLESS, now=NOW),
        replay("resident-contactless-read.trace"),
    )
    emv, ep = report.apps
    assert emv.emv is not None and emv.emv.ec.balance == 7_700
    assert emv.emv.app.oda.passed and emv.emv.app.oda.method == OdaMethod.FDDA
    assert ep.epurse is not None and ep.epurse.balance == 3_300


def test_replayed_social_security_card_read() -> None:
    report = drive(
        inspect_card(traces.terminal_config(), STORE, interface=CONTACT, now=NOW),
        replay("ssse-contact-read.trace"),
    )
    ssse = report.first("ssse").ssse  # type: ignore[union-attr]
    assert ssse is not None and ssse.basic.card_number == "A12345678"
    assert ssse.holder is not None and ssse.holder.name == "张三"
    emv = report.first("emv").emv  # type: ignore[union-attr]
    assert emv is not None and emv.app.oda.method == OdaMethod.DDA and emv.app.oda.passed


def test_replayed_contact_ec_top_up() -> None:
    config = traces.terminal_config()
    reader = replay("contact-ec-top-up.trace")
    fci = drive(select_application(CANDIDATE), reader)
    app = drive(
        process_application(
            CANDIDATE.aid, fci, config, STORE, Transaction(when=NOW), interface=CONTACT, now=NOW
        ),
        reader,
    )
    assert app.oda.method == OdaMethod.DDA and app.oda.passed
    result = drive(ec_load(app, 5_000, SoftEmvIssuer(), config, now=NOW), reader)
    assert result.approved and (result.balance_before, result.balance_after) == (1_000, 6_000)


def test_every_checked_in_trace_parses() -> None:
    names = sorted(p.name for p in Path(DATA).glob("*.trace"))
    assert len(names) == 11
    for name in names:
        assert load_trace(DATA / name).exchanges


def test_now_is_the_pinned_date() -> None:
    assert traces.terminal_config().date == NOW.date() == datetime(2026, 11, 28).date()
