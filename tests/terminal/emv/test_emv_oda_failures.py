"""Every ODA failure reason, each produced by exactly the fault it names, on data from the
software card and its TEST PKI (certificates re-signed with the test keys where a fault
must survive the RSA layer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

import pytest

from simulators.emv_pki import certify_icc
from simulators.emv_profiles import (
    EmvProfile,
    application_records,
    default_issuer,
    demo_pan,
    emv_card,
    make_issuer,
)
from simulators.emv_test_keys import TEST_CA_KEY, TEST_ICC_KEYS, TEST_ISSUER_KEY
from terminal.apdu import tlv
from terminal.emv.ca_keys import RID_UNIONPAY, TEST_CA_INDEX, CaKeyStore
from terminal.emv.certificates import (
    HASH_LEN,
    encode_icc_certificate,
    encode_issuer_certificate,
    encode_signed_static_data,
    sha1,
)
from terminal.emv.config import AID_UNIONPAY_DEBIT, SupportedAid, TerminalConfig, Transaction
from terminal.emv.errors import OdaFailure
from terminal.emv.kernel import ApplicationData, process_application
from terminal.emv.oda import OdaContext, OdaMethod, OdaResult, run_fdda, run_sda
from terminal.emv.selection import CONTACT, Candidate, select_application
from terminal.emv.tags import Tag
from terminal.readers.sim import SimReader
from tests.terminal.emv.helpers import drive, h

TODAY = date(2026, 11, 28)
NOW = datetime(2026, 11, 28, 8, 30)
CONFIG = TerminalConfig(trust_test_keys=True, unpredictable_number=h("11223344"))
CANDIDATE = Candidate(AID_UNIONPAY_DEBIT, SupportedAid(AID_UNIONPAY_DEBIT))


def qpboc_app() -> ApplicationData:
    """One qPBOC transaction on a fresh software card: GPO response with fDDA, records."""
    card = emv_card(1)
    reader = SimReader(card)
    fci = drive(select_application(CANDIDATE), reader)
    txn = Transaction(amount=100, when=NOW)
    app = drive(
        process_application(CANDIDATE.aid, fci, CONFIG, CaKeyStore.builtin(), txn, now=NOW), reader
    )
    assert app.oda.passed, app.oda.describe()
    return app


APP = qpboc_app()
STATIC = APP.records.static_data + APP.aip


def ctx(**kw: object) -> OdaContext:
    base = OdaContext(RID_UNIONPAY, CaKeyStore.builtin(), TODAY, STATIC, "", True)
    return replace(base, **kw)  # type: ignore[arg-type]


def fdda(
    card: dict[int, bytes] | None = None, c: OdaContext | None = None, **kw: object
) -> OdaResult:
    terminal = dict(APP.terminal)
    terminal.update(kw.pop("terminal", {}))  # type: ignore[call-overload]
    formats = kw.pop("formats", (0x05, 0x95))  # type: ignore[call-overload]
    return run_fdda(card if card is not None else dict(APP.card), c or ctx(), terminal, formats)


def sda(card: dict[int, bytes] | None = None, c: OdaContext | None = None) -> OdaResult:
    return run_sda(card if card is not None else dict(APP.card), c or ctx())


def with_(**changes: bytes | None) -> dict[int, bytes]:
    card = dict(APP.card)
    for name, value in changes.items():
        tag = getattr(Tag, name)
        if value is None:
            card.pop(tag, None)
        else:
            card[tag] = value
    return card


def reframe(plain: bytes, index: int, value: int, extra: bytes) -> bytes:
    """Set one byte of a certificate body and recompute its hash (so only that byte is wrong)."""
    body = bytearray(plain[1 : len(plain) - HASH_LEN - 1])
    body[index - 1] = value
    return b"\x6a" + bytes(body) + sha1(bytes(body) + extra) + b"\xbc"


ISSUER = default_issuer()


def issuer_plain() -> tuple[bytes, bytes]:
    return encode_issuer_certificate(
        TEST_CA_KEY.size,
        ISSUER.issuer_id,
        h("1235"),
        h("000001"),
        TEST_ISSUER_KEY.modulus,
        TEST_ISSUER_KEY.exponent,
    )


def icc_plain(pan: bytes | None = None) -> tuple[bytes, bytes]:
    icc = TEST_ICC_KEYS[0]
    return encode_icc_certificate(
        TEST_ISSUER_KEY.size,
        pan or APP.card[Tag.PAN],
        h("1235"),
        h("000001"),
        icc.modulus,
        icc.exponent,
        STATIC,
    )


def _ca_expired() -> OdaResult:
    store = CaKeyStore.builtin()
    key = store.get(RID_UNIONPAY, TEST_CA_INDEX, trust_test_keys=True)
    assert key is not None
    store.add(replace(key, expiry=date(2025, 1, 1)))
    return fdda(c=ctx(store=store))


def _revoked() -> OdaResult:
    store = CaKeyStore.builtin()
    store.revoke(RID_UNIONPAY, TEST_CA_INDEX, h("000001"))
    return fdda(c=ctx(store=store))


def _issuer_variant(**kw: object) -> OdaResult:
    other = make_issuer(**kw)  # type: ignore[arg-type]
    c = other.certificate
    return fdda(with_(ISSUER_PK_CERT=c.certificate, ISSUER_PK_REMAINDER=c.remainder))


def _issuer_format() -> OdaResult:
    plain, _ = issuer_plain()
    bad = bytearray(plain)
    bad[1] = 0x07
    return fdda(with_(ISSUER_PK_CERT=TEST_CA_KEY.sign_raw(bytes(bad))))


def _issuer_algorithm() -> OdaResult:
    plain, rem = issuer_plain()
    return fdda(with_(ISSUER_PK_CERT=TEST_CA_KEY.sign_raw(reframe(plain, 11, 0x02, rem + b"\x03"))))


def _icc_format() -> OdaResult:
    plain, _ = icc_plain()
    bad = bytearray(plain)
    bad[1] = 0x02
    return fdda(with_(ICC_PK_CERT=TEST_ISSUER_KEY.sign_raw(bytes(bad))))


def _icc_algorithm() -> OdaResult:
    plain, rem = icc_plain()
    extra = rem + b"\x03" + STATIC
    return fdda(with_(ICC_PK_CERT=TEST_ISSUER_KEY.sign_raw(reframe(plain, 18, 0x07, extra))))


def _icc_pan() -> OdaResult:
    other_pan = bytes.fromhex(demo_pan(77))
    cert = certify_icc(TEST_ISSUER_KEY, TEST_ICC_KEYS[0], other_pan, STATIC)
    return fdda(with_(ICC_PK_CERT=cert.certificate, ICC_PK_REMAINDER=cert.remainder))


def _icc_expired() -> OdaResult:
    cert = certify_icc(
        TEST_ISSUER_KEY, TEST_ICC_KEYS[0], APP.card[Tag.PAN], STATIC, expiry=h("1025")
    )
    return fdda(with_(ICC_PK_CERT=cert.certificate, ICC_PK_REMAINDER=cert.remainder))


def _ssad_format() -> OdaResult:
    plain = bytearray(encode_signed_static_data(TEST_ISSUER_KEY.size, h("DAC1"), STATIC))
    plain[1] = 0x05
    return sda(with_(SSAD=TEST_ISSUER_KEY.sign_raw(bytes(plain))))


CASES: dict[OdaFailure, Callable[[], OdaResult]] = {
    OdaFailure.MISSING_DATA: lambda: fdda(with_(ISSUER_PK_CERT=None)),
    OdaFailure.CA_KEY_MISSING: lambda: fdda(c=ctx(trust_test_keys=False)),
    OdaFailure.CA_KEY_EXPIRED: _ca_expired,
    OdaFailure.STATIC_DATA_INVALID: lambda: fdda(c=ctx(static_data_error="record not 70")),
    OdaFailure.ISSUER_CERT_LENGTH: lambda: fdda(
        with_(ISSUER_PK_CERT=APP.card[Tag.ISSUER_PK_CERT][1:])
    ),
    OdaFailure.ISSUER_CERT_FORMAT: _issuer_format,
    OdaFailure.ISSUER_CERT_HASH: lambda: fdda(with_(ISSUER_PK_REMAINDER=h("00000000"))),
    OdaFailure.ISSUER_CERT_ALGORITHM: _issuer_algorithm,
    OdaFailure.ISSUER_ID_MISMATCH: lambda: _issuer_variant(issuer_id="621234"),
    OdaFailure.ISSUER_CERT_EXPIRED: lambda: _issuer_variant(expiry=h("1025")),
    OdaFailure.ISSUER_KEY_REVOKED: _revoked,
    OdaFailure.ISSUER_REMAINDER_MISSING: lambda: fdda(with_(ISSUER_PK_REMAINDER=None)),
    OdaFailure.SSAD_LENGTH: lambda: sda(with_(SSAD=APP.card[Tag.SSAD][:-1])),
    OdaFailure.SSAD_FORMAT: _ssad_format,
    OdaFailure.SSAD_HASH: lambda: sda(c=ctx(static_data=STATIC + b"\x00")),
    OdaFailure.ICC_CERT_LENGTH: lambda: fdda(
        with_(ICC_PK_CERT=APP.card[Tag.ICC_PK_CERT] + b"\x00")
    ),
    OdaFailure.ICC_CERT_FORMAT: _icc_format,
    OdaFailure.ICC_CERT_HASH: lambda: fdda(c=ctx(static_data=STATIC[:-1] + b"\x01")),
    OdaFailure.ICC_CERT_ALGORITHM: _icc_algorithm,
    OdaFailure.ICC_PAN_MISMATCH: _icc_pan,
    OdaFailure.ICC_CERT_EXPIRED: _icc_expired,
    OdaFailure.ICC_REMAINDER_MISSING: lambda: fdda(with_(ICC_PK_REMAINDER=None)),
    OdaFailure.SDAD_LENGTH: lambda: fdda(with_(SDAD=APP.card[Tag.SDAD][:-1])),
    OdaFailure.SDAD_FORMAT: lambda: fdda(formats=(0x95,)),
    OdaFailure.SDAD_HASH: lambda: fdda(terminal={Tag.UNPREDICTABLE_NUMBER: h("11223345")}),
    OdaFailure.DYNAMIC_NUMBER_MISMATCH: lambda: fdda(with_(ATC=h("7FFF"))),
}


def test_the_untampered_data_passes_both_fdda_and_sda() -> None:
    assert fdda().passed
    r = sda()
    assert r.passed and r.method == OdaMethod.SDA and r.data_authentication_code == h("DAC1")


@pytest.mark.parametrize("reason", list(CASES), ids=lambda r: r.name)
def test_each_fault_gives_its_own_reason(reason: OdaFailure) -> None:
    result = CASES[reason]()
    assert not result.passed
    assert result.failure == reason, result.describe()


def test_every_reason_is_covered() -> None:
    # NOT_SUPPORTED and INTERNAL_AUTHENTICATE_FAILED come from the kernel: tested below
    kernel = {OdaFailure.NOT_SUPPORTED, OdaFailure.INTERNAL_AUTHENTICATE_FAILED}
    assert set(CASES) | kernel == set(OdaFailure)


def test_no_common_method_is_not_supported() -> None:
    card = emv_card(1, interface=CONTACT)
    reader = SimReader(card)
    config = replace(CONFIG, capabilities=h("E0F800"))
    fci = drive(select_application(CANDIDATE), reader)
    app = drive(
        process_application(
            CANDIDATE.aid,
            fci,
            config,
            CaKeyStore.builtin(),
            Transaction(when=NOW),
            interface=CONTACT,
            now=NOW,
        ),
        reader,
    )
    assert app.oda.method == OdaMethod.NONE
    assert app.oda.failure == OdaFailure.NOT_SUPPORTED
    assert "not performed" in app.oda.describe()


def test_records_of_the_profile_build_the_same_static_data() -> None:
    _, static = application_records(EmvProfile(pan=demo_pan(1)), ISSUER, TEST_ICC_KEYS[0])
    assert static == STATIC
    assert tlv.parse(static[:-2])  # the ODA record value is well-formed TLV


@pytest.mark.parametrize("answer", ["6985", "7703 9F3601 00 9000".replace(" ", "")])
def test_refused_or_empty_internal_authenticate_fails_dda(answer: str) -> None:
    from terminal.emv.oda import run_dda
    from tests.terminal.emv.helpers import scripted

    card = dict(APP.card)
    reader = scripted([("008800000411223344" + "00", answer)])
    result = drive(run_dda(card, ctx(), {Tag.UNPREDICTABLE_NUMBER: h("11223344")}), reader)
    assert result.method == OdaMethod.DDA
    assert result.failure == OdaFailure.INTERNAL_AUTHENTICATE_FAILED
