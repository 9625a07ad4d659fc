"""Merchant POS: select the card, check it, debit the amount through the journaled debit
path, keep the proof."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from terminal.apdu.errors import YikatongError
from terminal.epurse import flows
from terminal.epurse.model import CardInfo, PurchaseResult
from terminal.epurse.recovery import SETTLED, SUSPECT, Resolution
from terminal.hotlist import Hotlist
from terminal.journal.journal import Journal, JournalRow
from terminal.roles.debit import DebitPath, PurchaseStep
from terminal.roles.session import TerminalSession

RETRY_WINDOW = timedelta(seconds=120)


class CardRefused(YikatongError):
    """The terminal refuses the card before any debit (expired, not yet valid, ...)."""


@dataclass(frozen=True)
class Sale:
    """A paid sale: its journal row (settled, or suspect when MAC2 was not verified) and,
    when this tap made the debit, the card's answer. ``completed`` marks a sale that an
    earlier, interrupted attempt had already debited: this tap only fetched its proof."""

    card: CardInfo
    row: JournalRow
    result: PurchaseResult | None = None
    completed: bool = False
    recovered: tuple[Resolution, ...] = field(default_factory=tuple)

    @property
    def amount(self) -> int:
        return self.row.amount

    @property
    def balance_after(self) -> int:
        return self.row.balance_after

    @property
    def verified(self) -> bool:
        """The PSAM verified the card's MAC2 (or recovery fetched the card's proof)."""
        return self.row.state == SETTLED


class PointOfSale:
    """One merchant terminal: a card reader, a PSAM and its journal."""

    def __init__(
        self,
        session: TerminalSession,
        journal: Journal,
        *,
        name: str = "POS",
        allow_balance_flag: bool = False,
        retry_window: timedelta = RETRY_WINDOW,
        hotlist: Hotlist | None = None,
    ):
        """``allow_balance_flag`` debits cards whose balance word has its top bit set (meaning
        not public); by default they are refused with ``BalanceFlagSet`` before any debit.
        ``retry_window``: an interrupted sale of the same amount on the same card this
        recent, found debited when the card comes back, is this sale (not charged again).
        ``hotlist``: cards on it (reported lost or stolen) are refused before any debit."""
        self.session = session
        self.debits = DebitPath(session, journal)
        self.journal = journal
        self.name = name
        self.allow_balance_flag = allow_balance_flag
        self.retry_window = retry_window
        self.hotlist = hotlist

    def check_card(self, info: CardInfo) -> None:
        if self.hotlist is not None and info.serial in self.hotlist:
            raise CardRefused(f"card {info.card_number} is reported lost or stolen (hotlist)")
        today = self.session.now().date()
        if not info.valid_on(today):
            raise CardRefused(f"card {info.card_number} is not valid on {today.isoformat()}")

    def charge(self, amount: int) -> Sale:
        """Debit ``amount`` fen from the card in the field (torn debits settled first)."""
        self.session.card_reader.connect()
        return self.pay(self.session.run(flows.select()), amount)

    def pay(self, info: CardInfo, amount: int) -> Sale:
        """Debit ``amount`` fen from the EP application ``info`` (selected just now)."""
        if amount <= 0:
            raise ValueError("amount must be a positive number of fen")
        s = self.session
        self.check_card(info)
        recovered = self.debits.recover(info)
        resolutions = tuple(r for r, _ in recovered)
        again = self._same_sale(recovered, amount)
        if again is not None:
            return Sale(info, again, completed=True, recovered=resolutions)
        step = PurchaseStep.simple(
            info, s, amount, s.now(), allow_balance_flag=self.allow_balance_flag
        )
        debit = self.debits.debit(info, step, {"role": self.name})
        return Sale(info, debit.row, debit.result, recovered=resolutions)

    def completed(self, info: CardInfo, amount: int) -> Sale | None:
        """Settle this card's torn debits; the one that is this sale retried (``_same_sale``)
        as a completed Sale, else None (nothing is debited here)."""
        recovered = self.debits.recover(info)
        again = self._same_sale(recovered, amount)
        if again is None:
            return None
        return Sale(info, again, completed=True, recovered=tuple(r for r, _ in recovered))

    def _same_sale(
        self, recovered: list[tuple[Resolution, JournalRow]], amount: int
    ) -> JournalRow | None:
        """The newest recovered debit that is this sale retried: this POS, same amount,
        within the retry window."""
        now = self.session.now()
        for res, row in reversed(recovered):
            if (
                res.outcome in (SETTLED, SUSPECT)
                and row.terminal_id == self.session.sam.terminal_id_hex
                and row.amount == amount
                and timedelta(0) <= now - row.txn_time <= self.retry_window
            ):
                return self.journal.get(row.id)
        return None
