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
    heading: str = "yikatong 一卡通 self-service"

    def text(self) -> str:
        rule = "-" * WIDTH
        head = [
            self.heading.center(WIDTH).rstrip(),
            self.title.center(WIDTH).rstrip(),
            rule,
            _row("Terminal", self.terminal_id),
            _row("Time", f"{self.when:%Y-%m-%d %H:%M:%S}"),
            _row("Card", mask_card_number(self.card_number)),
        ]
        body = [_row(label, value) for label, value in self.rows]
        notes = [rule, *self.notes] if self.notes else []
        return "\n".join([*head, *body, *notes, rule, "Keep this receipt."]) + "\n"


def _row(label: str, value: str) -> str:
    return f"{label:<12s}{value:>{WIDTH - 12}s}"


def _load_rows(result: LoadResult) -> list[tuple[str, str]]:
    return [
        ("Amount", format_fen(result.request.amount)),
        ("Balance", format_fen(result.balance_after)),
        ("TAC", result.tac.hex().upper()),
        ("Reference", result.authorization.reference or "-"),
    ]


def top_up_receipt(card_number: str, result: LoadResult) -> Receipt:
    return Receipt(
        "TOP-UP 充值",
        result.request.terminal_id.hex().upper(),
        result.authorization.when,
        card_number,
        _load_rows(result),
    )


def balance_receipt(
    card_number: str, terminal_id: bytes, when: datetime, balance: int, history: list[str]
) -> Receipt:
    return Receipt(
        "BALANCE 余额查询",
        terminal_id.hex().upper(),
        when,
        card_number,
        [("Balance", format_fen(balance))],
        history,
    )


def loss_receipt(
    card_number: str, terminal_id: bytes, when: datetime, version: int | None
) -> Receipt:
    return Receipt(
        "LOSS REPORT 挂失",
        terminal_id.hex().upper(),
        when,
        card_number,
        [("Hotlist", f"version {version}" if version is not None else "-")],
        [
            "The card is blocked at each terminal",
            "at its next hotlist update. Apply for a",
            "replacement at the service desk: the",
            "balance is carried over.",
        ],
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
        "SUBSIDY 惠民补贴领取",
        terminal_id.hex().upper(),
        result.authorization.when if result is not None else when,
        card_number,
        rows,
        [*(["Paid:", *item_lines] if item_lines else []), *notes],
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
    merchant: str = "yikatong 一卡通",
) -> Receipt:
    """A merchant sale: amount, the purse that paid, the balance left and the proof
    (terminal sequence and TAC for the T-Union purse, the card's cryptogram for EC)."""
    rows = [
        ("Amount", format_fen(amount)),
        ("Paid from", paid_from),
        ("Balance", format_fen(balance) if balance is not None else "-"),
        *proof,
    ]
    return Receipt("SALE 消费", terminal_id, when, card_number, rows, notes, heading=merchant)
