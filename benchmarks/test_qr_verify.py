"""Ride codes: SM2 verification by library, and a whole code's offline check (issue 14).

Two SM2 implementations are timed on the same signature: OpenSSL 3's (C, called through
ctypes: what ``terminal.qr.sm2`` uses) and ``gmssl`` from PyPI (pure Python, the usual
alternative; installed by hand for this comparison, skipped when absent). The whole-code
check is three SM2 verifications plus parsing and the time and policy checks; a gate
allows 300 ms. docs/qr.md records the figures.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from simulators.qr_app import RideCodeApp
from terminal.qr import sm2
from terminal.qr.checks import MemoryHistory, QrPolicy, verify

D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
MESSAGE = bytes(range(256)) + bytes(11)  # the size of a code's user-signed part
NOW = datetime(2026, 11, 28, 8, 30, 15)
GATE_BUDGET_MS = 300


def test_sm2_verify_openssl(benchmark) -> None:  # type: ignore[no-untyped-def]
    public, signature = sm2.public_key(D), sm2.sign(D, MESSAGE)
    assert benchmark(sm2.verify, public, MESSAGE, signature)


def test_sm2_verify_gmssl_pure_python(benchmark) -> None:  # type: ignore[no-untyped-def]
    gm = pytest.importorskip("gmssl.sm2", reason="comparison only: pip install gmssl")
    public = sm2.public_key(D, compressed=False)[1:]
    signer = gm.CryptSM2(private_key=D.hex(), public_key=public.hex())
    signature = sm2.sign(D, MESSAGE).hex()
    assert benchmark(signer.verify_with_sm3, signature, MESSAGE)


def test_whole_code_offline_check(benchmark) -> None:  # type: ignore[no-untyped-def]
    app = RideCodeApp()
    iss = app.issuer()
    raw = app.code(NOW)
    roots = {app.root.index: app.root.root_key}
    policy = QrPolicy(issuers={iss.issuer_code: iss.rule})

    def check() -> object:
        return verify(raw, now=NOW, roots=roots, policy=policy, history=MemoryHistory(), fare=200)

    benchmark(check)
    assert benchmark.stats.stats.max * 1e3 < GATE_BUDGET_MS
