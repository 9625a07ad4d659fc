"""A POS for resident cards: pay from Electronic Cash (qPBOC, offline) or from the T-Union
EP (PSAM purchase), chosen by a configurable rule.

The rule lists the sources in order of preference, each optionally capped (for
example "EP for fares up to 5 yuan, EC otherwise"). A source is skipped when the card
lacks it, its balance is short, or (EC) the card does not approve offline; the next
source is then tried, and the sale is refused only when every source has said no.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from terminal.apdu.errors import CardError, YikatongError
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import KIND_EMV, KIND_EPURSE, TerminalConfig, Transaction
from terminal.emv.ec import EcInfo, read_ec_info
from terminal.emv.kernel import ApplicationData, Outcome, process_application
from terminal.emv.selection import CONTACTLESS, Candidate, discover, select_application
from terminal.epurse import flows as epurse
from terminal.epurse.model import PendingPurchase, PurchaseResult
from terminal.roles.session import TerminalSession

SOURCE_EC = "ec"
SOURCE_EP = "ep"


class PaymentRefused(YikatongError):
    """No source on the card could pay; ``attempts`` says why each one did not."""

    def __init__(self, attempts: list[str]):
        self.attempts = attempts
        super().__init__("payment refused: " + "; ".join(attempts or ["no payment source"]))


@dataclass(frozen=True)
class PaymentRule:
    """Sources in order of preference, with optional per-source amount caps (fen)."""

    order: tuple[str, ...] = (SOURCE_EC, SOURCE_EP)
    caps: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [s for s in (*self.order, *self.caps) if s not in (SOURCE_EC, SOURCE_EP)]
        if bad or not self.order:
            raise ValueError(f"payment sources are 'ec' and 'ep', got {bad or 'none'}")

    def sources_for(self, amount: int) -> list[str]:
        return [s for s in self.order if amount <= self.caps.get(s, amount)]

    @classmethod
    def parse(cls, text: str) -> PaymentRule:
        """``"ep<=500,ec"``: EP first for amounts up to 5.00, then EC."""
        order, caps = [], {}
        for part in text.split(","):
            name, _, cap = part.strip().partition("<=")
            order.append(name.strip())
            if cap:
                caps[name.strip()] = int(cap)
        return cls(tuple(order), caps)


@dataclass(frozen=True)
class OneCardSale:
    source: str
    amount: int
    balance_after: int | None
    ec: ApplicationData | None = None
    ep: PurchaseResult | None = None
    attempts: tuple[str, ...] = ()


class OneCardPos:
    """Card reader + PSAM, the kernel's terminal data and CA keys, and the payment rule."""

    def __init__(
        self,
        session: TerminalSession,
        config: TerminalConfig,
        store: CaKeyStore,
        rule: PaymentRule | None = None,
        *,
        name: str = "POS",
        allow_balance_flag: bool = False,
    ):
        self.session = session
        self.config = config
        self.store = store
        self.rule = rule or PaymentRule()
        self.name = name
        self.allow_balance_flag = allow_balance_flag  # see PointOfSale

    def charge(
        self, amount: int, *, on_intent: Callable[[PendingPurchase], None] | None = None
    ) -> OneCardSale:
        if amount <= 0:
            raise ValueError("amount must be a positive number of fen")
        s = self.session
        s.card_reader.connect()
        found = s.run(discover(self.config, CONTACTLESS, kinds=(KIND_EMV, KIND_EPURSE)))
        attempts: list[str] = []
        for source in self.rule.sources_for(amount):
            try:
                if source == SOURCE_EC:
                    sale = self._pay_ec(found.candidates, amount, attempts)
                else:
                    sale = self._pay_ep(amount, attempts, on_intent)
            except CardError as exc:
                attempts.append(f"{source}: card refused ({exc})")
                continue
            if sale is not None:
                return sale
        raise PaymentRefused(attempts)

    def _pay_ec(
        self, candidates: list[Candidate], amount: int, attempts: list[str]
    ) -> OneCardSale | None:
        s = self.session
        cand = next((c for c in candidates if c.kind == KIND_EMV), None)
        if cand is None:
            attempts.append("ec: no EMV application")
            return None
        fci = s.run(select_application(cand))
        info: EcInfo = s.run(read_ec_info())
        if info.balance is None or info.balance < amount:
            attempts.append(f"ec: balance {info.balance} short of {amount}")
            return None
        now = s.now()
        txn = Transaction(amount=amount, when=now)
        app = s.run(process_application(cand.aid, fci, self.config, self.store, txn, now=now))
        if app.outcome != Outcome.APPROVED_OFFLINE:
            attempts.append(f"ec: {app.outcome.value} ({app.reason})")
            return None
        return OneCardSale(
            SOURCE_EC, amount, app.available_offline_amount, ec=app, attempts=tuple(attempts)
        )

    def _pay_ep(
        self,
        amount: int,
        attempts: list[str],
        on_intent: Callable[[PendingPurchase], None] | None,
    ) -> OneCardSale | None:
        s = self.session
        try:
            info = s.run(epurse.select())
        except CardError:
            attempts.append("ep: no T-Union EP application")
            return None
        word = s.run(epurse.read_balance_word())
        try:
            balance = epurse.check_balance_word(
                word, "GET BALANCE", allow_flag=self.allow_balance_flag
            )
        except epurse.BalanceFlagSet as exc:
            attempts.append(f"ep: {exc}")
            return None
        if balance < amount:
            attempts.append(f"ep: balance {balance} short of {amount}")
            return None
        if not info.valid_on(s.now().date()):
            attempts.append("ep: application not valid today")
            return None
        try:
            result = s.run(
                epurse.purchase(
                    info,
                    s.sam,
                    amount,
                    s.now(),
                    on_intent=on_intent,
                    allow_balance_flag=self.allow_balance_flag,
                )
            )
        except epurse.BalanceFlagSet as exc:
            attempts.append(f"ep: {exc}")
            return None
        return OneCardSale(
            SOURCE_EP, amount, result.balance_after, ep=result, attempts=tuple(attempts)
        )
