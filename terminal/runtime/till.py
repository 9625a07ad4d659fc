"""A campus canteen till under ``ykt run``: each meal's amount and purse come from the
cashier's screen over ``POST /sale`` on the status port and the card in the field pays it.

A ``CounterService`` (terminal/runtime/counter.py): one sale at a time, 409 while a card is
being charged, SIGTERM finishes the sale in progress. The sale itself is the canteen's
(terminal/campus/canteen.py): meal and day limits, the cash purse through the one journaled
debit path (uploaded in the background like a POS's purchases), the allowance purse at the
gateway by the till's sale number. An allowance sale whose answer was lost is voided at the
gateway before the next sale and, while the till is idle, every ``hotlist.sync_interval``;
each void waits at most ``VOID_WAIT`` and a gateway that is away holds no cash sale up. A
void the gateway refuses for good is kept with its code and reason (``/health``
``voids_refused``, and an error line in the log) and holds no later void.
"""

from __future__ import annotations

import time
from typing import Any

from terminal.campus.canteen import PURSES, Canteen, CanteenRefused
from terminal.runtime.counter import CounterService, Outcome, refused, request_log_line
from terminal.runtime.pos import SALE_ERRORS, refusal
from terminal.words import outcome_text, sale_refusal, say

MAX_SALE = 100_000_000  # fen: beyond any meal limit; a larger number is a bad request


class BadSale(ValueError):
    """A sale request the cashier's screen got wrong (answered 400 with this reason)."""


def till_request(body: Any) -> tuple[int, str]:
    """The amount (fen) and purse of a till's ``POST /sale``; BadSale says why not."""
    shape = '{"amount_fen": N, "purse": "' + "|".join(PURSES) + '"}'
    if not isinstance(body, dict) or set(body) != {"amount_fen", "purse"}:
        raise BadSale(f"a till sale is {shape}")
    amount, purse = body["amount_fen"], body["purse"]
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_SALE:
        raise BadSale(f"amount_fen must be a whole number of fen above 0, got {amount!r}")
    if purse not in PURSES:
        raise BadSale(f"purse must be one of {', '.join(PURSES)}, got {purse!r}")
    return amount, purse


def till_sale(canteen: Canteen, amount: int, purse: str, terminal_id: str) -> Outcome:
    """Charge ``amount`` fen from ``purse`` to the card in the field: the sale, or why not
    (the canteen's rules or the card's refusal); a failing journal is raised."""
    started = time.monotonic()
    try:
        sale = canteen.sell(amount, purse)
    except CanteenRefused as exc:
        outcome = refused(amount, terminal_id, str(exc), say("till.refused", reason=exc))
    except SALE_ERRORS as exc:
        outcome = refused(amount, terminal_id, refusal(exc), sale_refusal(exc))
    else:
        doc = {
            "ok": True,
            "terminal_id": terminal_id,
            "purse": sale.purse,
            "amount_fen": sale.amount,
            "balance_fen": sale.balance_after,
            "meal": sale.meal,
            "person_no": sale.person_no,
            "card_number": sale.receipt.card_number,
            "sale_seq": sale.sale_seq,
        }
        outcome = Outcome(doc, sale.receipt, sale)
    if not outcome.ok:
        outcome.doc["purse"] = purse
    outcome.ms = (time.monotonic() - started) * 1000
    return outcome


def till_log_line(terminal_id: str, outcome: Outcome) -> str:
    """One structured JSON line per till sale (what a log collector indexes)."""
    doc = outcome.doc
    fields = {
        "amount": doc["amount_fen"],
        "purse": doc.get("purse"),
        "meal": doc.get("meal"),
        "person": doc.get("person_no"),
        "card": doc.get("card_number"),
        "balance": doc.get("balance_fen"),
        "sale_seq": doc.get("sale_seq"),
    }
    return request_log_line(terminal_id, outcome, fields, outcome_text(doc))


class TillService(CounterService):
    """One assembled canteen till run as a service: sales from ``POST /sale``, the journal
    checked and lost allowance answers voided in idle time, background upload and hotlist
    sync."""

    noun = "sale"
    device = "till"
    routes = (("/sale", "post_sale"),)
    role: Canteen

    _resolved_at = 0.0  # monotonic time of the last idle-time void round

    def post_sale(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /sale``: 200 with the sale's result (paid or refused in words), 400 for a
        bad request, 409 while another sale runs, 503 when stopping or out of service."""
        try:
            amount, purse = till_request(body)
        except BadSale as exc:
            return 400, {"ok": False, "refused": f"bad sale request: {exc}"}
        return self.serve(
            {"amount_fen": amount},
            lambda: till_sale(self.role, amount, purse, self.terminal_id),
            refusal,
        )

    def idle_work(self) -> None:
        """Allowance sales whose answer was lost are voided at the gateway (at most once
        per hotlist sync interval: a gateway that is down must not hold up the next sale)."""
        now = time.monotonic()
        if now - self._resolved_at < self.config.hotlist_sync or not self.role.ledger.unanswered():
            return
        self._resolved_at = now
        self.role.resolve_unanswered()

    counts = (
        ("sales", "ykt_sales_total"),
        ("approved", "ykt_sales_approved_total"),
        ("refused", "ykt_sales_refused_total"),
    )

    def more_health(self) -> dict[str, object]:
        """The allowance voids still to send, and those the gateway refused for good (each
        with its code and reason: the back office settles them, the till sends them no more)."""
        ledger = self.role.ledger
        refused = [
            {"sale_seq": seq, "error": code, "reason": reason}
            for seq, code, reason in ledger.refused_voids()
        ]
        return {"voids_waiting": len(ledger.unanswered()), "voids_refused": refused}

    def more_metrics(self, health: dict[str, object]) -> dict[str, object]:
        refused = health["voids_refused"]
        assert isinstance(refused, list)
        return {
            "ykt_till_voids_waiting": health["voids_waiting"],
            "ykt_till_voids_refused": len(refused),
        }
