"""The Reader protocol every backend implements: move APDU bytes to one card slot."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Reader(Protocol):
    """One card slot or antenna. Readers move bytes; 61xx/6Cxx belong to the APDU layer.

    ``transmit`` raises ``CardRemoved`` when the card leaves mid-exchange, ``NoCard`` when
    none is present, ``ReaderUnavailable`` when the reader itself is gone.
    """

    name: str

    def connect(self) -> bytes:
        """Power up the card and return its ATR (or ATS-derived ATR)."""
        ...

    @property
    def atr(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def disconnect(self) -> None: ...

    def card_present(self) -> bool: ...

    def wait_for_card(self, timeout: float | None = None) -> bool:
        """Block until a card is present; False on timeout."""
        ...

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        """Block until the card is gone; False on timeout."""
        ...
