"""Merchant POS: select the card, check it, debit the amount, keep the proof."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from terminal.apdu.errors import YikatongError
from terminal.epurse import flows
from terminal.epurse.model import CardInfo, PendingPurchase, PurchaseResult
from terminal.roles.session import TerminalSession


class CardRefused(YikatongError):
    """The terminal refuses the card before any debit (expired, not yet valid, ...)."""


@dataclass(frozen=True)
class Sale:
    card: CardInfo
    result: PurchaseResult


class PointOfSale:
    """One merchant terminal: a card reader and a PSAM."""

    def __init__(self, session: TerminalSession, *, name: str = "POS"):
        self.session = session
        self.name = name

    def check_card(self, info: CardInfo) -> None:
        today = self.session.now().date()
        if not info.valid_on(today):
            raise CardRefused(f"card {info.card_number} is not valid on {today.isoformat()}")

    def charge(
        self, amount: int, *, on_intent: Callable[[PendingPurchase], None] | None = None
    ) -> Sale:
        """Debit ``amount`` fen from the card in the field."""
        s = self.session
        s.card_reader.connect()
        info = s.run(flows.select())
        self.check_card(info)
        result = s.run(flows.purchase(info, s.sam, amount, s.now(), on_intent=on_intent))
        return Sale(info, result)
