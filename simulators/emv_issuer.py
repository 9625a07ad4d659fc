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


def ac_valid(
    imk_ac: bytes,
    pan: str,
    psn: str,
    ac_input: bytes,
    aip: bytes,
    atc: bytes,
    iad: bytes,
    cryptogram: bytes,
) -> bool:
    """The software card's application cryptogram (ARQC or TC) recomputed with the issuer's
    AC master key: the card's key for its PAN and PSN, the PBOC session key for the ATC,
    over the AC input, AIP, ATC and the CVR in the IAD."""
    key = pboc_session_key(icc_master_key(imk_ac, pan, psn), int.from_bytes(atc, "big"))
    data = ac_input[:AC_INPUT_LENGTH] + aip + atc + iad[3:7]
    return secrets.compare_digest(application_cryptogram(key, data), cryptogram)


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
        return ac_valid(
            self.issuer.imk_ac,
            request.pan,
            request.psn,
            request.cdol1_data,
            request.aip,
            request.atc,
            request.iad,
            request.arqc,
        )

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
