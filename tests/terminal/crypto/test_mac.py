"""Known-answer tests for the MACs and block ciphers (emv-reference §3, epurse-reference §3)."""

import pytest

from terminal.crypto import KeyLengthError, pboc_mac
from terminal.crypto.mac import mac_alg1, mac_alg3, pad_method1, pad_method2, sm4_cbc_mac
from terminal.crypto.primitives import des_decrypt, des_encrypt, sm4_decrypt, sm4_encrypt

H = bytes.fromhex
K = H("0123456789ABCDEF")
K2 = H("FEDCBA9876543210")
D1 = b"Now is the time for all "
D2 = b"Now is the time for it"


def test_padding_vectors() -> None:
    assert pad_method1(H("1234")) == H("1234000000000000")
    assert pad_method2(H("1234")) == H("1234800000000000")
    assert pad_method2(bytes(8)) == bytes(8) + H("8000000000000000")


def test_iso9797_alg1_published() -> None:
    # ISO/IEC 9797-1 alg 1 = ANSI X9.9 single-DES CBC-MAC, padding method 1
    assert mac_alg1(K, pad_method1(D1)) == H("70A30640CC76DD8B")


@pytest.mark.parametrize(
    ("key", "data", "pad", "mac"),
    [
        (K + K2, D1, pad_method1, "A1C72E74EA3FA9B6"),  # ISO/IEC 9797-1:2011 B.4
        (K + K2, D2, pad_method1, "2E2B1428CC78254F"),
        (K + K2, D1, pad_method2, "E9086230CA3BE796"),
        (H("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB"), b"hello world", pad_method1, "78DA3D3DEB48FD4D"),
        (H("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB"), b"hello world", pad_method2, "2BC2D9EDE0CF31F6"),
    ],
)
def test_iso9797_alg3_retail_mac_published(key: bytes, data: bytes, pad, mac: str) -> None:  # type: ignore[no-untyped-def]
    assert mac_alg3(key, pad(data)) == H(mac)


def test_pboc_mac_picks_algorithm_by_key_length() -> None:
    assert pboc_mac(K + K2, D1) == H("E9086230")
    assert pboc_mac(K, D1) == mac_alg1(K, pad_method2(D1))[:4]
    with pytest.raises(KeyLengthError):
        pboc_mac(bytes(12), D1)


def test_3des_published() -> None:
    key = H("0123456789ABCDEFFEDCBA9876543210")
    assert des_encrypt(key, b"12345678") == H("41D2FFBA3CDC15FE")
    assert des_encrypt(key, bytes(8))[:2] == H("08D7")  # KCV
    assert des_decrypt(key, H("41D2FFBA3CDC15FE")) == b"12345678"


def test_sm4_published() -> None:
    kp = H("0123456789ABCDEFFEDCBA9876543210")
    assert sm4_encrypt(kp, kp) == H("681EDF34D206965E86B3E94F536E4246")
    assert sm4_decrypt(kp, H("681EDF34D206965E86B3E94F536E4246")) == kp


def test_sm4_cbc_mac_published() -> None:
    key = H("EEF3C9888129755F2C769DBC459448CE")
    iv = H("FBD7B7AB0793F814B28A970F9E859C05")
    msg = H("99C9D02D03F2CD394A680DC51B112322")
    assert sm4_cbc_mac(key, msg, iv) == H("530EDF0605A302F30096AE46BD6316AF")


def test_block_alignment_enforced() -> None:
    with pytest.raises(ValueError, match="multiple"):
        des_encrypt(K, b"short")
