"""The e-purse cryptograms (terminal/epurse/cryptograms.py) against the published worked
examples in test_keys.py: purchase (B1) and load (B2), key 11223344556677888877665544332211.

No TAC value is published; the TAC tests pin each TAC input byte for byte (written out by
hand, not built from the layout) under a TAC key whose derived MAC key is the example's
session key, so the key derivation, the field order and the MAC are all checked.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from terminal.apdu.errors import MacMismatch
from terminal.crypto import pboc_mac
from terminal.epurse import cryptograms as cg
from terminal.epurse.commands import TxnType

H = bytes.fromhex
SESPK = H("003238ABC57659DD")  # purchase session key of example B1
SESLK = H("9B1D924E05595603")  # load session key of example B2
TERMINAL = H("001122334455")
PURCHASE = {
    "amount": 0x1000,
    "txn_type": TxnType.EP_PURCHASE,
    "terminal_id": TERMINAL,
    "when": datetime(2012, 2, 29, 13, 51, 0),
}
LOAD_WHEN = datetime(2011, 12, 21, 21, 48, 22)


def test_purchase_mac1_and_mac2_are_the_published_ones() -> None:
    assert cg.purchase_mac1(SESPK, **PURCHASE) == H("F15CAB75")
    assert cg.purchase_mac2(SESPK, amount=0x1000) == H("56988A13")
    cg.verify_purchase_mac1(SESPK, H("F15CAB75"), **PURCHASE)
    cg.verify_purchase_mac2(SESPK, H("56988A13"), amount=0x1000)


def test_load_mac1_and_mac2_are_the_published_ones() -> None:
    fields = {"amount": 0x1000, "terminal_id": TERMINAL, "txn_type": TxnType.ED_LOAD}
    assert cg.load_mac1(SESLK, balance=0, **fields) == H("2988AE5A")
    assert cg.load_mac2(SESLK, when=LOAD_WHEN, **fields) == H("3A845BF0")
    cg.verify_load_mac1(SESLK, H("2988AE5A"), balance=0, **fields)
    cg.verify_load_mac2(SESLK, H("3A845BF0"), when=LOAD_WHEN, **fields)


def test_purchase_tac_covers_its_fields_in_order_under_the_derived_key() -> None:
    dtk = SESPK + bytes(8)  # left XOR right = SESPK
    tac = cg.purchase_tac(dtk, terminal_seq=1, **PURCHASE)
    assert tac == pboc_mac(SESPK, H("00001000060011223344550000000120120229135100"))
    cg.verify_purchase_tac(dtk, tac, terminal_seq=1, **PURCHASE)
    with pytest.raises(MacMismatch, match="purchase TAC does not verify"):
        cg.verify_purchase_tac(dtk, tac, terminal_seq=2, **PURCHASE)


def test_load_tac_covers_its_fields_in_order_under_the_derived_key() -> None:
    dtk = SESLK + bytes(8)
    fields = {"new_balance": 0x1000, "online_atc": 0, "amount": 0x1000, "terminal_id": TERMINAL}
    tac = cg.load_tac(dtk, when=LOAD_WHEN, **fields)
    data = H("000010000000000010000200112233445520111221214822")
    assert tac == pboc_mac(SESLK, data)
    cg.verify_load_tac(dtk, tac, when=LOAD_WHEN, **fields)
    with pytest.raises(MacMismatch, match="load TAC does not verify"):
        cg.verify_load_tac(dtk, tac, when=LOAD_WHEN, **{**fields, "new_balance": 0x2000})


@pytest.mark.parametrize(
    "check",
    [
        lambda mac: cg.verify_purchase_mac1(SESPK, mac, **PURCHASE),
        lambda mac: cg.verify_purchase_mac2(SESPK, mac, amount=0x1000),
        lambda mac: cg.verify_load_mac1(
            SESLK, mac, balance=0, amount=0x1000, terminal_id=TERMINAL, txn_type=TxnType.ED_LOAD
        ),
        lambda mac: cg.verify_load_mac2(
            SESLK, mac, amount=0x1000, terminal_id=TERMINAL, when=LOAD_WHEN, txn_type=1
        ),
    ],
    ids=["purchase MAC1", "purchase MAC2", "load MAC1", "load MAC2"],
)
@pytest.mark.parametrize("given", [H("00000000"), H("F15CAB"), b""])
def test_a_wrong_or_short_mac_raises_mac_mismatch(check, given: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MacMismatch, match="does not verify"):
        check(given)


def test_a_changed_amount_does_not_verify() -> None:
    with pytest.raises(MacMismatch, match="purchase MAC1"):
        cg.verify_purchase_mac1(SESPK, H("F15CAB75"), **{**PURCHASE, "amount": 0x1001})
