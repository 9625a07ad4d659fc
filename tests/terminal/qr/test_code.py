"""The payload: codes from the app parse and verify; each malformation has its reason."""

from __future__ import annotations

from datetime import datetime

import pytest

from simulators.qr_app import RideCodeApp
from terminal.qr import code as layout
from terminal.qr.checks import QrPolicy, verify
from terminal.qr.code import QrMalformed, QrReason, parse

NOW = datetime(2026, 11, 28, 8, 30, 15)


@pytest.fixture(scope="module")
def app() -> RideCodeApp:
    return RideCodeApp()


def test_layout_offsets_are_the_reference_table() -> None:
    assert layout.CERT_SIZE == 117
    assert layout.CERT_OFFSET == 3
    assert layout.CUSTOM_OFFSET == 198
    assert slice(6, 53) == layout.CERT_SIGNED
    assert (layout.MIN_SIZE, layout.MAX_SIZE) == (332, 364)


@pytest.mark.parametrize("custom", [b"", b"\x01" * 7, b"\xaa" * 32])
def test_app_codes_parse_and_verify(app: RideCodeApp, custom: bytes) -> None:
    iss = app.issuer()
    acct = iss.open_account(9, custom=custom, ride_limit=800, account_type=0x02)
    from simulators.qr_app import phone_code

    raw = phone_code(iss.authorise(acct), acct, NOW)
    assert len(raw) == 332 + len(custom)
    policy = QrPolicy(issuers={iss.issuer_code: iss.rule})
    v = verify(raw, now=NOW, roots={1: app.root.root_key}, policy=policy, fare=800)
    c = v.code
    assert (c.user_account, c.issuer_code, c.platform_code) == (
        "00000000000000000009",
        "10000001",
        "20000001",
    )
    assert (c.account_type, c.ride_limit, c.custom, c.payment_account) == (
        2,
        800,
        custom,
        "6222000011112222",
    )
    assert c.generated == int(NOW.timestamp())
    assert c.certificate.issuer_id == "31000001"
    assert c.user_signed == raw[: 267 + len(custom)]
    assert c.issuer_signed == raw[3 : 198 + len(custom)]


def _set(raw: bytes, at: int, value: int) -> bytes:
    return raw[:at] + bytes([value]) + raw[at + 1 :]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda r: r[:-1], QrReason.SIZE),
        (lambda r: r + bytes(40), QrReason.SIZE),
        (lambda r: _set(r, 0, 0x7F), QrReason.VERSION),
        (lambda r: _set(r, 2, r[2] + 1), QrReason.LENGTH_FIELD),
        (lambda r: _set(r, 3, 0x25), QrReason.CERT_HEADER),
        (lambda r: _set(r, 3 + 6, 0x11), QrReason.CERT_FORMAT),
        (lambda r: _set(r, 3 + 16, 0x03), QrReason.ALGORITHM),
        (lambda r: _set(r, 3 + 11, 0x13), QrReason.BCD),  # month 13
        (lambda r: _set(r, 3 + 7, 0xAB), QrReason.BCD),
        (lambda r: _set(r, 197, 1), QrReason.CUSTOM_LENGTH),
        (lambda r: _set(r, 120, 0x07), QrReason.ACCOUNT_TEXT),
        (lambda r: _set(r, 198, 0x01), QrReason.ALGORITHM),  # issuer signature format
    ],
)
def test_each_malformation_has_its_reason(app: RideCodeApp, mangle, reason: QrReason) -> None:  # type: ignore[no-untyped-def]
    raw = app.code(NOW)
    with pytest.raises(QrMalformed) as exc:
        parse(mangle(raw))
    assert exc.value.reason is reason
    assert str(reason) in str(exc.value)


def test_version_floor_is_configuration(app: RideCodeApp) -> None:
    raw = app.code(NOW)
    assert parse(raw).version == 0x80
    with pytest.raises(QrMalformed) as exc:
        parse(raw, min_version=0x81)
    assert exc.value.reason is QrReason.VERSION
