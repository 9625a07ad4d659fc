"""Clearing service simulator: TAC verification with issuer keys, de-duplication, settlement."""

from simulators.clearing.ledger import ACCEPTED, DUPLICATE, REJECTED, Ledger, record_key
from simulators.clearing.verify import LOAD, PURCHASE, Rejected, TacVerifier

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "LOAD",
    "PURCHASE",
    "REJECTED",
    "Ledger",
    "Rejected",
    "TacVerifier",
    "record_key",
]
