"""Key rules of the PBOC e-purse: diversification, session keys, TAC key.

The one place each rule is written (docs: epurse-reference.md §3). Used by the software
card, the software PSAM and the host security module; terminal code never holds keys.
"""

from __future__ import annotations

from enum import IntEnum

from terminal.crypto.errors import KeyLengthError, UnsupportedAlgorithm
from terminal.crypto.primitives import des_encrypt, sm4_encrypt, xor

LOAD_SESSION_PAD = b"\x80\x00"


class Algorithm(IntEnum):
    """Algorithm identifier returned by INITIALIZE (carried to the PSAM unchanged).

    ``DES3`` (00) is what DES cards return in the published worked examples. The SM4
    value is not published for JT/T 978 EP (reference §3.5); 04 follows PBOC 3.0 IAD
    usage and is configurable on the software card.
    """

    DES3 = 0x00
    SM4 = 0x04


def _invert(factor: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in factor)


def diversify(master_key: bytes, factor: bytes) -> bytes:
    """PBOC one-level diversification: 3DES(MK, F) ‖ 3DES(MK, ~F), F the 8-byte factor."""
    if len(master_key) != 16:
        raise KeyLengthError(f"master key must be 16 bytes, got {len(master_key)}")
    if len(factor) != 8:
        raise KeyLengthError(f"diversification factor must be 8 bytes, got {len(factor)}")
    return des_encrypt(master_key, factor + _invert(factor))


def sm4_diversify(master_key: bytes, factor: bytes) -> bytes:
    """SM4 diversification (reference B8, one source): SM4(MK, F ‖ ~F)."""
    if len(factor) != 8:
        raise KeyLengthError(f"diversification factor must be 8 bytes, got {len(factor)}")
    return sm4_encrypt(master_key, factor + _invert(factor))


def diversify_chain(
    master_key: bytes, factors: list[bytes], algorithm: int = Algorithm.DES3
) -> bytes:
    """Diversify level by level (JT/T 978: issuer id, then card serial - see docs/crypto.md)."""
    step = sm4_diversify if algorithm == Algorithm.SM4 else diversify
    key = master_key
    for factor in factors:
        key = step(key, factor)
    return key


def card_key(
    master_key: bytes,
    card_serial: bytes,
    issuer_id: bytes | None = None,
    algorithm: int = Algorithm.DES3,
) -> bytes:
    """A card's key from a master key: issuer level first (JT/T 978), then the 8-byte serial.

    The PSAM receives the factors as serial ‖ issuer id (reference §3.4); the order the
    levels are applied in is not public, so this is the project's documented choice.
    """
    factors = [issuer_id, card_serial] if issuer_id is not None else [card_serial]
    return diversify_chain(master_key, factors, algorithm)


def _require_des(algorithm: int) -> None:
    if algorithm != Algorithm.DES3:
        raise UnsupportedAlgorithm(
            f"session keys for algorithm id {algorithm:02X} are not public for JT/T 978 "
            "(see docs/crypto.md); a PSAM computes them itself"
        )


def purchase_session_key(
    dpk: bytes,
    card_random: bytes,
    offline_atc: int,
    terminal_seq: int,
    algorithm: int = Algorithm.DES3,
) -> bytes:
    """SESPK = 3DES(DPK, random(4) ‖ offline ATC(2) ‖ rightmost 2 bytes of the TSN)."""
    _require_des(algorithm)
    if len(card_random) != 4:
        raise ValueError("card random must be 4 bytes")
    data = (
        card_random
        + (offline_atc & 0xFFFF).to_bytes(2, "big")
        + (terminal_seq & 0xFFFF).to_bytes(2, "big")
    )
    return des_encrypt(dpk, data)


def load_session_key(
    dlk: bytes, card_random: bytes, online_atc: int, algorithm: int = Algorithm.DES3
) -> bytes:
    """SESLK = 3DES(DLK, random(4) ‖ online ATC(2) ‖ 8000)."""
    _require_des(algorithm)
    if len(card_random) != 4:
        raise ValueError("card random must be 4 bytes")
    return des_encrypt(
        dlk, card_random + (online_atc & 0xFFFF).to_bytes(2, "big") + LOAD_SESSION_PAD
    )


def tac_key(dtk: bytes) -> bytes:
    """The TAC MAC key: left half XOR right half of the 16-byte card TAC key."""
    if len(dtk) != 16:
        raise KeyLengthError(f"TAC key must be 16 bytes, got {len(dtk)}")
    return xor(dtk[:8], dtk[8:])
