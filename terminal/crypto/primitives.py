"""Block-cipher primitives over pyca/cryptography: DES, two-key 3DES and SM4, ECB and CBC."""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from terminal.crypto.errors import KeyLengthError

DES_BLOCK = 8
SM4_BLOCK = 16


def _tdes_key(key: bytes) -> bytes:
    """Expand an 8-byte (single DES) or 16-byte (K1,K2,K1) key to the 24 bytes 3DES takes."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise KeyLengthError(f"DES/3DES key must be 8, 16 or 24 bytes, got {len(key)}")


def _blocks(data: bytes, size: int) -> None:
    if len(data) % size:
        raise ValueError(f"data length {len(data)} is not a multiple of the {size}-byte block")


def des_encrypt(key: bytes, data: bytes) -> bytes:
    """ECB encryption: single DES for an 8-byte key, 3DES (EDE) for 16 or 24 bytes."""
    _blocks(data, DES_BLOCK)
    enc = Cipher(TripleDES(_tdes_key(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def des_decrypt(key: bytes, data: bytes) -> bytes:
    _blocks(data, DES_BLOCK)
    dec = Cipher(TripleDES(_tdes_key(key)), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def des_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    _blocks(data, DES_BLOCK)
    enc = Cipher(TripleDES(_tdes_key(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def des_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    _blocks(data, DES_BLOCK)
    dec = Cipher(TripleDES(_tdes_key(key)), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def _sm4_key(key: bytes) -> bytes:
    if len(key) != 16:
        raise KeyLengthError(f"SM4 key must be 16 bytes, got {len(key)}")
    return key


def sm4_encrypt(key: bytes, data: bytes) -> bytes:
    _blocks(data, SM4_BLOCK)
    enc = Cipher(algorithms.SM4(_sm4_key(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def sm4_decrypt(key: bytes, data: bytes) -> bytes:
    _blocks(data, SM4_BLOCK)
    dec = Cipher(algorithms.SM4(_sm4_key(key)), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def sm4_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(16)) -> bytes:
    _blocks(data, SM4_BLOCK)
    enc = Cipher(algorithms.SM4(_sm4_key(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def xor(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("xor operands differ in length")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")
