"""Subsidy pickup at a kiosk: approved roster lines loaded onto the card in the reader.

1. Select the card and ask the gateway for its lines. The holder has typed their whole
   ID number: the gateway checks it with the load (step 4) and
   refuses a wrong answer (``not_the_holder``; a few in a row lock the card's pickup).
2. Settle every earlier pickup of this card that was never confirmed (a card pulled
   after CREDIT, a lost answer), here or at another kiosk, from the card itself: GET
   TRANSACTION PROVE confirms it anywhere; the kiosk that holds it voids it with an
   INITIALIZE FOR LOAD run for the gateway's void challenge. Lines of a confirmed one
   are paid; of a void one, pending again; another kiosk's unprovable one stays held.
3. Read the balance and take pending lines oldest first while the balance stays within
   the purse's maximum (a line that does not fit is skipped, a later smaller one may
   still fit); the rest stays pending and the result says so.
4. One online load for the lines taken, through the kiosk's one journaled credit path
   (``CreditPath``): INITIALIZE FOR LOAD, the gateway checks MAC1, reserves the lines and
   returns MAC2, the intent row, CREDIT FOR LOAD, the TAC is confirmed, the row settled; a
   card pulled mid-load leaves the row open and the card's next visit (step 2, from the
   journal first) proves or voids it like a torn top-up. If the
   gateway refuses it because a load of this kiosk (a top-up) still holds the card's
   counter, that load is settled with the card and the pickup tried once more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from terminal.epurse import flows
from terminal.epurse.model import LoadRequest, LoadResult
from terminal.journal import SETTLED, VOID
from terminal.money import format_fen
from terminal.roles.debit import CreditPath
from terminal.roles.load_host import (
    HttpLoadHost,
    LoadPending,
    resolve_load,
    settle_own_loads,
    settled_any,
)
from terminal.roles.session import TerminalSession

MAX_LINES_PER_LOAD = 16  # the gateway's limit per pickup
# the holder's answer: their whole ID number (the 公示 listing shows its first 6 and last 4
# characters, so any part of it would be half public; the birth date is not)
HOLDER_PATTERN = r"^[0-9]{17}[0-9X]$"


def holder_answer(text: str) -> str:
    """The holder's typed answer, checked and normalised (``x`` → ``X``); ValueError says
    what is wrong without repeating it."""
    answer = text.strip().upper()
    if not re.fullmatch(HOLDER_PATTERN, answer):
        raise ValueError(
            "the holder's answer is their whole ID number (18 characters: digits, the last "
            "may be X)"
        )
    return answer


JOURNALED = {SETTLED: "confirmed", VOID: "void"}  # a recovered journal row's outcome


class SubsidyHost(Protocol):
    """The gateway's subsidy services, as ``terminal.roles.kiosk_host.HttpSubsidyHost``."""

    def for_card(self, card_number: str) -> dict[str, Any]: ...

    def paying(self, line_ids: list[int], holder: str) -> HttpLoadHost: ...

    def prove(self, reference: str, mac: bytes, tac: bytes) -> Any: ...

    def void_challenge(self, reference: str) -> Any: ...

    def void(self, reference: str, evidence: LoadRequest) -> Any: ...


@dataclass(frozen=True)
class Pickup:
    """What one visit did. Lines are the gateway's JSON (item, item_name, period,
    amount_fen, line_id, roster_id, ...)."""

    card_number: str
    balance_before: int
    max_balance: int
    paid: list[dict[str, Any]] = field(default_factory=list)  # paid by this visit's load
    load: LoadResult | None = None
    settled: list[tuple[str, str]] = field(default_factory=list)  # (reference, outcome)
    completed: list[dict[str, Any]] = field(default_factory=list)  # earlier loads, proved now
    left: list[dict[str, Any]] = field(default_factory=list)  # did not fit the purse
    awaiting: list[dict[str, Any]] = field(default_factory=list)  # roster not approved yet
    unresolved: list[str] = field(default_factory=list)  # held loads the card cannot settle

    @property
    def paid_fen(self) -> int:
        return sum(line["amount_fen"] for line in self.paid)

    @property
    def balance_after(self) -> int:
        return self.load.balance_after if self.load is not None else self.balance_before

    def message(self) -> str:
        parts = []
        if self.completed:
            fen = sum(line["amount_fen"] for line in self.completed)
            parts.append(
                f"an interrupted pickup was completed: {len(self.completed)} line(s), "
                f"{format_fen(fen)} already on the card"
            )
        if self.paid:
            parts.append(f"paid {len(self.paid)} line(s), {format_fen(self.paid_fen)}")
        if self.left:
            fen = sum(line["amount_fen"] for line in self.left)
            parts.append(
                f"{len(self.left)} line(s), {format_fen(fen)}, left pending: the purse holds at "
                f"most {format_fen(self.max_balance)}; spend some and come back"
            )
        if self.awaiting:
            parts.append(f"{len(self.awaiting)} line(s) await approval")
        if self.unresolved:
            parts.append(
                f"{len(self.unresolved)} earlier pickup(s) could not be settled: bring the "
                "card back to the kiosk that started it, or ask the service desk"
            )
        return "; ".join(parts) if parts else "no subsidy to pick up"


def choose_lines(
    pending: list[dict[str, Any]],
    balance: int,
    max_balance: int,
    *,
    limit: int = MAX_LINES_PER_LOAD,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(lines to pay now, lines left pending): oldest first, each only if it still fits."""
    room = max_balance - balance
    take: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    for line in pending:
        if len(take) < limit and line["amount_fen"] <= room:
            take.append(line)
            room -= line["amount_fen"]
        else:
            left.append(line)
    return take, left


def pick_up(
    session: TerminalSession,
    host: SubsidyHost,
    terminal_id: bytes,
    *,
    holder: str,
    max_balance: int,
    credits: CreditPath,
    pin: str | None = None,
    key_index: int = 1,
    retried: bool = False,
) -> Pickup:
    """Pick up what the card can take now; see the module docstring for the steps.
    ``holder`` is the holder's typed answer (ValueError when it cannot be one)."""
    holder = holder_answer(holder)
    session.card_reader.connect()
    info = session.run(flows.select())
    settled = [  # this kiosk's torn loads of the card, from its journal first
        (row.reference, JOURNALED[state])
        for state, row in credits.recover(info)
        if state in JOURNALED
    ]
    view = host.for_card(info.card_number)
    for load in view["held_loads"]:
        settled.append((load["reference"], resolve_load(session, host, load)))  # type: ignore[arg-type]
    completed: list[dict[str, Any]] = []
    if settled:
        view = host.for_card(info.card_number)
        confirmed = {ref for ref, outcome in settled if outcome == "confirmed"}
        completed = [line for line in view["paid"] if line.get("load_reference") in confirmed]
        session.card_reader.connect()
        info = session.run(flows.select())
    unresolved = [ref for ref, outcome in settled if outcome == "unresolved"]
    balance = session.run(flows.read_balance())
    take, left = choose_lines(view["pending"], balance, max_balance)
    base = {
        "card_number": info.card_number,
        "balance_before": balance,
        "max_balance": max_balance,
        "settled": settled,
        "completed": completed,
        "left": left,
        "awaiting": view["awaiting_approval"],
        "unresolved": unresolved,
    }
    if not take:
        return Pickup(**base)
    amount = sum(line["amount_fen"] for line in take)
    paying = host.paying([line["line_id"] for line in take], holder)
    try:
        result = credits.load(
            info,
            amount,
            terminal_id,
            pin=pin,
            key_index=key_index,
            purpose="subsidy pickup",
            context={"lines": [line["line_id"] for line in take]},
            host=paying,
        ).result
    except LoadPending:
        if retried or not isinstance(host, HttpLoadHost):
            raise
        if not settled_any(settle_own_loads(session, host, info)):
            raise
        return pick_up(
            session,
            host,
            terminal_id,
            holder=holder,
            max_balance=max_balance,
            credits=credits,
            pin=pin,
            key_index=key_index,
            retried=True,
        )
    return Pickup(**base, paid=take, load=result)
