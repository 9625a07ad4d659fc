"""A rider (or a forger) presenting ride codes built to break one check each.

Every code here is signed properly except in the one respect under attack, so each test
proves that one check, and not an earlier one, refuses it: the typed reason is asserted,
and the journal has no row for it (nothing is charged to any platform).
"""

from __future__ import annotations

import pytest

from simulators.qr_app import RideCodeApp, phone_code
from terminal.qr import sm2
from terminal.qr.checks import IssuerRule, QrPolicy
from terminal.qr.code import QrReason
from tests.conftest import FrozenClock
from tests.terminal.qr.kit import QrBus


@pytest.fixture
def bus(tmp_path, clock: FrozenClock) -> QrBus:  # type: ignore[no-untyped-def]
    return QrBus(tmp_path / "journal.db", clock)


def refused(bus: QrBus, raw: bytes, reason: QrReason, rows: int = 0) -> str:
    r = bus.scan(raw)
    assert (r.green, r.reason, bus.rows()) == (False, str(reason), rows), r.line()
    return r.message


def test_a_good_code_rides_once_and_is_journaled(bus: QrBus) -> None:
    r = bus.scan(bus.code())
    assert (r.green, r.fare, bus.rows()) == (True, 200, 1), r.line()
    row = bus.journal.qr_rows()[0]
    assert (row["platform_code"], row["amount"], row.state) == ("20000001", 200, "settled")


def test_wrong_root_index(bus: QrBus) -> None:
    iss = bus.app.issuer()
    iss.certificate = bus.app.root.certify(sm2.public_key(iss.private_key), "31000001", index=2)
    msg = refused(bus, bus.code(), QrReason.UNKNOWN_ROOT_KEY)
    assert "no root key 02" in msg


def test_expired_certificate(tmp_path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    app = RideCodeApp()
    app.issuer(cert_expiry="1026")  # October 2026; the clock says November
    bus = QrBus(tmp_path / "j.db", clock, app)
    assert "expired 2026-10-31" in refused(bus, bus.code(), QrReason.CERT_EXPIRED)


def test_expired_root_key(tmp_path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from simulators.qr_app import RootCA

    bus = QrBus(tmp_path / "j.db", clock, RideCodeApp(RootCA(expiry=date(2026, 6, 30))))
    refused(bus, bus.code(), QrReason.ROOT_KEY_EXPIRED)


# one byte in each signed range: the certificate's (root signature), the account data's
# (issuer signature) and the phone's part (user signature), and each signature itself
@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (3 + 7, QrReason.CERT_SIGNATURE),  # issuer id (BCD stays BCD: 0x31 -> 0x30)
        (3 + 30, QrReason.CERT_SIGNATURE),  # the issuer's public key
        (3 + 60, QrReason.CERT_SIGNATURE),  # the root signature
        (125, QrReason.ISSUER_SIGNATURE),  # payment account
        (140, QrReason.ISSUER_SIGNATURE),  # user account
        (157, QrReason.ISSUER_SIGNATURE),  # per-ride limit
        (194, QrReason.ISSUER_SIGNATURE),  # authorisation expiry
        (230, QrReason.ISSUER_SIGNATURE),  # the issuer signature
        (266, QrReason.USER_SIGNATURE),  # generation time
        (300, QrReason.USER_SIGNATURE),  # the user signature
    ],
)
def test_altered_byte_in_each_signed_range(bus: QrBus, offset: int, reason: QrReason) -> None:
    raw = bytearray(bus.code())
    raw[offset] ^= 0x01
    refused(bus, bytes(raw), reason)


def test_expired_validity(bus: QrBus, clock: FrozenClock) -> None:
    raw = bus.code()  # valid 60 s
    clock.advance(seconds=61)
    assert "refresh the code" in refused(bus, raw, QrReason.CODE_EXPIRED)


def test_generated_in_the_future(bus: QrBus, clock: FrozenClock) -> None:
    iss = bus.app.issuer()
    acct = iss.open_account(1)
    raw = phone_code(iss.authorise(acct), acct, int(clock().timestamp()) + 21)
    refused(bus, raw, QrReason.FUTURE)
    ok = phone_code(iss.authorise(acct), acct, int(clock().timestamp()) + 20)
    assert bus.scan(ok).green  # within the configured skew


def test_authorisation_expired(bus: QrBus, clock: FrozenClock) -> None:
    refused(bus, bus.code(auth_expiry=int(clock().timestamp()) - 1), QrReason.AUTH_EXPIRED)


def test_validity_above_the_maximum(bus: QrBus) -> None:
    refused(bus, bus.code(validity=1201), QrReason.VALIDITY_TOO_LONG)


def test_replay_of_the_same_code(bus: QrBus, clock: FrozenClock) -> None:
    raw = bus.code()
    assert bus.scan(raw).green
    clock.advance(seconds=5)
    refused(bus, raw, QrReason.REPLAY, rows=1)


def test_debounce_same_account_new_code(bus: QrBus, clock: FrozenClock) -> None:
    assert bus.scan(bus.code()).green
    clock.advance(seconds=1)
    refused(bus, bus.code(), QrReason.DEBOUNCE, rows=1)


def test_minimum_interval_per_account(tmp_path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    app = RideCodeApp()
    iss = app.issuer()
    policy = QrPolicy(issuers={iss.issuer_code: iss.rule}, min_interval=300)
    bus = QrBus(tmp_path / "j.db", clock, app, policy)
    assert bus.scan(bus.code()).green
    clock.advance(seconds=60)
    refused(bus, bus.code(), QrReason.TOO_SOON, rows=1)


def test_unknown_issuer(bus: QrBus) -> None:
    refused(bus, bus.code(issuer="10000002"), QrReason.UNKNOWN_ISSUER)


def test_known_issuer_on_another_platform(bus: QrBus) -> None:
    refused(bus, bus.code(platform_code=bytes.fromhex("20000009")), QrReason.UNKNOWN_ISSUER)


def test_account_type_not_accepted(tmp_path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    app = RideCodeApp()
    iss = app.issuer()
    policy = QrPolicy(issuers={iss.issuer_code: iss.rule}, account_types=frozenset({1, 2}))
    bus = QrBus(tmp_path / "j.db", clock, app, policy)
    refused(bus, bus.code(account_type=0x09), QrReason.ACCOUNT_TYPE)


def test_fare_above_the_per_ride_limit(bus: QrBus) -> None:
    assert "above the code's per-ride limit" in refused(
        bus, bus.code(ride_limit=199), QrReason.OVER_LIMIT
    )


def test_signer_id_is_the_issuers(tmp_path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    """An issuer signing with its own ID verifies only where the terminal knows that ID."""
    app = RideCodeApp()
    iss = app.issuer(signer_id=b"LOCAL-CODES-0001")
    wrong = QrPolicy(issuers={iss.issuer_code: IssuerRule(iss.issuer_code, iss.platform_code)})
    bus = QrBus(tmp_path / "a.db", clock, app, wrong)
    refused(bus, bus.code(), QrReason.ISSUER_SIGNATURE)
    right = QrBus(tmp_path / "b.db", clock, app)
    assert right.scan(right.code()).green
