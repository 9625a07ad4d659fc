"""A device that serves one request at a time from its local screen or till: the POS's
``POST /sale``, the kiosk's ``POST /top-up`` and ``POST /pickup``, the desk's ``POST /issue``.

Each request waits for the card (the sim reader presents the configured software cards in
turn), runs the role's operation with it and answers JSON. A second request while one runs
is answered 409 at once rather than queued; SIGTERM lets the operation in progress finish
and its answer go out, then what waits is uploaded and the files are closed. A failing
journal puts the device out of service (503 from then on, exit 3).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from terminal.apdu.errors import TransportError
from terminal.journal import JournalError
from terminal.roles.loop import JournalWatch
from terminal.roles.receipt import Receipt
from terminal.runtime.assembly import Terminal
from terminal.runtime.service import ServiceResult, device_health, prometheus, start_status
from terminal.runtime.status import Action, StatusServer
from terminal.words import say


@dataclass
class Outcome:
    """One request's result: ``doc`` is the JSON answer (``ok`` true with what was done, or
    false with ``refused`` in words); ``receipt`` when one was printed."""

    doc: dict[str, Any]
    receipt: Receipt | None = None
    sale: Any = None  # the role's own result (a POS sale, a kiosk top-up, an issued card)
    ms: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.doc["ok"])


def request_log_line(
    terminal_id: str,
    outcome: Outcome,
    fields: dict[str, Any],
    text: str | None,
    after_ms: dict[str, Any] | None = None,
) -> str:
    """One structured JSON line per request (what a log collector indexes): the common head
    (``time``, ``terminal_id``, ``ok``), the role's ``fields``, ``ms`` and the role's
    ``after_ms``, then the common tail (``refused``, ``text``); the order is docs/operators.md's."""
    line = {
        "time": datetime.now().isoformat(timespec="milliseconds"),
        "terminal_id": terminal_id,
        "ok": outcome.ok,
        **fields,
        "ms": round(outcome.ms, 1),
        **(after_ms or {}),
        "refused": outcome.doc.get("refused"),
        "text": text,
    }
    return json.dumps(line, ensure_ascii=False)


def refused(amount: int | None, terminal_id: str, why: str, text: str | None = None) -> Outcome:
    """A refusal: ``refused`` the reason as the role states it, ``text`` the operator's
    sentence in the terminal's language (terminal/words.py)."""
    doc: dict[str, Any] = {"ok": False, "terminal_id": terminal_id, "refused": why}
    if text is not None:
        doc["text"] = text
    if amount is not None:
        doc["amount_fen"] = amount
    return Outcome(doc)


class CounterService:
    """One assembled device serving requests on its status port (``actions``), the journal
    checked in idle time (and ``idle_work`` run there), background upload and hotlist sync."""

    noun = "request"  # what one operation is called in answers
    device = "device"  # what the device is called in answers
    routes: tuple[tuple[str, str], ...] = ()  # (POST path, the method that answers it)
    role: Any  # the assembled role (each service names its type)

    def __init__(
        self,
        terminal: Terminal,
        on_outcome: Callable[[Outcome], None],
        *,
        on_start: Callable[[], None] | None = None,
        poll: float = 0.2,
    ):
        self.terminal = terminal
        self.config = terminal.config
        self.role = terminal.role
        self.actions: dict[str, Action] = {
            path: getattr(self, method) for path, method in self.routes
        }
        self.on_outcome = on_outcome
        self.on_start = on_start
        self.poll = poll
        self.terminal_id = terminal.session.sam.terminal_id_hex
        self.stop_event = threading.Event()
        self.fault: str | None = None  # why the device went out of service
        self.served = self.approved = self.refused = 0
        self.started = datetime.now()
        self.status: StatusServer | None = None
        self._work = threading.Lock()  # an operation or the idle checks, never both
        self._guard = threading.Lock()  # protects _busy and _closing
        self._busy = False
        self._closing = False
        self._next_card = 0
        self.watch = JournalWatch(
            terminal.journal,
            terminal.config.journal_check,
            now=terminal.session.now,
            torn_window=terminal.config.torn_window,
        )

    def stop(self) -> None:
        """Stop after the operation in progress (safe from a signal handler: sets an event)."""
        self.stop_event.set()

    # -- requests -------------------------------------------------------------------------
    def serve(
        self,
        echo: dict[str, Any],
        operate: Callable[[], Outcome],
        words: Callable[[Exception], str],
        *,
        card: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        """Run ``operate`` with the card in the field, one at a time: 200 with its result,
        409 while another runs, 503 when stopping or out of service. ``echo`` goes into
        every refusal (the amount asked); ``words`` says a card error in the customer's;
        ``card`` false: the operation needs no card (a book handed back)."""
        with self._guard:
            if self._closing or self.fault is not None or self.stop_event.is_set():
                if self.fault:
                    return 503, self._out_of_service_answer(echo)
                why = f"the {self.device} is stopping"
                return 503, {"ok": False, **echo, "refused": why, "text": say("counter.stopping")}
            if self._busy:
                return 409, {
                    "ok": False,
                    **echo,
                    "refused": f"another {self.noun} is in progress; send this one when it is done",
                    "text": say("counter.busy"),
                }
            self._busy = True
        try:
            with self._work:
                outcome = self._with_card(echo, operate, words, card)
        finally:
            with self._guard:
                self._busy = False
        if outcome is None:
            return 503, self._out_of_service_answer(echo)
        return 200, outcome.doc

    def _out_of_service_answer(self, echo: dict[str, Any]) -> dict[str, Any]:
        why = f"out of service: {self.fault}"
        return {"ok": False, **echo, "refused": why, "text": say("counter.out_of_service")}

    @staticmethod
    def worded(action: Action) -> Action:
        """``action`` with its bad-request answers (400) worded for the operator too."""

        def answer(body: Any) -> tuple[int, dict[str, Any]]:
            status, doc = action(body)
            if status == 400 and "text" not in doc:
                doc = {**doc, "text": say("counter.bad_request")}
            return status, doc

        return answer

    def _with_card(
        self,
        echo: dict[str, Any],
        operate: Callable[[], Outcome],
        words: Callable[[Exception], str],
        needs_card: bool = True,
    ) -> Outcome | None:
        terminal = self.terminal
        config = self.config
        amount = echo.get("amount_fen")
        card = self.sim_card() if needs_card else None
        sim = card is not None
        if sim:
            terminal.card_reader.insert(card)  # type: ignore[attr-defined]
        outcome: Outcome | None = None
        try:
            if needs_card and not sim and not terminal.reader.wait_for_card(config.card_wait):
                outcome = refused(
                    amount,
                    self.terminal_id,
                    f"no card in the field within {config.card_wait:g} s: present the card "
                    f"and send the {self.noun} again",
                    say("counter.no_card", seconds=f"{config.card_wait:g}"),
                )
            else:
                outcome = operate()
            self.settle()
        except JournalError as exc:
            self._out_of_service(str(exc))
            return None
        except TransportError as exc:
            outcome = refused(amount, self.terminal_id, words(exc), say("error.card_removed"))
        finally:
            if sim:
                terminal.card_reader.remove()  # type: ignore[attr-defined]
                self.sim_card_done(outcome)
        assert outcome is not None
        if outcome.receipt is not None:
            outcome.doc["receipt"] = outcome.receipt.text()
        self.served += 1
        if outcome.ok:
            self.approved += 1
        else:
            self.refused += 1
        self.on_outcome(outcome)
        return outcome

    def sim_card(self) -> Any:
        """The software card a sim reader presents for the next request (the configured
        cards in turn), or None: a real reader, the card is awaited in the field."""
        cards = self.terminal.cards
        if not cards or self.config.card_reader != "sim":
            return None
        card = cards[self._next_card % len(cards)]
        self._next_card += 1
        return card

    def sim_card_done(self, outcome: Outcome | None) -> None:
        """The software card was taken out again after ``outcome`` (None: no answer)."""

    # -- the service ----------------------------------------------------------------------
    def start_work(self) -> None:
        """What the role does once at start, before the first request (nothing here)."""

    def idle_work(self) -> None:
        """What the role does in idle time besides the journal checks (nothing here)."""

    def _idle(self) -> None:
        """The journal checks of idle time (``JournalWatch``), never during an operation."""
        with self._work:
            try:
                self.check_store()
                self.idle_work()
            except JournalError as exc:
                self._out_of_service(str(exc))

    def settle(self) -> None:
        """After each operation: the journal's write-ahead log folded in."""
        self.terminal.journal.checkpoint()

    def check_store(self) -> None:
        """Idle time: the journal still the one opened, its integrity and its unreturned torn
        debits now and then (``JournalWatch``); a JournalError takes the device out of service."""
        self.watch.check()

    def _out_of_service(self, reason: str) -> None:
        self.fault = reason
        self.stop_event.set()

    def run(self) -> ServiceResult:
        terminal = self.terminal
        actions = {path: self.worded(action) for path, action in self.actions.items()}
        self.status = start_status(terminal, self, actions=actions)
        try:
            terminal.start_background()
            with self._work:
                self.start_work()
            if self.on_start is not None:
                self.on_start()
            self._idle()
            while not self.stop_event.wait(self.poll):
                self._idle()
        finally:
            with self._guard:
                self._closing = True  # new requests are refused from here on
            with self._work:  # the operation in progress finishes (and is answered) first
                pass
            if self.status is not None:
                self.status.stop()
            waiting = terminal.close()
        return ServiceResult(self.approved, self.refused, self.fault, waiting)

    # -- status ---------------------------------------------------------------------------
    # the /health key and the metric of the served, approved and refused counts, in order
    counts: tuple[tuple[str, str], ...] = (
        ("requests", "ykt_requests_total"),
        ("approved", "ykt_approved_total"),
        ("refused", "ykt_refused_total"),
    )

    def more_health(self) -> dict[str, object]:
        """What a role adds to /health after its counts (nothing here)."""
        return {}

    def more_metrics(self, health: dict[str, object]) -> dict[str, object]:
        """What a role adds to /metrics after its counts (nothing here)."""
        return {}

    def health(self) -> dict[str, object]:
        """What /health answers: the device's journal and upload state, and the counts."""
        doc = device_health(self.terminal, self.terminal_id, self.fault, self.started)
        served = (self.served, self.approved, self.refused)
        doc.update(zip([key for key, _ in self.counts], served, strict=True))
        doc.update(self.more_health())
        return doc

    def metrics(self) -> str:
        h = self.health()
        values = {metric: h[key] for key, metric in self.counts}
        values.update(self.more_metrics(h))
        return prometheus(self.terminal, h, values)
