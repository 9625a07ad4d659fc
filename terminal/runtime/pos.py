"""A merchant POS at work: one sale (the card pays, a receipt, a result in words), shared by
``ykt pos`` and the POS service that ``ykt run`` serves to a cash register over
``POST /sale`` on the status port.

The service (a ``CounterService``, terminal/runtime/counter.py) makes one sale at a time: a
second request while a card is being debited is answered 409 at once rather than queued
behind it. SIGTERM lets the sale in progress finish (and its answer go out); then what
waits is uploaded and the files are closed.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from terminal.apdu.errors import (
    CardError,
    InsufficientBalance,
    MalformedResponse,
    TlvError,
    TransportError,
)
from terminal.epurse.flows import BalanceFlagSet
from terminal.roles.debit import PaymentInterrupted, RecoveredProofRefused
from terminal.roles.onecard_pos import (
    SOURCE_EC,
    SOURCE_EP,
    OneCardPos,
    OneCardSale,
    PaymentRefused,
    PaymentRule,
)
from terminal.roles.pos import CardRefused
from terminal.roles.receipt import Receipt, sale_receipt
from terminal.runtime.counter import CounterService, Outcome, refused, request_log_line
from terminal.words import mac2_unchecked, outcome_text, sale_refusal, say

PAID_FROM = {SOURCE_EP: "T-Union purse", SOURCE_EC: "Electronic Cash"}
SALE_ERRORS = (
    CardError,
    TransportError,
    MalformedResponse,
    TlvError,
    PaymentRefused,
    BalanceFlagSet,
    CardRefused,
)


def refusal(exc: Exception) -> str:
    """What the cashier tells the customer, in words (the status word stays in the log)."""
    if isinstance(exc, InsufficientBalance):
        return "insufficient balance"
    if isinstance(exc, PaymentRefused):
        if exc.insufficient_balance:
            return "insufficient balance (" + "; ".join(exc.attempts) + ")"
        return "card cannot pay: " + "; ".join(exc.attempts or ["no payment application"])
    if isinstance(exc, PaymentInterrupted):
        return "card removed during payment: present the same card and make the same sale again"
    if isinstance(exc, TransportError):
        return f"card not read, present it again ({exc})"
    if isinstance(exc, BalanceFlagSet | CardRefused):
        return f"card refused: {exc}"
    if isinstance(exc, RecoveredProofRefused):
        return f"{exc.advice}; nothing was charged in this tap"
    if isinstance(exc, CardError):
        return f"card refused the payment ({type(exc).__name__})"
    return f"card answer not understood, present it again ({exc})"


SaleOutcome = Outcome  # a sale's result


def sell(
    pos: OneCardPos,
    amount: int,
    terminal_id: str,
    *,
    merchant: str,
    rule: PaymentRule | None = None,
) -> SaleOutcome:
    """Charge ``amount`` fen to the card in the field; a card's refusal is an outcome,
    a failing journal (JournalError) is raised: the device must stop taking cards."""
    started = time.monotonic()
    try:
        sale = pos.charge(amount, rule)
    except SALE_ERRORS as exc:
        outcome = refused(amount, terminal_id, refusal(exc), sale_refusal(exc))
    else:
        receipt = _receipt(sale, terminal_id, pos.session.now(), merchant)
        outcome = SaleOutcome(_document(sale, terminal_id, receipt), receipt, sale)
    outcome.ms = (time.monotonic() - started) * 1000
    return outcome


def _document(sale: OneCardSale, terminal_id: str, receipt: Receipt) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ok": True,
        "source": sale.source,
        "amount_fen": sale.amount,
        "balance_fen": sale.balance_after,
        "card_number": receipt.card_number,
        "terminal_id": terminal_id,
        "journaled": sale.journaled,
        "attempts": list(sale.attempts),
    }
    if sale.ep is not None:
        row = sale.ep.row
        doc.update(
            terminal_seq=row.terminal_seq,
            tac=row.tac,
            state=row.state,
            completed=sale.ep.completed,
            time=row.txn_time.isoformat(),
        )
    if sale.ec is not None and sale.ec.cryptogram is not None:
        doc.update(
            cryptogram=sale.ec.cryptogram.cryptogram.hex().upper(),
            atc=sale.ec.cryptogram.atc.hex().upper(),
        )
    return doc


def _receipt(sale: OneCardSale, terminal_id: str, now: datetime, merchant: str) -> Receipt:
    notes: list[str] = []
    if sale.ep is not None:
        row = sale.ep.row
        card_number, when = sale.ep.card.card_number, row.txn_time
        proof = [(say("receipt.sequence"), str(row.terminal_seq))]
        proof.append((say("receipt.proof"), row.tac or "-"))
        if sale.ep.completed:
            notes.append(say("receipt.completed"))
        if mac2_unchecked(row):
            notes.append(say("receipt.mac2_unchecked"))
        if not sale.ep.verified:
            notes.append(say("receipt.unverified"))
    else:
        app = sale.ec
        card_number, when = (app.pan if app is not None else "-"), now
        crypt = app.cryptogram if app is not None else None
        proof = []
        if crypt is not None:
            proof = [("ATC", crypt.atc.hex().upper()), ("TC", crypt.cryptogram.hex().upper())]
        if sale.completed:
            notes.append(say("receipt.completed"))
        if sale.ec_row is not None:
            notes.append(say("receipt.ec_journaled", seq=sale.ec_row["ec_seq"]))
    return sale_receipt(
        card_number,
        terminal_id,
        when,
        sale.amount,
        PAID_FROM[sale.source],
        sale.balance_after,
        proof,
        notes,
        merchant=merchant,
    )


def sale_log_line(terminal_id: str, outcome: SaleOutcome) -> str:
    """One structured JSON line per sale (what a log collector indexes)."""
    doc = outcome.doc
    fields = {
        "amount": doc["amount_fen"],
        "source": doc.get("source"),
        "card": doc.get("card_number"),
        "balance": doc.get("balance_fen"),
    }
    journal = {"seq": doc.get("terminal_seq"), "state": doc.get("state")}
    return request_log_line(terminal_id, outcome, fields, outcome_text(doc), journal)


class BadSale(ValueError):
    """A sale request the cash register got wrong (answered 400 with this reason)."""


def sale_request(body: Any) -> tuple[int, PaymentRule | None]:
    """The amount (fen) and payment rule of a ``POST /sale`` body; BadSale says why not."""
    if not isinstance(body, dict):
        raise BadSale('the body must be a JSON object {"amount_fen": N, "pay": "ep|ec|auto"}')
    unknown = sorted(set(body) - {"amount_fen", "pay"})
    if unknown:
        raise BadSale(f"unknown field(s) {', '.join(unknown)} (amount_fen, pay)")
    amount = body.get("amount_fen")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise BadSale(f"amount_fen must be a whole number of fen above 0, got {amount!r}")
    pay = body.get("pay")
    if pay is None:
        return amount, None
    if not isinstance(pay, str):
        raise BadSale(f"pay must be ep, ec or auto, got {pay!r}")
    try:
        return amount, PaymentRule.named(pay)
    except ValueError as exc:
        raise BadSale(f"pay {pay!r}: {exc}") from None


class PosService(CounterService):
    """One assembled POS run as a service: sales from ``POST /sale``, the journal checked
    in idle time, background upload and hotlist sync."""

    noun = "sale"
    device = "POS"
    routes = (("/sale", "post_sale"),)
    role: OneCardPos

    @property
    def sales(self) -> int:
        return self.served

    def post_sale(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /sale``: 200 with the sale's result (approved or refused in words), 400 for
        a bad request, 409 while another sale runs, 503 when stopping or out of service."""
        try:
            amount, rule = sale_request(body)
        except BadSale as exc:
            return 400, {"ok": False, "refused": f"bad sale request: {exc}"}
        return self.serve(
            {"amount_fen": amount},
            lambda: sell(
                self.role, amount, self.terminal_id, merchant=self.config.merchant, rule=rule
            ),
            refusal,
        )

    def start_work(self) -> None:
        """Torn Electronic Cash sales of a card still in the field are matched now."""
        self.role.recover_present()

    counts = (
        ("sales", "ykt_sales_total"),
        ("approved", "ykt_sales_approved_total"),
        ("refused", "ykt_sales_refused_total"),
    )
