"""Host security module: the only terminal-side place load and TAC keys are used.

Checks the card's load MAC1 and produces MAC2 (online load), and verifies purchase and
load TACs. For personalisation it holds the card vendor's transport master key and
hands out each card key only as a WRITE KEY cryptogram MACed under the blank card's
transport key (a ``PersoHost``). In production this wraps a real HSM; here it holds
issuer master key sets loaded from a key file, and serves the demo and tests as a local
``LoadHost``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from terminal.apdu.errors import MacMismatch
from terminal.cos.commands import write_key_header
from terminal.cos.layouts import KeyRecord, KeyType
from terminal.crypto.keys import card_key, load_session_key
from terminal.crypto.keyset import IssuerKeyset
from terminal.crypto.primitives import des_encrypt
from terminal.crypto.secure import command_mac, encrypt_data, transport_key
from terminal.epurse import cryptograms
from terminal.epurse.host import LoadDeclined
from terminal.epurse.model import LoadAuthorization, LoadRequest
from terminal.epurse.perso import KEY_NAMES, KeyLoadRequest, PersoDeclined
from terminal.layout import build


class Mac1Invalid(LoadDeclined):
    """The card's MAC1 does not verify: not this card's answer to this INITIALIZE FOR LOAD."""

    def __init__(self) -> None:
        super().__init__("card MAC1 is invalid")


class HostSecurityModule:
    """Issuer key sets by issuer id; every check constant-time."""

    def __init__(
        self,
        keysets: Iterable[IssuerKeyset],
        clock: Callable[[], datetime] = datetime.now,
        *,
        transport_master: bytes | None = None,
        campus_master: bytes | None = None,
    ):
        self._keysets = {k.issuer_id: k for k in keysets}
        self._clock = clock
        self._transport_master = transport_master
        self._campus_master = campus_master  # campus INTERNAL AUTHENTICATE keys (docs/campus.md)

    def _keyset(self, issuer_id: bytes, key_version: int | None = None) -> IssuerKeyset:
        ks = self._keysets.get(issuer_id)
        if ks is None:
            raise LoadDeclined(f"unknown issuer {issuer_id.hex().upper()}")
        if key_version is not None and ks.key_version != key_version:
            raise LoadDeclined(f"no key version {key_version} for issuer {issuer_id.hex().upper()}")
        return ks

    # online load --------------------------------------------------------------------------
    def _load_session(self, request: LoadRequest) -> bytes:
        """The card's load session key, once its MAC1 over this request has verified."""
        ks = self._keyset(request.issuer_id, request.key_version)
        keys = ks.card_keys(request.card_serial)
        session = load_session_key(
            keys.load, request.card_random, request.online_atc, request.algorithm
        )
        try:
            cryptograms.verify_load_mac1(
                session,
                request.mac1,
                balance=request.balance_before,
                amount=request.amount,
                terminal_id=request.terminal_id,
            )
        except MacMismatch:
            raise Mac1Invalid() from None
        return session

    def verify_load_mac1(self, request: LoadRequest) -> None:
        """Check the card's MAC1 and issue nothing: a void's evidence must never yield a MAC2.
        Raises ``Mac1Invalid`` (or ``LoadDeclined`` for an unknown issuer or key version)."""
        self._load_session(request)

    def load_mac2(self, request: LoadRequest, when: datetime | None = None) -> LoadAuthorization:
        """Verify the card's MAC1 and compute MAC2 over the host's date and time."""
        session = self._load_session(request)
        when = (when or self._clock()).replace(microsecond=0)
        mac2 = cryptograms.load_mac2(
            session, amount=request.amount, terminal_id=request.terminal_id, when=when
        )
        return LoadAuthorization(mac2, when)

    def load_tac_valid(
        self, request: LoadRequest, authorization: LoadAuthorization, tac: bytes
    ) -> bool:
        keys = self._keyset(request.issuer_id).card_keys(request.card_serial)
        try:
            cryptograms.verify_load_tac(
                keys.tac,
                tac,
                new_balance=request.balance_before + request.amount,
                online_atc=request.online_atc,
                amount=request.amount,
                terminal_id=request.terminal_id,
                when=authorization.when,
            )
        except MacMismatch:
            return False
        return True

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
        keys = self._keyset(issuer_id).card_keys(card_serial)
        try:
            cryptograms.verify_purchase_tac(
                keys.tac,
                tac,
                amount=amount,
                txn_type=txn_type,
                terminal_id=terminal_id,
                terminal_seq=terminal_seq,
                when=when,
            )
        except MacMismatch:
            return False
        return True

    # personalisation (PersoHost) ---------------------------------------------------------
    def _transport_key(self, chip_id: bytes) -> bytes:
        if self._transport_master is None:
            raise PersoDeclined("this HSM holds no card transport master key")
        if len(chip_id) != 8:
            raise PersoDeclined("chip serial must be 8 bytes")
        return transport_key(self._transport_master, chip_id)

    def transport_cryptogram(self, chip_id: bytes, challenge: bytes) -> bytes:
        """EXTERNAL AUTHENTICATE: the card's challenge (zero-padded to 8) under its
        transport key."""
        if len(challenge) not in (4, 8):
            raise PersoDeclined("challenge must be 4 or 8 bytes")
        return des_encrypt(self._transport_key(chip_id), challenge.ljust(8, b"\x00"))

    def protected_key(self, request: KeyLoadRequest) -> bytes:
        """WRITE KEY data for one card key: the key record (type, index, version,
        algorithm, the key diversified for ``card_serial``) enciphered under the chip's
        transport key, then the secure-messaging MAC over header and cryptogram."""
        ks = self._keysets.get(request.issuer_id)
        if ks is None:
            raise PersoDeclined(f"unknown issuer {request.issuer_id.hex().upper()}")
        name = KEY_NAMES.get(request.key_type)
        if name is None and request.key_type != KeyType.INTERNAL:
            raise PersoDeclined(f"key type {int(request.key_type):02X} is not a card key")
        if len(request.card_serial) != 8 or not 0 <= request.key_index <= 0xFF:
            raise PersoDeclined("card serial must be 8 bytes and the key index one byte")
        if name is None:
            if self._campus_master is None:
                raise PersoDeclined("this HSM holds no campus master key")
            card = card_key(self._campus_master, request.card_serial, ks.issuer_id, ks.algorithm)
        else:
            card = getattr(ks.card_keys(request.card_serial), name)
        record = build(
            KeyRecord,
            key_type=request.key_type,
            key_index=request.key_index,
            key_version=ks.key_version,
            algorithm=ks.algorithm,
            key=card,
        )
        key = self._transport_key(request.chip_id)
        body = encrypt_data(key, record)
        header = write_key_header(request.key_index, len(body))
        return body + command_mac(key, header, body, request.challenge)


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
