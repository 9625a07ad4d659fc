"""A card centre's issuance desk under ``ykt run``: the desk clerk's screen sends each
applicant over the status port - ``POST /issue`` with the holder's fields, ``POST /replace``
with the lost card's number - and the blank card in the reader is personalised for them.

A ``CounterService`` (terminal/runtime/counter.py): one card at a time, 409 while a card is
being written, SIGTERM finishes the card in progress. The role is the ``IssuanceDesk`` as
``ykt issue --gateway`` builds it (numbers leased from the gateway, the person checked
against its book, carried balances through ``CreditPath``); after each card the desk's
changes are pushed to the gateway's card book, and again in idle time while a push waits.
With the sim reader each request gets a fresh blank software card in ``[desk] cards``,
named after its card number once issued.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.apdu.errors import TransportError, YikatongError
from terminal.journal import JournalError
from terminal.money import format_fen
from terminal.roles.issuance import IssuanceDesk, IssuanceError, Issued
from terminal.roles.registry import Applicant
from terminal.runtime.assembly import DeskDevices, Terminal
from terminal.runtime.counter import CounterService, Outcome, refused, request_log_line
from terminal.uplink.client import GatewayRefused, GatewayUnavailable
from terminal.uplink.issuance import GatewayCardBook
from terminal.words import desk_refusal, say

APPLICANT_FIELDS = {"name", "id_number", "card_kind", "id_type", "card_type", "pin"}


class BadRequest(ValueError):
    """A request the clerk's screen got wrong (answered 400 with this reason)."""


def _pin(body: dict[str, Any]) -> str | None:
    pin = body.get("pin")
    if pin is not None and not (isinstance(pin, str) and pin.isdigit() and pin.isascii()):
        raise BadRequest("pin must be the new card's PIN in digits")
    return pin


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)} ({', '.join(sorted(allowed))})")
    return body


def issue_request(body: Any) -> tuple[Applicant, str | None]:
    """The applicant and PIN of a ``POST /issue``; BadRequest says what is wrong."""
    body = _object(body, APPLICANT_FIELDS)
    for key in ("name", "id_number"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise BadRequest(f"{key} is required (the applicant's {key.replace('_', ' ')})")
    numbers: dict[str, int] = {}
    for key, default in (("card_kind", 1), ("id_type", 0), ("card_type", 1)):
        value = body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise BadRequest(f"{key} must be a number 0..255, got {value!r}")
        numbers[key] = value
    applicant = Applicant(
        body["name"].strip(),
        body["id_number"].strip(),
        numbers["card_kind"],
        numbers["id_type"],
        numbers["card_type"],
    )
    return applicant, _pin(body)


def replace_request(body: Any) -> tuple[str, str | None]:
    """The lost card's number and the new card's PIN of a ``POST /replace``."""
    body = _object(body, {"card_number", "pin"})
    number = body.get("card_number")
    if not isinstance(number, str) or not number.isdigit() or len(number) not in (19, 20):
        raise BadRequest(f"card_number must be the lost card's 19 or 20 digits, got {number!r}")
    return number, _pin(body)


def refusal(exc: Exception) -> str:
    """What the clerk's screen shows for a card not issued, in words."""
    if isinstance(exc, GatewayUnavailable):
        return "the desk cannot reach the card centre now; no card was issued, try later"
    if isinstance(exc, GatewayRefused):
        return f"the card centre refused: {exc.reason}"
    if isinstance(exc, IssuanceError):  # its message says what the clerk should do
        return str(exc)
    return f"no card issued: {exc}"


class DeskService(CounterService):
    """One assembled issuance desk run as a service."""

    noun = "card"
    device = "desk"
    routes = (("/issue", "post_issue"), ("/replace", "post_replace"))
    role: IssuanceDesk

    def __init__(
        self,
        terminal: Terminal,
        on_outcome: Callable[[Outcome], None],
        *,
        devices: DeskDevices,
        on_start: Callable[[], None] | None = None,
        poll: float = 0.2,
    ):
        super().__init__(terminal, on_outcome, on_start=on_start, poll=poll)
        self.devices = devices
        assert terminal.client is not None, "a desk is assembled with its gateway"
        registry = self.role.registry
        self.book = GatewayCardBook(terminal.client, registry.export, desk_id=registry.desk_id)
        self.push_waiting = True  # push at start: what an earlier run could not send
        self.pushed = 0
        self.book_refused = 0
        self._next_push = 0.0
        self._blank: Path | None = None

    # -- requests -------------------------------------------------------------------------
    def post_issue(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /issue {"name", "id_number", ...}``: 200 with the card issued or refused
        in words, 400 bad request, 409 busy, 503 stopping or out of service."""
        try:
            applicant, pin = issue_request(body)
        except BadRequest as exc:
            return 400, {"ok": False, "refused": f"bad issue request: {exc}"}
        return self.serve(
            {}, lambda: self._attempt("issue", lambda: self.role.issue(applicant, pin=pin)), _tap
        )

    def post_replace(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /replace {"card_number"}``: the lost card reported, hotlisted and replaced
        on the blank card in the reader, its balance (as the gateway proves it) carried."""
        try:
            old, pin = replace_request(body)
        except BadRequest as exc:
            return 400, {"ok": False, "refused": f"bad replace request: {exc}"}

        def replace() -> Issued:
            return self.role.replace(old, pin=pin, card_book=self.book)

        return self.serve({"replaces": old}, lambda: self._attempt("replace", replace), _tap)

    def _attempt(self, action: str, operate: Callable[[], Issued]) -> Outcome:
        started = time.monotonic()
        try:
            issued = operate()
        except (JournalError, TransportError):
            raise  # out of service, or the card to present again: the counter answers those
        except (YikatongError, ValueError) as exc:
            outcome = refused(None, self.terminal_id, refusal(exc), desk_refusal(exc))
            outcome.doc["action"] = action
        else:
            outcome = self._issued(action, issued)
        outcome.ms = (time.monotonic() - started) * 1000
        return outcome

    def _issued(self, action: str, issued: Issued) -> Outcome:
        r = issued.record
        doc: dict[str, Any] = {
            "ok": True,
            "action": action,
            "terminal_id": self.terminal_id,
            "card_number": r.card_number,
            "card_kind": r.holder.card_kind,
            "balance_fen": issued.snapshot.balance,
            "resumed": issued.resumed,
            "replaces": r.replaces,
            "carried_fen": issued.carried.request.amount if issued.carried else 0,
        }
        self.push_waiting = True
        doc["pushed"] = self._push()
        return Outcome(doc, sale=issued)

    # -- the gateway's card book ----------------------------------------------------------
    def _push(self) -> bool:
        """Send the desk's changes to the gateway's card book; False while it is down."""
        try:
            result = self.book.push()
        except (GatewayUnavailable, GatewayRefused):
            return False
        self.push_waiting = False
        self.pushed += result.sent
        self.book_refused += len(result.refused)
        return True

    def start_work(self) -> None:
        """Confirm carried loads the gateway has not acknowledged, push what waits."""
        self.idle_work()

    def idle_work(self) -> None:
        """Every upload interval: the carried loads' confirmations and a waiting push."""
        now = time.monotonic()
        if now < self._next_push:
            return
        self._next_push = now + self.config.upload_interval
        credits = self.role.credits
        if credits is not None:
            credits.recover_without_card()
        if self.push_waiting:
            self._push()

    # -- software cards -------------------------------------------------------------------
    def sim_card(self) -> Any:
        """A fresh blank software card for each request (sim reader)."""
        if self.config.card_reader != "sim":
            return None
        folder = Path(self.config.desk_cards)
        folder.mkdir(parents=True, exist_ok=True)
        self._blank = folder / f".blank-{time.time_ns()}.json"
        return self.devices.blank_card(str(self._blank), self.config.transport_master)

    def sim_card_done(self, outcome: Outcome | None) -> None:
        """An issued card's file is named after its number; an untouched blank goes."""
        blank, self._blank = self._blank, None
        if blank is None or not blank.exists():
            return
        if outcome is not None and outcome.ok:
            target = blank.with_name(f"{outcome.doc['card_number']}.json")
            os.replace(blank, target)
            outcome.doc["file"] = str(target)
        else:
            self.devices.discard_if_untouched(str(blank))

    # -- status ---------------------------------------------------------------------------
    counts = (
        ("requests", "ykt_desk_requests_total"),
        ("issued", "ykt_desk_issued_total"),
        ("refused", "ykt_desk_refused_total"),
    )

    def more_health(self) -> dict[str, object]:
        """The pushes of the desk's book to the card centre."""
        return {
            "book_pushed": self.pushed,
            "book_refused": self.book_refused,
            "push_waiting": self.push_waiting,
        }

    def more_metrics(self, health: dict[str, object]) -> dict[str, object]:
        return {"ykt_desk_book_refused_total": health["book_refused"]}


def _tap(exc: Exception) -> str:
    return f"card not read, put it back in the reader and send it again ({exc})"


def desk_log_line(terminal_id: str, outcome: Outcome) -> str:
    """One structured JSON line per desk request: the card, never the holder's name or ID
    number (personal data stays in the desk's registry)."""
    doc = outcome.doc
    fields = {
        "action": doc.get("action"),
        "card": doc.get("card_number"),
        "replaces": doc.get("replaces"),
        "carried": doc.get("carried_fen"),
        "pushed": doc.get("pushed"),
    }
    return request_log_line(terminal_id, outcome, fields, desk_text(doc))


def desk_text(doc: dict[str, Any]) -> str:
    """The clerk's sentence for a desk answer: the card issued, or the refusal's words."""
    if not doc.get("ok"):
        return str(doc.get("text") or doc.get("refused") or "")
    if doc.get("replaces"):
        carried = format_fen(int(doc.get("carried_fen") or 0))
        return say("desk.replaced", card=doc["card_number"], old=doc["replaces"], carried=carried)
    return say("desk.issued", card=doc["card_number"])
