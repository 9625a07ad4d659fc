"""Secure messaging for card-OS commands: the command MAC and the key cryptogram.

MAC (reference §3.1): retail MAC (ISO 9797-1 alg 3) with a 16-byte key, initial value =
4-byte card challenge ‖ 00000000, over the 5-byte header (Lc already counting the 4 MAC
bytes) ‖ data, padding method 2, leftmost 4 bytes.

Cryptogram (the project's choice in the PBOC/FMCOS style, docs/issuance.md): Ld ‖ data,
padded with method 2, 3DES-ECB under the same 16-byte key.
"""

from __future__ import annotations

from terminal.crypto.errors import CryptoError, KeyLengthError
from terminal.crypto.keys import diversify
from terminal.crypto.mac import PBOC_MAC_LEN, mac_alg3, pad_method2
from terminal.crypto.primitives import des_decrypt, des_encrypt

MAX_CLEAR = 0xFF


def command_mac(key: bytes, header: bytes, data: bytes, challenge: bytes) -> bytes:
    """The 4-byte MAC of a secure-messaging command. ``header`` is CLA INS P1 P2 Lc with
    Lc = len(data) + 4; ``challenge`` is what GET CHALLENGE returned (its first 4 bytes)."""
    if len(key) != 16:
        raise KeyLengthError(f"secure messaging needs a 16-byte key, got {len(key)}")
    if len(header) != 5 or header[4] != len(data) + PBOC_MAC_LEN:
        raise ValueError("header must be CLA INS P1 P2 Lc with Lc counting data and MAC")
    if len(challenge) < 4:
        raise ValueError("challenge must be at least 4 bytes")
    iv = challenge[:4] + bytes(4)
    return mac_alg3(key, pad_method2(header + data), iv)[:PBOC_MAC_LEN]


def encrypt_data(key: bytes, clear: bytes) -> bytes:
    """Ld ‖ clear, padded (80 00…), 3DES-ECB."""
    if len(clear) > MAX_CLEAR:
        raise ValueError("clear data longer than 255 bytes")
    return des_encrypt(key, pad_method2(bytes((len(clear),)) + clear))


def decrypt_data(key: bytes, cryptogram: bytes) -> bytes:
    """Inverse of ``encrypt_data``; a CryptoError when Ld or the padding does not fit."""
    if not cryptogram or len(cryptogram) % 8:
        raise CryptoError("cryptogram is not a whole number of 8-byte blocks")
    plain = des_decrypt(key, cryptogram)
    ld = plain[0]
    rest = plain[1 + ld :]
    if 1 + ld > len(plain) or not rest or rest[0] != 0x80 or any(rest[1:]) or len(rest) > 8:
        raise CryptoError("cryptogram length byte or padding is wrong")
    return plain[1 : 1 + ld]


def transport_key(transport_master: bytes, chip_id: bytes) -> bytes:
    """A blank card's transport key: the card vendor's transport master key diversified
    (PBOC one-level rule) with the 8-byte chip serial. The HSM and the software blank
    card both use this one function."""
    return diversify(transport_master, chip_id)
