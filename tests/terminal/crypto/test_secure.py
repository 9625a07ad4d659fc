"""Secure messaging: the command MAC agrees with the KAT-checked PBOC MAC, cryptograms
round-trip and a cryptogram with a wrong length byte or padding is refused."""

import pytest

from terminal.crypto.errors import CryptoError
from terminal.crypto.mac import pboc_mac
from terminal.crypto.primitives import des_encrypt
from terminal.crypto.secure import command_mac, decrypt_data, encrypt_data, transport_key

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def test_command_mac_is_the_retail_mac_with_the_challenge_as_iv() -> None:
    data = bytes(range(24))
    header = bytes((0x84, 0xD4, 0x01, 0x01, len(data) + 4))
    assert command_mac(KEY, header, data, bytes(4)) == pboc_mac(KEY, header + data)
    iv = bytes.fromhex("A1B2C3D4") + bytes(4)
    assert command_mac(KEY, header, data, iv[:4]) == pboc_mac(KEY, header + data, iv)
    assert command_mac(KEY, header, data, iv[:4]) != command_mac(KEY, header, data, bytes(4))
    with pytest.raises(ValueError, match="Lc"):
        command_mac(KEY, header[:4] + bytes((len(data),)), data, bytes(4))


@pytest.mark.parametrize("size", [0, 1, 6, 7, 8, 20, 255])
def test_cryptograms_round_trip(size: int) -> None:
    clear = bytes(range(size))
    cryptogram = encrypt_data(KEY, clear)
    assert len(cryptogram) % 8 == 0 and len(cryptogram) > size
    assert decrypt_data(KEY, cryptogram) == clear


def test_a_cryptogram_with_a_bad_length_or_padding_is_refused() -> None:
    with pytest.raises(CryptoError):
        decrypt_data(KEY, des_encrypt(KEY, bytes((30,)) + bytes(7)))  # Ld past the end
    with pytest.raises(CryptoError):
        decrypt_data(KEY, des_encrypt(KEY, bytes((2, 1, 2, 0x80, 0, 0, 0, 1))))  # padding
    with pytest.raises(CryptoError):
        decrypt_data(KEY, des_encrypt(KEY, bytes((1, 9)) + b"\x80" + bytes(5) + bytes(8)))
    with pytest.raises(CryptoError):
        decrypt_data(KEY, b"\x00" * 7)


def test_transport_keys_differ_per_chip() -> None:
    a, b = transport_key(KEY, bytes(8)), transport_key(KEY, bytes(7) + b"\x01")
    assert len(a) == 16 and a != b
