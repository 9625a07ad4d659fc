"""ISO/IEC 9797-1 MACs as PBOC uses them: padding method 2, algorithm 1 and 3, SM4 CBC-MAC."""

from __future__ import annotations

from terminal.crypto.errors import KeyLengthError
from terminal.crypto.primitives import des_cbc_encrypt, des_encrypt, sm4_cbc_encrypt, xor

PBOC_MAC_LEN = 4


def pad_method2(data: bytes, block: int = 8) -> bytes:
    """ISO/IEC 9797-1 padding method 2: always 80, then 00 up to a whole block."""
    data = bytes(data) + b"\x80"
    return data + bytes(-len(data) % block)


def pad_method1(data: bytes, block: int = 8) -> bytes:
    """ISO/IEC 9797-1 padding method 1: 00 to a whole block (none if aligned; empty: 1 block)."""
    if not data:
        return bytes(block)
    return bytes(data) + bytes(-len(data) % block)


def mac_alg1(key: bytes, padded: bytes, iv: bytes = bytes(8)) -> bytes:
    """Algorithm 1: CBC-MAC with one DES (8-byte key) or 3DES key over already padded data."""
    return des_cbc_encrypt(key, padded, iv)[-8:]


def mac_alg3(key: bytes, padded: bytes, iv: bytes = bytes(8)) -> bytes:
    """Algorithm 3 (retail MAC, ANSI X9.19): single-DES CBC with K_L, last block full 3DES."""
    if len(key) != 16:
        raise KeyLengthError(f"retail MAC needs a 16-byte key, got {len(key)}")
    chain = des_cbc_encrypt(key[:8], padded[:-8], iv)[-8:] if len(padded) > 8 else iv
    return des_encrypt(key, xor(chain, padded[-8:]))


def pboc_mac(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """The 4-byte PBOC MAC: 8-byte key gives ISO 9797-1 alg 1, 16-byte key alg 3; pad method 2."""
    padded = pad_method2(data)
    if len(key) == 8:
        return mac_alg1(key, padded, iv)[:PBOC_MAC_LEN]
    if len(key) == 16:
        return mac_alg3(key, padded, iv)[:PBOC_MAC_LEN]
    raise KeyLengthError(f"PBOC MAC key must be 8 or 16 bytes, got {len(key)}")


def sm4_mac(key: bytes, data: bytes, iv: bytes = bytes(16)) -> bytes:
    """SM4 CBC-MAC with padding method 2 to 16 bytes, leftmost 4 bytes.

    Provisional: the JT/T 978 SM4 MAC truncation and padding are not public (see
    docs/crypto.md); this matches the one script found and is used only where the
    SM4 algorithm id is configured explicitly.
    """
    return sm4_cbc_encrypt(key, pad_method2(data, 16), iv)[-16:][:PBOC_MAC_LEN]


def sm4_cbc_mac(key: bytes, padded: bytes, iv: bytes = bytes(16)) -> bytes:
    """Plain SM4 CBC-MAC over already padded data (full 16-byte block)."""
    return sm4_cbc_encrypt(key, padded, iv)[-16:]
