"""Receipts as plain text (kiosk and merchant POS): what was done to which card, when,
where, with its proof.

A receipt shows the card number masked (the first 4 and last 4 digits stay), amounts in
yuan formatted from integer fen, the kiosk's terminal id, the time, and the reference
and TAC a complaint can be traced with. It never shows a holder's name or ID number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from terminal.epurse.model import LoadResult
from terminal.money import format_fen
from terminal.words import say

WIDTH = 40


def mask_card_number(number: str) -> str:
    """3100029000010000001 -> 3100***********0001."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


@dataclass(frozen=True)
class Receipt:
    """One slip: a title, label/value rows, and free lines (e.g. subsidy items)."""

    title: str
    terminal_id: str
    when: datetime
    card_number: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    heading: str | None = None  # None: the self-service heading in the chosen language

    def text(self) -> str:
        rule = "-" * WIDTH
        head = [
            (self.heading or say("receipt.heading")).center(WIDTH).rstrip(),
            self.title.center(WIDTH).rstrip(),
            rule,
            _row(say("receipt.terminal"), self.terminal_id),
            _row(say("receipt.time"), f"{self.when:%Y-%m-%d %H:%M:%S}"),
            _row(say("receipt.card"), mask_card_number(self.card_number)),
        ]
        body = [_row(label, value) for label, value in self.rows]
        notes = [rule, *self.notes] if self.notes else []
        return "\n".join([*head, *body, *notes, rule, say("receipt.keep")]) + "\n"


def _row(label: str, value: str) -> str:
    """A label left and a value right; Chinese characters take two columns on a slip."""
    wide = sum(1 for ch in label if ord(ch) > 0x2E7F)
    return f"{label:<{12 - wide}s}{value:>{WIDTH - 12}s}"


def _load_rows(result: LoadResult) -> list[tuple[str, str]]:
    return [
        (say("receipt.amount"), format_fen(result.request.amount)),
        (say("receipt.balance_row"), format_fen(result.balance_after)),
        (say("receipt.proof"), result.tac.hex().upper()),
        (say("receipt.reference"), result.authorization.reference or "-"),
    ]


def top_up_receipt(card_number: str, result: LoadResult) -> Receipt:
    return Receipt(
        say("receipt.top_up"),
        result.request.terminal_id.hex().upper(),
        result.authorization.when,
        card_number,
        _load_rows(result),
    )


def balance_receipt(
    card_number: str, terminal_id: bytes, when: datetime, balance: int, history: list[str]
) -> Receipt:
    return Receipt(
        say("receipt.balance"),
        terminal_id.hex().upper(),
        when,
        card_number,
        [(say("receipt.balance_row"), format_fen(balance))],
        history,
    )


def loss_receipt(
    card_number: str, terminal_id: bytes, when: datetime, version: int | None
) -> Receipt:
    return Receipt(
        say("receipt.loss"),
        terminal_id.hex().upper(),
        when,
        card_number,
        [
            (
                say("receipt.hotlist"),
                say("receipt.hotlist_version", version=version) if version is not None else "-",
            )
        ],
        say("receipt.loss_note").splitlines(),
    )


def pickup_receipt(
    card_number: str,
    terminal_id: bytes,
    when: datetime,
    result: LoadResult | None,
    paid: list[dict[str, object]],
    notes: list[str],
) -> Receipt:
    item_lines = [
        f"  {line['item_name']} {line['period']}: {format_fen(int(line['amount_fen']))}"  # type: ignore[call-overload]
        for line in paid
    ]
    rows = _load_rows(result) if result is not None else []
    return Receipt(
        say("receipt.subsidy"),
        terminal_id.hex().upper(),
        result.authorization.when if result is not None else when,
        card_number,
        rows,
        [*([say("receipt.paid"), *item_lines] if item_lines else []), *notes],
    )


def sale_receipt(
    card_number: str,
    terminal_id: str,
    when: datetime,
    amount: int,
    paid_from: str,
    balance: int | None,
    proof: list[tuple[str, str]],
    notes: list[str],
    *,
    merchant: str | None = None,
) -> Receipt:
    """A merchant sale: amount, the purse that paid, the balance left and the proof
    (terminal sequence and TAC for the T-Union purse, the card's cryptogram for EC)."""
    rows = [
        (say("receipt.amount"), format_fen(amount)),
        (say("receipt.paid_from"), paid_from),
        (say("receipt.balance_row"), format_fen(balance) if balance is not None else "-"),
        *proof,
    ]
    return Receipt(
        say("receipt.sale"), terminal_id, when, card_number, rows, notes, heading=merchant
    )
