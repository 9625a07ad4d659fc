"""EMV symmetric crypto against the published pyemv vectors (emv-reference.md §3.2)."""

from __future__ import annotations

import pytest

from terminal.crypto.emv import (
    adjust_parity,
    application_cryptogram,
    arpc_method1,
    common_session_key,
    icc_master_key,
    pboc_session_key,
    script_mac,
)
from terminal.crypto.errors import KeyLengthError
from terminal.crypto.primitives import des_encrypt

h = bytes.fromhex
IMK = h("0123456789ABCDEFFEDCBA9876543210")


def kcv(key: bytes) -> bytes:
    return des_encrypt(key, bytes(8))[:2]


def test_kcv_of_the_reference_key() -> None:
    assert kcv(IMK) == h("08D7")


@pytest.mark.parametrize(
    ("pan", "psn", "expected"),
    [
        ("99012345678901234", "45", "67F8292358083E5EA7AB7FDA58D53B6B"),
        ("12345678901234567", "01", "73AD54688CEF2934B0979857E3C719F1"),
    ],
)
def test_icc_master_key_option_a(pan: str, psn: str, expected: str) -> None:
    assert icc_master_key(IMK, pan, psn) == h(expected)


def test_parity_adjustment_matches_the_raw_vector() -> None:
    raw = h("67F8292358083F5EA6AB7FDA58D43A6B")
    assert adjust_parity(raw) == h("67F8292358083E5EA7AB7FDA58D53B6B")


def test_common_session_key() -> None:
    assert common_session_key(IMK, h("001C000000000000")) == h("E9FB384AF807B940FEDCEA613461B0C4")


def test_arqc_retail_mac() -> None:
    sk = h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    data = h("000000002000000000000000012400000080000124110309003804823E58000001")
    assert application_cryptogram(sk, data) == h("3B76CF10FECD8789")


def test_arqc_and_arpc_method1() -> None:
    sk = h("29B33180E567CE38EA4CBC9D753B0E61")
    arqc = application_cryptogram(sk, h("0123456789ABCDEF0123456789ABCDEF"))
    assert arqc == h("FA624250B008B59A")
    assert arpc_method1(sk, arqc, h("0000")) == h("45D4255EEF10C920")


def test_full_chain_option_a_session_key_arqc_arpc() -> None:
    mk = icc_master_key(IMK, "12345678901234567", "45")
    assert kcv(mk) == h("FF08")
    sk = common_session_key(mk, h("1234567890123456"))
    assert kcv(sk) == h("DF82")
    arqc = application_cryptogram(sk, h("0123456789ABCDEF0123456789ABCDEF"))
    assert arqc == h("19C1FBC83EBDC0D5")
    assert arpc_method1(mk, arqc, h("0000")) == h("78A372523FA35A03")


def test_pboc_session_key_halves_use_atc_and_its_complement() -> None:
    key = pboc_session_key(IMK, 0x0006)
    assert key[:8] == des_encrypt(IMK, h("0000000000000006"))
    assert key[8:] == des_encrypt(IMK, h("000000000000FFF9"))


def test_script_mac_is_the_leftmost_four_bytes_of_mac_alg3() -> None:
    sk = h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    # "hello world", pad method 2, alg 3: 2BC2D9EDE0CF31F6 (pyemv test_mac)
    assert script_mac(sk, b"hello world") == h("2BC2D9ED")


def test_wrong_key_lengths_are_typed_errors() -> None:
    with pytest.raises(KeyLengthError):
        icc_master_key(IMK[:8], "1234567890123456")
    with pytest.raises(KeyLengthError):
        application_cryptogram(IMK[:8], b"x")
