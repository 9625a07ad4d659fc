"""A taxi or a coach conductor's terminal under ``ykt run``: each trip's fare input arrives
from the meter or the conductor's screen over ``POST /trip`` on the status port - a taxi's
``{"amount_fen": N}`` (the meter at trip end), a coach's ``{"destination": "0002"}`` (where
the rider is going) - and the next card in the field pays it, once.

A ``CounterService`` (terminal/runtime/counter.py): one trip at a time, 409 while a card is
being charged, SIGTERM finishes the trip in progress. The tap itself is the validator's
(``TaxiMeter``/``CoachBoarding`` built with ``one_trip``), so every fare goes through the
one journaled debit path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from terminal.roles.transport import CoachBoarding, TaxiMeter
from terminal.roles.validator import TapResult
from terminal.runtime.counter import CounterService, Outcome, request_log_line
from terminal.words import tap_words

TRIP_ROLES = ("taxi", "coach")


class BadTrip(ValueError):
    """A trip request the meter or the screen got wrong (answered 400 with this reason)."""


def taxi_request(body: Any) -> int:
    """The meter's amount (fen) of a taxi's ``POST /trip``; BadTrip says why not."""
    if not isinstance(body, dict) or set(body) != {"amount_fen"}:
        raise BadTrip('a taxi trip is {"amount_fen": N}, the meter\'s amount in fen')
    amount = body["amount_fen"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise BadTrip(f"amount_fen must be a whole number of fen above 0, got {amount!r}")
    return amount


def coach_request(body: Any) -> str:
    """The destination station code of a coach's ``POST /trip``; BadTrip says why not."""
    if not isinstance(body, dict) or set(body) != {"destination"}:
        raise BadTrip('a coach ticket is {"destination": "XXXX"}, a station code (4 hex digits)')
    to = body["destination"]
    if not isinstance(to, str) or len(to) != 4:
        raise BadTrip(f"destination must be a station code of 4 hex digits, got {to!r}")
    try:
        bytes.fromhex(to)
    except ValueError:
        raise BadTrip(f"destination must be a station code of 4 hex digits, got {to!r}") from None
    return to.upper()


def trip_outcome(result: TapResult, terminal_id: str, echo: dict[str, Any]) -> Outcome:
    """The answer to one trip: the tap's result, the fare asked echoed."""
    row = result.row
    doc: dict[str, Any] = {
        "ok": result.green,
        "terminal_id": terminal_id,
        **echo,
        "card_number": result.card_number,
        "fare_fen": result.fare,
        "balance_fen": result.balance,
        "terminal_seq": row.terminal_seq if row is not None else None,
        "state": row.state if row is not None else None,
        "outcome": str(result.outcome),
        "sw": f"{result.sw:04X}" if result.sw is not None else None,
        "text": tap_words(result, None),
    }
    if result.green:
        doc["message"] = result.message
    else:
        doc["refused"] = result.message
    return Outcome(doc, sale=result, ms=result.elapsed_ms)


def trip_log_line(terminal_id: str, outcome: Outcome) -> str:
    """One structured JSON line per trip (what a log collector indexes)."""
    doc = outcome.doc
    fields = {
        "fare": doc.get("fare_fen"),
        "destination": doc.get("destination"),
        "card": doc.get("card_number"),
        "balance": doc.get("balance_fen"),
    }
    after = {
        "seq": doc.get("terminal_seq"),
        "state": doc.get("state"),
        "outcome": doc.get("outcome"),
        "sw": doc.get("sw"),
    }
    return request_log_line(terminal_id, outcome, fields, doc.get("text"), after)


class TripService(CounterService):
    """A taxi meter or a coach conductor's terminal run as a service: trips from ``POST
    /trip``, the journal checked in idle time, background upload and hotlist sync."""

    noun = "trip"
    routes = (("/trip", "post_trip"),)
    role: TaxiMeter | CoachBoarding

    @property  # type: ignore[override]
    def device(self) -> str:
        return self.config.role

    def post_trip(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /trip``: 200 with the trip's result (paid or refused in words), 400 for a
        bad request, 409 while another trip runs, 503 when stopping or out of service."""
        role = self.role
        try:
            if isinstance(role, TaxiMeter):
                amount = taxi_request(body)
                echo: dict[str, Any] = {"amount_fen": amount}
                arm: Callable[[], None] = lambda: role.set_meter(amount)  # noqa: E731
            else:
                to = coach_request(body)
                echo = {"destination": to}
                arm = lambda: role.set_destination(to)  # noqa: E731
        except BadTrip as exc:
            return 400, {"ok": False, "refused": f"bad trip request: {exc}"}

        def operate() -> Outcome:
            started = time.monotonic()
            arm()
            outcome = trip_outcome(role.tap(), self.terminal_id, echo)
            outcome.ms = (time.monotonic() - started) * 1000
            return outcome

        return self.serve(echo, operate, lambda exc: f"card not read, tap again ({exc})")

    counts = (
        ("trips", "ykt_trips_total"),
        ("paid", "ykt_trips_paid_total"),
        ("refused", "ykt_trips_refused_total"),
    )
