"""The host side a load needs, as a protocol: the gateway's HSM (or a local one) implements it."""

from __future__ import annotations

from typing import Protocol

from terminal.apdu.errors import YikatongError
from terminal.epurse.model import LoadAuthorization, LoadRequest


class LoadDeclined(YikatongError):
    """The host refused to authorise a load (bad MAC1, limits, unknown card...)."""

    def __init__(self, reason: str):
        super().__init__(f"load declined: {reason}")
        self.reason = reason


class LoadHost(Protocol):
    def authorize_load(self, request: LoadRequest) -> LoadAuthorization:
        """Check the card's MAC1 and return MAC2, or raise LoadDeclined."""
        ...

    def confirm_load(
        self, request: LoadRequest, authorization: LoadAuthorization, tac: bytes
    ) -> None:
        """Report the card's TAC for a completed load."""
        ...
