"""Crypto for the e-purse: MACs, key diversification and session keys (no keys live here)."""

from terminal.crypto.errors import CryptoError, KeyLengthError, UnsupportedAlgorithm
from terminal.crypto.keys import (
    Algorithm,
    card_key,
    diversify,
    diversify_chain,
    load_session_key,
    purchase_session_key,
    sm4_diversify,
    tac_key,
)
from terminal.crypto.mac import pad_method2, pboc_mac, sm4_mac

__all__ = [
    "Algorithm",
    "CryptoError",
    "KeyLengthError",
    "UnsupportedAlgorithm",
    "card_key",
    "diversify",
    "diversify_chain",
    "load_session_key",
    "pad_method2",
    "pboc_mac",
    "purchase_session_key",
    "sm4_diversify",
    "sm4_mac",
    "tac_key",
]
