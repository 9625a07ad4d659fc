"""A self-service kiosk at work, served to the kiosk's screen application on the status
port: ``POST /top-up`` (the amount the customer paid into the kiosk), ``POST /pickup``
(approved subsidies, when ``[kiosk] pickup`` is on) and ``POST /balance``.

The amount comes with each request, not from the configuration: the customer chooses it
on the kiosk's screen and pays it in before the card is loaded, so only the screen
application knows it. Every top-up goes through the one journaled credit path; at start
and in idle time the loads whose confirmation the gateway has not acknowledged are sent
again, and loads settled meanwhile elsewhere are followed. SIGTERM finishes the top-up in
progress first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from terminal.apdu.errors import CardError, MalformedResponse, TlvError, TransportError
from terminal.epurse.host import LoadDeclined
from terminal.identity import holder_answer
from terminal.roles.debit import LoadInterrupted
from terminal.roles.kiosk import Kiosk, TopUpRefused
from terminal.roles.receipt import balance_receipt, pickup_receipt, top_up_receipt
from terminal.runtime.assembly import Terminal
from terminal.runtime.counter import CounterService, Outcome, refused, request_log_line
from terminal.uplink.client import GatewayRefused, GatewayUnavailable
from terminal.words import kiosk_refusal, outcome_text

KIOSK_ERRORS = (
    TopUpRefused,
    LoadDeclined,
    CardError,
    TransportError,
    MalformedResponse,
    TlvError,
    GatewayRefused,
    GatewayUnavailable,
)


def refusal(exc: Exception) -> str:
    """What the kiosk's screen tells the customer, in words."""
    if isinstance(exc, TopUpRefused):
        return exc.reason
    if isinstance(exc, LoadDeclined):
        return f"the top-up was declined: {exc.reason}"
    if isinstance(exc, LoadInterrupted):
        return str(exc)
    if isinstance(exc, GatewayUnavailable):
        return "the kiosk cannot reach the card centre now; nothing was loaded, try later"
    if isinstance(exc, GatewayRefused):
        return f"the card centre refused: {exc.reason}"
    if isinstance(exc, TransportError):
        return f"card not read, present it again ({exc})"
    if isinstance(exc, CardError):
        return f"card refused the load ({type(exc).__name__})"
    return f"card answer not understood, present it again ({exc})"


class BadRequest(ValueError):
    """A request the screen application got wrong (answered 400 with this reason)."""


def _fields(body: Any, allowed: set[str]) -> dict[str, Any]:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)} ({', '.join(sorted(allowed))})")
    pin = body.get("pin")
    if pin is not None and not (isinstance(pin, str) and pin.isdigit() and pin.isascii()):
        raise BadRequest("pin must be the card's PIN in digits")
    return body


def pickup_request(body: Any) -> tuple[str, str | None]:
    """The holder's answer and PIN of a ``POST /pickup`` body; BadRequest says why not."""
    body = _fields(body, {"holder", "pin"})
    holder = body.get("holder")
    if not isinstance(holder, str):
        raise BadRequest("holder (the holder's ID number) is required")
    try:
        return holder_answer(holder), body.get("pin")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def top_up_request(body: Any) -> tuple[int, str | None]:
    """The amount (fen) and PIN of a ``POST /top-up`` body; BadRequest says why not."""
    body = _fields(body, {"amount_fen", "pin"})
    amount = body.get("amount_fen")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise BadRequest(f"amount_fen must be a whole number of fen above 0, got {amount!r}")
    return amount, body.get("pin")


class KioskService(CounterService):
    """One assembled kiosk run as a service."""

    noun = "top-up"
    device = "kiosk"
    routes = (("/top-up", "post_top_up"), ("/balance", "post_balance"))
    role: Kiosk

    def __init__(
        self,
        terminal: Terminal,
        on_outcome: Callable[[Outcome], None],
        *,
        on_start: Callable[[], None] | None = None,
        poll: float = 0.2,
    ):
        super().__init__(terminal, on_outcome, on_start=on_start, poll=poll)
        if self.role.subsidies is not None:
            self.actions["/pickup"] = self.post_pickup
        self.loaded_fen = 0
        self._next_recovery = 0.0

    # -- requests -------------------------------------------------------------------------
    def post_top_up(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /top-up {"amount_fen": N}``: 200 with the result, 400 bad request, 409
        busy, 503 stopping or out of service."""
        try:
            amount, pin = top_up_request(body)
        except BadRequest as exc:
            return 400, {"ok": False, "refused": f"bad top-up request: {exc}"}
        return self.serve({"amount_fen": amount}, lambda: self._top_up(amount, pin), refusal)

    def post_pickup(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /pickup {"holder": "…"}``: load the card's approved subsidies that fit, for
        the holder who typed their ID number."""
        try:
            holder, pin = pickup_request(body)
        except BadRequest as exc:
            return 400, {"ok": False, "refused": f"bad pickup request: {exc}"}
        return self.serve({}, lambda: self._pickup(holder, pin), refusal)

    def post_balance(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /balance {}``: the card's balance (nothing is written to it)."""
        try:
            _fields(body, set())
        except BadRequest as exc:
            return 400, {"ok": False, "refused": f"bad balance request: {exc}"}
        return self.serve({}, self._balance, refusal)

    def _attempt(self, amount: int | None, operate: Callable[[], Outcome]) -> Outcome:
        started = time.monotonic()
        try:
            outcome = operate()
        except KIOSK_ERRORS as exc:
            outcome = refused(amount, self.terminal_id, refusal(exc), kiosk_refusal(exc))
        outcome.ms = (time.monotonic() - started) * 1000
        return outcome

    def _top_up(self, amount: int, pin: str | None) -> Outcome:
        def operate() -> Outcome:
            top = self.role.top_up(amount, pin=pin)
            r = top.result
            self.loaded_fen += amount
            doc = {
                "ok": True,
                "action": "top-up",
                "amount_fen": amount,
                "card_number": top.card_number,
                "balance_fen": r.balance_after,
                "terminal_id": self.terminal_id,
                "reference": r.authorization.reference,
                "tac": r.tac.hex().upper(),
                "confirmed": top.credit.confirmed,
                "time": r.authorization.when.isoformat(),
            }
            return Outcome(doc, top_up_receipt(top.card_number, r), top)

        return self._attempt(amount, operate)

    def _pickup(self, holder: str, pin: str | None) -> Outcome:
        def operate() -> Outcome:
            got = self.role.pick_up(holder, pin=pin)
            self.loaded_fen += got.paid_fen
            doc = {
                "ok": True,
                "action": "pickup",
                "card_number": got.card_number,
                "message": got.message(),
                "amount_fen": got.paid_fen,
                "balance_fen": got.balance_after,
                "terminal_id": self.terminal_id,
                "reference": got.load.authorization.reference if got.load else None,
            }
            receipt = pickup_receipt(
                got.card_number,
                self.role.terminal_id,
                self.role.session.now(),
                got.load,
                got.paid,
                [got.message()],
            )
            return Outcome(doc, receipt, got)

        return self._attempt(None, operate)

    def _balance(self) -> Outcome:
        def operate() -> Outcome:
            snap = self.role.read()
            doc = {
                "ok": True,
                "action": "balance",
                "card_number": snap.info.card_number,
                "balance_fen": snap.balance,
                "terminal_id": self.terminal_id,
            }
            receipt = balance_receipt(
                snap.info.card_number,
                self.role.terminal_id,
                self.role.session.now(),
                snap.balance,
                [],
            )
            return Outcome(doc, receipt, snap)

        return self._attempt(None, operate)

    # -- idle time ------------------------------------------------------------------------
    def idle_work(self) -> None:
        """Every upload interval: confirm loads the gateway has not acknowledged yet and
        follow loads settled elsewhere (nothing happens while the gateway is down)."""
        credits = self.role.credits
        now = time.monotonic()
        if credits is None or now < self._next_recovery:
            return
        self._next_recovery = now + self.config.upload_interval
        credits.recover_without_card()

    # -- status ---------------------------------------------------------------------------
    counts = (
        ("requests", "ykt_kiosk_requests_total"),
        ("approved", "ykt_kiosk_approved_total"),
        ("refused", "ykt_kiosk_refused_total"),
    )

    def more_health(self) -> dict[str, object]:
        """The money loaded, and the loads still open while the journal can be read."""
        doc: dict[str, object] = {"loaded_fen": self.loaded_fen}
        if self.fault is None:
            doc["open_loads"] = len(self.terminal.journal.open_loads())
        return doc

    def more_metrics(self, health: dict[str, object]) -> dict[str, object]:
        return {
            "ykt_kiosk_loaded_fen_total": health["loaded_fen"],
            "ykt_kiosk_open_loads": health.get("open_loads", 0),
        }


def kiosk_log_line(terminal_id: str, outcome: Outcome) -> str:
    """One structured JSON line per kiosk request (what a log collector indexes)."""
    doc = outcome.doc
    fields = {
        "action": doc.get("action"),
        "amount": doc.get("amount_fen"),
        "card": doc.get("card_number"),
        "balance": doc.get("balance_fen"),
        "reference": doc.get("reference"),
        "confirmed": doc.get("confirmed"),
    }
    return request_log_line(terminal_id, outcome, fields, outcome_text(doc))
