"""A rider (or a forger) presenting ride codes built to break one check each.

Every code here is signed properly except in the one respect under attack, so each test
proves that one check, and not an earlier one, refuses it: the typed reason is asserted,
and the journal has no row for it (nothing is charged to any platform).
"""

from __future__ import annotations

from pathlib import Path

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


# -- the parameter files: an upload that would break every validator's trust -----------------
from tests.adversarial.conftest import db, db_url, gateway, pg_cluster  # noqa: E402
from tests.terminal.qr.kit import TERMINAL_ID, param_files, put_params, root_line  # noqa: E402

__all__ = ["db", "db_url", "gateway", "pg_cluster"]

OFF_CURVE = "01:" + "11" * 64  # X, Y of no point on the SM2 curve


@pytest.mark.parametrize(
    ("kind", "text", "headers", "status", "error", "reason"),
    [
        ("root_keys", "01:ZZ\n", None, 422, "bad_params", "root_keys:1: root key 'ZZ' must be hex"),
        ("root_keys", OFF_CURVE + "\n", None, 422, "bad_params", "not a point on the SM2 curve"),
        ("root_keys", "# nothing\n", None, 422, "bad_params", "lists nothing"),
        ("issuers", "10000001:20000001\n10000001:*\n", None, 422, "bad_params", "listed twice"),
        ("issuers", "10000001:2\x000000001\n", None, 400, "bad_params", "NUL byte"),
        ("issuers", "#" * 40_000 + "\n10000001:*\n", None, 413, "too_large", "is over 32768"),
        ("keys", "x\n", None, 422, "bad_kind", "must be one of root_keys, issuers"),
        ("issuers", "10000001:*\n", {}, 401, "unauthenticated", "admin token missing or wrong"),
        ("issuers", "10000001:*\n", {"X-Admin-Token": "guess"}, 401, "unauthenticated", "wrong"),
    ],
)
def test_a_hostile_parameter_upload_is_refused_and_terminals_keep_the_last_good_version(
    gateway, tmp_path, clock: FrozenClock, kind, text, headers, status, error, reason
) -> None:
    from terminal.uplink import GatewayClient
    from terminal.uplink.qr_params import QrParamSync, held_version

    bus = QrBus(tmp_path / "journal.db", clock)
    settings = param_files(tmp_path, bus.app)
    good = put_params(gateway.url, "root_keys", root_line(bus.app) + "\n")
    assert good.status_code == 201, good.text
    token = gateway.register(TERMINAL_ID, role="validator")
    if headers == {}:  # a terminal's own token is not an admin's
        headers = {"Authorization": f"Bearer {token}"}
    sync = QrParamSync(GatewayClient(gateway.url, token), bus.validator.qr, settings)
    assert sync.sync_once() and held_version(settings.root_keys) == 1
    on_disk = Path(settings.root_keys).read_text(encoding="utf-8")

    r = put_params(gateway.url, kind, text, headers)
    doc = r.json()
    assert (r.status_code, doc["error"]) == (status, error), r.text
    assert reason in doc["reason"], doc
    assert gateway.count("qr_params") == 1  # nothing stored
    assert not sync.sync_once()  # nothing to fetch
    assert Path(settings.root_keys).read_text(encoding="utf-8") == on_disk
    assert set(bus.validator.qr.roots) == {1}
    assert bus.scan(bus.code()).green  # the last good version still verifies codes


def test_a_hostile_file_reaching_a_terminal_changes_nothing_there(
    gateway, tmp_path, clock: FrozenClock
) -> None:
    """Defence in depth: a file stored behind the gateway's back (a restored backup, a
    hand-edited row) is checked again by the validator and refused with the reason."""
    from terminal.uplink import GatewayClient
    from terminal.uplink.qr_params import QrParamSync

    bus = QrBus(tmp_path / "journal.db", clock)
    settings = param_files(tmp_path, bus.app)
    with gateway.db.tx() as cur:
        cur.execute(
            "INSERT INTO qr_params (kind, body, sha256, entries, actor, at)"
            " VALUES ('root_keys', ?, '', 1, 'db', 0)",
            (OFF_CURVE + "\n",),
        )
    token = gateway.register(TERMINAL_ID, role="validator")
    sync = QrParamSync(GatewayClient(gateway.url, token), bus.validator.qr, settings)
    before = Path(settings.root_keys).read_text(encoding="utf-8")
    assert not sync.sync_once()
    assert "not a point on the SM2 curve" in sync.last_error
    assert Path(settings.root_keys).read_text(encoding="utf-8") == before
    assert bus.scan(bus.code()).green and bus.rows() == 1
