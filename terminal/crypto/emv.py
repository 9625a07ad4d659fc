"""EMV / PBOC symmetric cryptography: ICC master keys, session keys, AC, ARPC, script MAC.

Used by the software EMV card and by the issuer host that tops up Electronic Cash;
terminal code never holds these keys. Published vectors (pyemv, emv-reference.md §3.2)
pin the EMV-standard parts. The PBOC session-key formula and the script MAC come from a
public PBOC test script, not the JR/T 0025 text [U]; card and host here share them, and
docs/emv.md says so.
"""

from __future__ import annotations

from terminal.crypto.errors import KeyLengthError
from terminal.crypto.mac import mac_alg3, pad_method2
from terminal.crypto.primitives import des_encrypt, xor

AC_LENGTH = 8
SCRIPT_MAC_LENGTH = 4


def adjust_parity(key: bytes) -> bytes:
    """Set each byte's low bit so the byte has odd parity (DES key convention)."""
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) & 1) for b in key)


def _double_key(key: bytes) -> None:
    if len(key) != 16:
        raise KeyLengthError(f"a double-length 3DES key is 16 bytes, got {len(key)}")


def icc_master_key(issuer_master_key: bytes, pan: str, psn: str = "00") -> bytes:
    """EMV option A: Y = rightmost 16 digits of PAN ‖ PSN; MK = 3DES(Y) ‖ 3DES(~Y), odd parity."""
    _double_key(issuer_master_key)
    text = (pan.rstrip("Ff") + (psn or "00")).rjust(16, "0")[-16:]
    if not text.isdigit():
        raise ValueError(f"PAN/PSN {pan!r}/{psn!r} are not decimal digits")
    y = bytes.fromhex(text)
    left = des_encrypt(issuer_master_key, y)
    right = des_encrypt(issuer_master_key, xor(y, b"\xff" * 8))
    return adjust_parity(left + right)


def common_session_key(master_key: bytes, r: bytes) -> bytes:
    """EMV Book 2 A1.3: SK = 3DES(MK)[R with byte 3 = F0] ‖ 3DES(MK)[R with byte 3 = 0F]."""
    _double_key(master_key)
    if len(r) != 8:
        raise ValueError("diversification value R must be 8 bytes")
    left = des_encrypt(master_key, r[:2] + b"\xf0" + r[3:])
    right = des_encrypt(master_key, r[:2] + b"\x0f" + r[3:])
    return adjust_parity(left + right)


def pboc_session_key(card_key: bytes, atc: int) -> bytes:
    """PBOC: 3DES(K)[00..00 ‖ ATC] ‖ 3DES(K)[00..00 ‖ ATC xor FFFF] [U, see module doc]."""
    _double_key(card_key)
    a = (atc & 0xFFFF).to_bytes(2, "big")
    b = ((atc ^ 0xFFFF) & 0xFFFF).to_bytes(2, "big")
    return des_encrypt(card_key, bytes(6) + a) + des_encrypt(card_key, bytes(6) + b)


def application_cryptogram(session_key: bytes, data: bytes) -> bytes:
    """ARQC / TC / AAC: ISO 9797-1 MAC algorithm 3 with padding method 2, 8 bytes."""
    _double_key(session_key)
    return mac_alg3(session_key, pad_method2(data))


def arpc_method1(session_key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1: 3DES(SK)[ARQC xor (ARC ‖ 00..00)]."""
    _double_key(session_key)
    if len(arqc) != 8 or len(arc) != 2:
        raise ValueError("ARQC is 8 bytes and ARC 2 bytes")
    return des_encrypt(session_key, xor(arqc, arc + bytes(6)))


def script_mac(session_key: bytes, data: bytes) -> bytes:
    """Issuer script command MAC: leftmost 4 bytes of MAC algorithm 3, padding method 2 [U]."""
    _double_key(session_key)
    return mac_alg3(session_key, pad_method2(data))[:SCRIPT_MAC_LENGTH]
