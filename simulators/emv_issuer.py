"""The software card issuer's host for Electronic Cash top-up (TEST keys only).

Checks the card's ARQC with the AC session key, answers with ARPC (method 1) as issuer
authentication data and an issuer script that sets the new EC balance (PUT DATA 9F79
with a MAC under the MAC session key). The issuer trusts the balance the terminal
read; a production host would keep its own shadow balance.
"""

from __future__ import annotations

import secrets

from simulators.emv_card import AC_INPUT_LENGTH
from simulators.emv_profiles import IssuerPki, default_issuer
from terminal.apdu import tlv
from terminal.crypto.emv import (
    application_cryptogram,
    arpc_method1,
    icc_master_key,
    pboc_session_key,
    script_mac,
)
from terminal.emv.ec import EcLoadAuthorization, EcLoadRequest, ec_load_command, ec_load_mac_input
from terminal.emv.tags import Tag

ARC_APPROVED = b"00"
ARC_DECLINED = b"05"


class SoftEmvIssuer:
    """An ``EcLoadHost`` for the software cards."""

    def __init__(self, issuer: IssuerPki | None = None, *, approve: bool = True):
        self.issuer = issuer or default_issuer()
        self.approve = approve
        self.loads: list[tuple[str, int]] = []

    def _session_key(self, imk: bytes, request: EcLoadRequest) -> bytes:
        udk = icc_master_key(imk, request.pan, request.psn)
        return pboc_session_key(udk, int.from_bytes(request.atc, "big"))

    def arqc_valid(self, request: EcLoadRequest) -> bool:
        key = self._session_key(self.issuer.imk_ac, request)
        cvr = request.iad[3:7]
        data = request.cdol1_data[:AC_INPUT_LENGTH] + request.aip + request.atc + cvr
        return secrets.compare_digest(application_cryptogram(key, data), request.arqc)

    def authorize_ec_load(self, request: EcLoadRequest) -> EcLoadAuthorization:
        ac_key = self._session_key(self.issuer.imk_ac, request)
        if not self.approve or not self.arqc_valid(request):
            arpc = arpc_method1(ac_key, request.arqc, ARC_DECLINED)
            return EcLoadAuthorization(ARC_DECLINED, arpc + ARC_DECLINED)
        arpc = arpc_method1(ac_key, request.arqc, ARC_APPROVED)
        new_balance = request.balance_before + request.amount
        mac_key = self._session_key(self.issuer.imk_mac, request)
        mac = script_mac(mac_key, ec_load_mac_input(request.atc, request.arqc, new_balance))
        script = tlv.build(
            Tag.ISSUER_SCRIPT_AFTER,
            [
                tlv.build(Tag.ISSUER_SCRIPT_ID, bytes.fromhex("00000001")),
                tlv.build(Tag.ISSUER_SCRIPT_COMMAND, ec_load_command(new_balance, mac).encode()),
            ],
        )
        self.loads.append((request.pan, request.amount))
        return EcLoadAuthorization(ARC_APPROVED, arpc + ARC_APPROVED, script.encode())
