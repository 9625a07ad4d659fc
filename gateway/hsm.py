"""Host security module: the only terminal-side place load and TAC keys are used.

Checks the card's load MAC1 and produces MAC2 (online load), and verifies purchase and
load TACs. In production this wraps a real HSM; here it holds issuer master key sets
loaded from a key file, and serves the demo and tests as a local ``LoadHost``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import datetime

from terminal.crypto.keys import load_session_key, tac_key
from terminal.crypto.keyset import IssuerKeyset
from terminal.crypto.mac import pboc_mac
from terminal.epurse.commands import TxnType
from terminal.epurse.host import LoadDeclined
from terminal.epurse.layouts import (
    LoadMac1Input,
    LoadMac2Input,
    LoadTacInput,
    PurchaseTacInput,
)
from terminal.epurse.model import LoadAuthorization, LoadRequest
from terminal.layout import build


class HostSecurityModule:
    """Issuer key sets by issuer id; every check constant-time."""

    def __init__(
        self, keysets: Iterable[IssuerKeyset], clock: Callable[[], datetime] = datetime.now
    ):
        self._keysets = {k.issuer_id: k for k in keysets}
        self._clock = clock

    def _keyset(self, issuer_id: bytes, key_version: int | None = None) -> IssuerKeyset:
        ks = self._keysets.get(issuer_id)
        if ks is None:
            raise LoadDeclined(f"unknown issuer {issuer_id.hex().upper()}")
        if key_version is not None and ks.key_version != key_version:
            raise LoadDeclined(f"no key version {key_version} for issuer {issuer_id.hex().upper()}")
        return ks

    # online load --------------------------------------------------------------------------
    def load_mac2(self, request: LoadRequest, when: datetime | None = None) -> LoadAuthorization:
        """Verify the card's MAC1 and compute MAC2 over the host's date and time."""
        ks = self._keyset(request.issuer_id, request.key_version)
        keys = ks.card_keys(request.card_serial)
        session = load_session_key(
            keys.load, request.card_random, request.online_atc, request.algorithm
        )
        expected = pboc_mac(
            session,
            build(
                LoadMac1Input,
                balance=request.balance_before,
                amount=request.amount,
                txn_type=TxnType.EP_LOAD,
                terminal_id=request.terminal_id,
            ),
        )
        if not secrets.compare_digest(expected, request.mac1):
            raise LoadDeclined("card MAC1 is invalid")
        when = (when or self._clock()).replace(microsecond=0)
        mac2 = pboc_mac(
            session,
            build(
                LoadMac2Input,
                amount=request.amount,
                txn_type=TxnType.EP_LOAD,
                terminal_id=request.terminal_id,
                date=when.date(),
                time=when.time(),
            ),
        )
        return LoadAuthorization(mac2, when)

    def load_tac_valid(
        self, request: LoadRequest, authorization: LoadAuthorization, tac: bytes
    ) -> bool:
        ks = self._keyset(request.issuer_id)
        keys = ks.card_keys(request.card_serial)
        when = authorization.when
        expected = pboc_mac(
            tac_key(keys.tac),
            build(
                LoadTacInput,
                new_balance=request.balance_before + request.amount,
                online_atc=request.online_atc,
                amount=request.amount,
                txn_type=TxnType.EP_LOAD,
                terminal_id=request.terminal_id,
                date=when.date(),
                time=when.time(),
            ),
        )
        return secrets.compare_digest(expected, tac)

    # purchase TAC (clearing) ------------------------------------------------------------------
    def purchase_tac_valid(
        self,
        *,
        issuer_id: bytes,
        card_serial: bytes,
        amount: int,
        txn_type: int,
        terminal_id: bytes,
        terminal_seq: int,
        when: datetime,
        tac: bytes,
    ) -> bool:
        ks = self._keyset(issuer_id)
        keys = ks.card_keys(card_serial)
        expected = pboc_mac(
            tac_key(keys.tac),
            build(
                PurchaseTacInput,
                amount=amount,
                txn_type=txn_type,
                terminal_id=terminal_id,
                terminal_seq=terminal_seq,
                date=when.date(),
                time=when.time(),
            ),
        )
        return secrets.compare_digest(expected, tac)


class LocalLoadHost:
    """A ``LoadHost`` backed directly by an HSM object (demo, tests, offline kiosks in a lab)."""

    def __init__(self, hsm: HostSecurityModule):
        self.hsm = hsm
        self.confirmed: list[tuple[LoadRequest, LoadAuthorization, bytes]] = []

    def authorize_load(self, request: LoadRequest) -> LoadAuthorization:
        return self.hsm.load_mac2(request)

    def confirm_load(
        self, request: LoadRequest, authorization: LoadAuthorization, tac: bytes
    ) -> None:
        if not self.hsm.load_tac_valid(request, authorization, tac):
            raise LoadDeclined("card TAC for the completed load is invalid")
        self.confirmed.append((request, authorization, tac))
