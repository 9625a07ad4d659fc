"""Session keys, MACs and TAC key against the published PBOC worked examples.

Purchase (B1, cnblogs.com/ttss/p/4280430.html) and load (B2, ncuisine.com/xingyexinwen/379.html)
with key 11223344556677888877665544332211.
"""

import pytest

from terminal.crypto import (
    Algorithm,
    UnsupportedAlgorithm,
    card_key,
    diversify,
    load_session_key,
    pboc_mac,
    purchase_session_key,
    tac_key,
)
from terminal.crypto.primitives import des_encrypt

H = bytes.fromhex
KEY = H("11223344556677888877665544332211")


def test_purchase_worked_example() -> None:
    sespk = purchase_session_key(KEY, H("11223344"), offline_atc=0, terminal_seq=1)
    assert sespk == H("003238ABC57659DD")
    assert pboc_mac(sespk, H("000010000600112233445520120229135100")) == H("F15CAB75")
    assert pboc_mac(sespk, H("00001000")) == H("56988A13")


def test_purchase_session_key_uses_rightmost_two_tsn_bytes() -> None:
    a = purchase_session_key(KEY, H("11223344"), 0, 0x00010001)
    assert a == purchase_session_key(KEY, H("11223344"), 0, 0x00000001)


def test_load_worked_example() -> None:
    seslk = load_session_key(KEY, H("11223344"), online_atc=0)
    assert seslk == H("9B1D924E05595603")
    assert pboc_mac(seslk, H("000000000000100001001122334455")) == H("2988AE5A")
    assert pboc_mac(seslk, H("000010000100112233445520111221214822")) == H("3A845BF0")


def test_tac_key_is_left_xor_right() -> None:
    assert tac_key(H("00112233445566778899AABBCCDDEEFF")) == H("8888888888888888")


def test_diversify_is_encrypt_factor_and_inverse() -> None:
    factor = H("0290000000000001")
    inverse = bytes(b ^ 0xFF for b in factor)
    assert diversify(KEY, factor) == des_encrypt(KEY, factor) + des_encrypt(KEY, inverse)


def test_card_key_applies_issuer_then_serial() -> None:
    serial, issuer = H("0290000000000001"), H("02902900FFFFFFFF")
    assert card_key(KEY, serial, issuer) == diversify(diversify(KEY, issuer), serial)
    assert card_key(KEY, serial) == diversify(KEY, serial)


def test_sm4_session_keys_are_refused_not_guessed() -> None:
    with pytest.raises(UnsupportedAlgorithm, match="not public"):
        purchase_session_key(KEY, H("11223344"), 0, 1, Algorithm.SM4)
    with pytest.raises(UnsupportedAlgorithm):
        load_session_key(KEY, H("11223344"), 0, Algorithm.SM4)
