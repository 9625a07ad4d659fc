"""Merchant POS: select the card, check it, debit the amount, journal it, keep the proof."""

from __future__ import annotations

from dataclasses import dataclass

from terminal.apdu.errors import CardError, YikatongError
from terminal.epurse import flows
from terminal.epurse.model import CardInfo, PurchaseResult
from terminal.journal.journal import Journal, JournalRow
from terminal.roles.journaling import record_intent, settle_open_rows
from terminal.roles.session import TerminalSession


class CardRefused(YikatongError):
    """The terminal refuses the card before any debit (expired, not yet valid, ...)."""


@dataclass(frozen=True)
class Sale:
    card: CardInfo
    result: PurchaseResult
    row: JournalRow | None = None


class PointOfSale:
    """One merchant terminal: a card reader, a PSAM and (for production use) a journal."""

    def __init__(
        self,
        session: TerminalSession,
        journal: Journal | None = None,
        *,
        name: str = "POS",
        allow_balance_flag: bool = False,
    ):
        """``allow_balance_flag`` debits cards whose balance word has its top bit set (meaning
        not public); by default they are refused with ``BalanceFlagSet`` before any debit."""
        self.session = session
        self.journal = journal
        self.name = name
        self.allow_balance_flag = allow_balance_flag

    def check_card(self, info: CardInfo) -> None:
        today = self.session.now().date()
        if not info.valid_on(today):
            raise CardRefused(f"card {info.card_number} is not valid on {today.isoformat()}")

    def charge(self, amount: int) -> Sale:
        """Debit ``amount`` fen from the card in the field (torn debits settled first)."""
        s = self.session
        s.card_reader.connect()
        info = s.run(flows.select())
        self.check_card(info)
        journal = self.journal
        if journal is None:
            return Sale(
                info,
                s.run(
                    flows.purchase(
                        info, s.sam, amount, s.now(), allow_balance_flag=self.allow_balance_flag
                    )
                ),
            )
        settle_open_rows(s, journal, info)
        pending = s.run(
            flows.prepare_purchase(
                info, s.sam, amount, s.now(), allow_balance_flag=self.allow_balance_flag
            )
        )
        row_id = record_intent(journal, pending, {"role": self.name})
        try:
            result = s.run(flows.complete_purchase(pending))
        except CardError as exc:
            journal.void(row_id, f"card refused DEBIT: {exc}")
            raise
        row = journal.settle(
            row_id, tac=result.tac, mac2=result.mac2, mac2_verified=result.mac2_verified
        )
        return Sale(info, result, row)
