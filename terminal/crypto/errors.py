"""Crypto errors."""

from terminal.apdu.errors import YikatongError


class CryptoError(YikatongError):
    """Base of crypto errors."""


class KeyLengthError(CryptoError, ValueError):
    """A key of a length the algorithm does not take."""


class UnsupportedAlgorithm(CryptoError):
    """The card's algorithm id names a scheme this code cannot compute (see docs/crypto.md)."""
