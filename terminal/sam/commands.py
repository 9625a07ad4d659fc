"""PSAM command builders (reference §4)."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

from terminal.apdu.command import CommandAPDU, CommandTemplate
from terminal.layout import build
from terminal.sam.layouts import Mac1Request

AID_MOT_CPSAM = bytes.fromhex("A0000006324D4F542E435053414D3031")  # A000000632 "MOT.CPSAM01"
FID_MF = 0x3F00
FID_TRANSPORT_APP = 0x8011
SFI_SAM_SERIAL = 0x15
SFI_TERMINAL_ID = 0x16
SFI_APP_INFO = 0x17
TERMINAL_ID_LEN = 6
APP_INFO_LEN = 25


class SamIns(IntEnum):
    """INS bytes of the PSAM's own commands (reference §4; SELECT, READ BINARY, GET CHALLENGE
    and the campus card check are ISO 7816-4's, ``IsoIns``): named once, for the builders
    below, the simulator that answers them and the tests that tear or answer at one of them."""

    INIT_FOR_DESCRYPT = 0x1A
    INIT_SAM_FOR_PURCHASE = 0x70
    CREDIT_SAM_FOR_PURCHASE = 0x72
    CIPHER_DATA = 0xFA


# Lc 1C + 8 per extra factor: filled from Mac1Request; MAC2 as the card sent it
_INIT_SAM_FOR_PURCHASE = CommandTemplate(
    0x80, SamIns.INIT_SAM_FOR_PURCHASE, 0x00, 0x00, lc=None, le=8
)
_CREDIT_SAM_FOR_PURCHASE = CommandTemplate(
    0x80, SamIns.CREDIT_SAM_FOR_PURCHASE, 0x00, 0x00, lc=None, le=None
)


def init_sam_for_purchase(
    card_random: bytes,
    offline_atc: int,
    amount: int,
    txn_type: int,
    when: datetime,
    key_version: int,
    algorithm: int,
    card_serial: bytes,
    factors: list[bytes],
) -> CommandAPDU:
    """INIT SAM FOR PURCHASE (80 70): Lc 1C plus 8 per extra factor (JT/T 978: issuer id)."""
    data = build(
        Mac1Request,
        card_random=card_random,
        offline_atc=offline_atc,
        amount=amount,
        txn_type=txn_type,
        when=when,
        key_version=key_version,
        algorithm=algorithm,
        card_serial=card_serial,
        factors=factors,
    )
    return _INIT_SAM_FOR_PURCHASE.fill(data)


def credit_sam_for_purchase(mac2: bytes) -> CommandAPDU:
    """CREDIT SAM FOR PURCHASE (80 72): the PSAM checks the card's MAC2."""
    return _CREDIT_SAM_FOR_PURCHASE.fill(mac2)


def init_for_descrypt(usage: int, key_index: int, factors: bytes) -> CommandAPDU:
    """DES INIT (80 1A): derive a card key of ``usage`` from the PSAM master key."""
    return CommandAPDU(0x80, SamIns.INIT_FOR_DESCRYPT, usage, key_index, factors)


def cipher_mac(data: bytes, p1: int = 0x05) -> CommandAPDU:
    """CIPHER DATA (80 FA) in MAC mode; data = IV(8) ‖ padded input for P1 05."""
    return CommandAPDU(0x80, SamIns.CIPHER_DATA, p1, 0x00, data, le=4)
