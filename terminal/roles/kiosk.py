"""Self-service kiosk: balance and history, online top-up through a LoadHost, and subsidy
pickup through the gateway's subsidy services (terminal/roles/pickup.py).

Every load - a top-up or a subsidy pickup - goes through the one journaled credit path
(``CreditPath`` in terminal/roles/debit.py): the load's intent is written before CREDIT
FOR LOAD and settled or voided after, and a torn load is finished at the card's next visit
or, when only the gateway's confirmation is missing, at start. The journal is required; a
kiosk without a load host (no gateway) reads cards only.

A top-up is checked against the kiosk's configured limits and, with the balance read
from the card, against the purse's maximum before INITIALIZE FOR LOAD is sent, so a
refused top-up never touches the card's counters. When the gateway refuses it because a
load this kiosk started is still unsettled at the card's counter (``LoadPending``: a card
pulled mid-load), that load is settled with the card in the reader and the top-up tried
once more.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from terminal.apdu.errors import YikatongError
from terminal.epurse import flows
from terminal.epurse.model import CardSnapshot, LoadResult
from terminal.journal import Journal
from terminal.roles.debit import Credit, CreditPath
from terminal.roles.load_host import HttpLoadHost, LoadPending, settle_own_loads, settled_any
from terminal.roles.pickup import Pickup, SubsidyHost, pick_up
from terminal.roles.session import TerminalSession
from terminal.words import kiosk_words


class KioskRefusal(StrEnum):
    """Why the kiosk will not start a load; the code picks the sentence (terminal/words.py)."""

    AMOUNT = "amount"  # outside the kiosk's top-up limits (fields low, high, amount)
    OVER_CEILING = "over-ceiling"  # over the purse's maximum (fields balance, ceiling, room)
    NO_LOAD_HOST = "no-load-host"  # no gateway: the kiosk reads cards only
    NO_SUBSIDIES = "no-subsidies"  # no gateway: no subsidy service


class TopUpRefused(YikatongError):
    """The kiosk will not start this load: ``code`` says why, ``fields`` the amounts (fen) its
    sentence names; ``reason`` is that sentence in English (the log's), the operator's line
    uses the terminal's language."""

    def __init__(self, code: KioskRefusal, **fields: int):
        self.code = code
        self.fields = fields
        self.reason = kiosk_words(code, fields, "en")
        super().__init__(self.reason)


@dataclass(frozen=True)
class KioskConfig:
    """Top-up limits (whole fen) and the purse ceiling the kiosk checks before loading."""

    min_top_up: int = 100  # 1 yuan
    max_top_up: int = 100_000  # 1,000 yuan
    max_balance: int = 100_000  # the usual purse ceiling (the card's own, set at issuance)

    def __post_init__(self) -> None:
        if not 0 < self.min_top_up <= self.max_top_up or self.max_balance <= 0:
            raise ValueError("kiosk limits must be positive, min <= max")

    @classmethod
    def from_toml(cls, path: str | Path) -> KioskConfig:
        """``[kiosk]`` with ``min_top_up_fen``, ``max_top_up_fen``, ``max_balance_fen``."""
        data = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("kiosk", {})
        defaults = cls()
        values = {}
        for name in ("min_top_up", "max_top_up", "max_balance"):
            value = data.get(f"{name}_fen", getattr(defaults, name))
            if type(value) is not int:
                raise ValueError(f"{path}: kiosk.{name}_fen must be a whole number of fen")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class TopUp:
    card_number: str
    result: LoadResult
    credit: Credit  # the journal's row


class Kiosk:
    def __init__(
        self,
        session: TerminalSession,
        host: HttpLoadHost | None,
        terminal_id: bytes,
        *,
        journal: Journal,
        config: KioskConfig | None = None,
        subsidies: SubsidyHost | None = None,
    ):
        if len(terminal_id) != 6:
            raise ValueError("kiosk terminal id must be 6 bytes")
        self.session = session
        self.host = host
        self.terminal_id = terminal_id
        self.config = config or KioskConfig()
        self.subsidies = subsidies
        self.journal = journal
        self.credits: CreditPath | None = None
        if host is not None:
            if not isinstance(host, HttpLoadHost):
                raise TypeError("a kiosk loads through the gateway (HttpLoadHost)")
            self.credits = CreditPath(session, journal, host)

    def read(self) -> CardSnapshot:
        """Balance and history; a torn load of this card is finished first (journaled)."""
        self.session.card_reader.connect()
        if self.credits is not None:
            self.credits.recover(self.session.run(flows.select()))
        return self.session.run(flows.read_card())

    def check_amount(self, amount: int) -> None:
        cfg = self.config
        if not cfg.min_top_up <= amount <= cfg.max_top_up:
            raise TopUpRefused(
                KioskRefusal.AMOUNT, low=cfg.min_top_up, high=cfg.max_top_up, amount=amount
            )

    def top_up(self, amount: int, *, pin: str | None = None) -> TopUp:
        return self._top_up(amount, pin, retried=False)

    def _top_up(self, amount: int, pin: str | None, *, retried: bool) -> TopUp:
        self.check_amount(amount)
        host, credits = self.host, self.credits
        if host is None or credits is None:
            raise TopUpRefused(KioskRefusal.NO_LOAD_HOST)
        s = self.session
        s.card_reader.connect()
        info = s.run(flows.select())
        credits.recover(info)  # a torn load of this card is finished first
        balance = s.run(flows.read_balance())
        ceiling = self.config.max_balance
        if balance + amount > ceiling:
            room = max(0, ceiling - balance)
            raise TopUpRefused(
                KioskRefusal.OVER_CEILING, balance=balance, ceiling=ceiling, room=room
            )
        try:
            credit = credits.load(info, amount, self.terminal_id, pin=pin)
        except LoadPending:
            if retried or not settled_any(settle_own_loads(s, host, info)):
                raise
            return self._top_up(amount, pin, retried=True)
        return TopUp(info.card_number, credit.result, credit)

    def pick_up(self, holder: str, *, pin: str | None = None) -> Pickup:
        """Load the card's approved subsidies that fit under the purse's maximum, for the
        holder who typed ``holder`` (their ID number)."""
        if self.subsidies is None or self.credits is None:
            raise TopUpRefused(KioskRefusal.NO_SUBSIDIES)
        return pick_up(
            self.session,
            self.subsidies,
            self.terminal_id,
            holder=holder,
            max_balance=self.config.max_balance,
            credits=self.credits,
            pin=pin,
        )
