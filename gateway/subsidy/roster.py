"""Subsidy rosters (分户清册): parse the CSV and check every row, pure and storage-free.

Header, exactly: ``name,id_number,card_number,item,amount_fen,period``. Each row is
checked for: a name; a GB 11643 ID number; a 19-digit card number (and, given a card
lookup, an active card of that ID number); an item of the catalogue; an amount that is a
positive whole number of fen within the item's cap; a period in the item's format
(YYYY-MM, YYYY-Qn or YYYY). Then across rows: one line per person, item and period
(later duplicates are refused and name the first), and one card per person (an ID
number listed with two cards, or a card with two ID numbers, is refused from the second
row on). A row can fail several checks; the report lists every reason.

Every field is NFKC-normalised before it is checked (``terminal.text``): a full-width
``２０２６-09`` is the period 2026-09, so it cannot declare the same line twice; digits of
other scripts are refused. Names also lose invisible characters.

Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gateway.subsidy.catalogue import Catalogue, Item
from terminal.apdu.errors import YikatongError
from terminal.identity import IdNumberError, check_id_number
from terminal.roles.registry import CardRecord, CardState, UnknownCard
from terminal.text import nfkc, person_name

HEADER = ("name", "id_number", "card_number", "item", "amount_fen", "period")
CARD_NUMBER_DIGITS = 19
MAX_AMOUNT_FEN = 10**9  # ten million yuan: no single subsidy line comes near it
ENCODINGS = ("utf-8-sig", "gb18030")  # spreadsheet exports from either world

# Fields are NFKC-normalised first (terminal/text.py), then these accept ASCII digits only.
_CARD = re.compile(rf"^[0-9]{{{CARD_NUMBER_DIGITS}}}\Z", re.ASCII)
_FEN = re.compile(r"^[0-9]+\Z", re.ASCII)
_PERIOD = {
    "month": (re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])\Z", re.ASCII), "YYYY-MM"),
    "quarter": (re.compile(r"^([0-9]{4})-Q([1-4])\Z", re.ASCII), "YYYY-Qn"),
    "year": (re.compile(r"^([0-9]{4})\Z", re.ASCII), "YYYY"),
}
FIRST_YEAR = 2000

CardLookup = Callable[[str], CardRecord | None]


class RosterFormatError(YikatongError, ValueError):
    """The file is not a roster at all (unreadable, wrong header): nothing is checked."""


@dataclass(frozen=True, slots=True)
class RosterLine:
    """An accepted row: one payment of ``amount_fen`` to one card for one item and period."""

    row: int
    name: str
    id_number: str
    card_number: str
    item: Item
    amount_fen: int
    period: str

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "name": self.name,
            "id_number": self.id_number,
            "card_number": self.card_number,
            "item": self.item.code,
            "item_name": self.item.name,
            "category": self.item.category,
            "amount_fen": self.amount_fen,
            "period": self.period,
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    fields: dict[str, str]
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "reasons": list(self.reasons), "fields": self.fields}


@dataclass(frozen=True)
class RosterReport:
    """The validation report: accepted lines, and every rejected row with its reasons."""

    lines: list[RosterLine] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.lines) + len(self.rejected)

    @property
    def total_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)

    def by_item(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for line in self.lines:
            entry = out.setdefault(
                line.item.code, {"name": line.item.name, "lines": 0, "amount_fen": 0}
            )
            entry["lines"] += 1
            entry["amount_fen"] += line.amount_fen
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": len(self.lines),
            "rejected": len(self.rejected),
            "total_fen": self.total_fen,
            "by_item": self.by_item(),
            "rejections": [r.to_json() for r in self.rejected],
            "lines": [line.to_json() for line in self.lines],
        }


# -- reading ------------------------------------------------------------------------------
def decode_roster(raw: bytes) -> str:
    """UTF-8 (with or without BOM) or GB18030, whichever the bytes are."""
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise RosterFormatError(f"line {line}: a NUL byte; a roster is text (a CSV file)")
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RosterFormatError("roster is neither UTF-8 nor GB18030 text")


def parse_roster(text: str) -> list[tuple[int, list[str]]]:
    """(row number, cells) for every non-blank data row; RosterFormatError on the header."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise RosterFormatError("roster is empty") from None
    except csv.Error as exc:
        raise RosterFormatError(f"roster is not CSV: {exc}") from None
    if tuple(cell.strip().lower() for cell in header) != HEADER:
        raise RosterFormatError(f"header must be {','.join(HEADER)}; got {','.join(header)}")
    rows = []
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise RosterFormatError(f"line {reader.line_num}: {exc}") from None
    return rows


def read_roster(path: str | Path) -> list[tuple[int, list[str]]]:
    return parse_roster(decode_roster(Path(path).read_bytes()))


# -- checking -----------------------------------------------------------------------------
def check_amount(text: str, item: Item | None) -> tuple[int | None, str | None]:
    """(fen, None) or (None, reason). Only plain digits: no sign, decimals or spaces inside."""
    if not _FEN.match(text):
        if re.match(r"^-[0-9]", text):
            return None, f"amount {text!r} is negative"
        if re.match(r"^[0-9]*\.[0-9]+$", text):
            return None, f"amount {text!r} has a fraction: amounts are whole fen"
        return None, f"amount {text!r} is not a number of fen"
    fen = int(text)
    if fen == 0:
        return None, "amount is zero"
    if fen > MAX_AMOUNT_FEN:
        return None, f"amount {fen} fen is implausibly large"
    if item is not None and item.max_fen is not None and fen > item.max_fen:
        return None, f"amount {fen} fen is above the {item.max_fen} fen cap of item {item.code}"
    return fen, None


def check_period(text: str, item: Item | None, today: date) -> str | None:
    """None, or why ``text`` is no period of the item's kind (any kind if the item is unknown)."""
    kinds = [item.period] if item is not None else list(_PERIOD)
    for kind in kinds:
        pattern, _ = _PERIOD[kind]
        m = pattern.match(text)
        if m:
            year = int(m.group(1))
            if not FIRST_YEAR <= year <= today.year + 1:
                return f"period {text} is out of range ({FIRST_YEAR}..{today.year + 1})"
            return None
    shapes = " or ".join(_PERIOD[k][1] for k in kinds)
    return f"period {text!r} must look like {shapes}"


def check_card(card_number: str, id_number: str | None, lookup: CardLookup | None) -> str | None:
    if not _CARD.match(card_number):
        return f"card number must be {CARD_NUMBER_DIGITS} digits"
    if lookup is None:
        return None
    record = lookup(card_number)
    if record is None:
        return f"card {card_number} is not in the card registry"
    if record.state == CardState.REPLACED and record.replaced_by:
        return f"card {card_number} was replaced by {record.replaced_by}: list the new card"
    if record.state != CardState.ACTIVE:
        return f"card {card_number} is {record.state.value}, not active"
    if id_number is not None and record.holder.id_number != id_number:
        return f"card {card_number} belongs to another ID number"
    return None


def registry_lookup(get: Callable[[str], CardRecord]) -> CardLookup:
    """A card lookup over a ``CardRegistry.get`` (UnknownCard becomes None)."""

    def lookup(card_number: str) -> CardRecord | None:
        try:
            return get(card_number)
        except UnknownCard:
            return None

    return lookup


def _normalised(cells: list[str]) -> dict[str, str]:
    """The row's fields in the form they are checked and stored in: NFKC (full-width digits
    become ASCII, so one period is one key), the name also without invisible characters."""
    fields = dict(zip(HEADER, (nfkc(c) for c in cells), strict=False))
    if "name" in fields:
        fields["name"] = person_name(fields["name"])
    return fields


def validate_roster(
    rows: Iterable[tuple[int, list[str]]],
    catalogue: Catalogue,
    *,
    today: date | None = None,
    cards: CardLookup | None = None,
) -> RosterReport:
    """Check every row and the roster as a whole; see the module docstring for the rules."""
    today = today or date.today()
    report = RosterReport()
    seen_line: dict[tuple[str, str, str], int] = {}
    card_of_person: dict[str, tuple[str, int]] = {}
    person_of_card: dict[str, tuple[str, int]] = {}
    for row, cells in rows:
        fields = _normalised(cells)
        reasons: list[str] = []
        if len(cells) != len(HEADER):
            reasons.append(f"row has {len(cells)} fields, expected {len(HEADER)}")
            report.rejected.append(Rejection(row, fields, tuple(reasons)))
            continue
        name, raw_id, card_number, item_text, amount_text, period = (fields[h] for h in HEADER)
        if not name:
            reasons.append("name is empty")
        id_number: str | None
        try:
            id_number = check_id_number(raw_id, today=today)
        except IdNumberError as exc:
            id_number = None
            reasons.append(f"ID number: {exc.reason}")
        card_reason = check_card(card_number, id_number, cards)
        if card_reason:
            reasons.append(card_reason)
        item = catalogue.lookup(item_text)
        if item is None:
            reasons.append(f"unknown subsidy item {item_text!r}")
        fen, amount_reason = check_amount(amount_text, item)
        if amount_reason:
            reasons.append(amount_reason)
        period_reason = check_period(period, item, today)
        if period_reason:
            reasons.append(period_reason)
        if id_number is not None and item is not None and period_reason is None:
            key = (id_number, item.code, period)
            first = seen_line.setdefault(key, row)
            if first != row:
                reasons.append(f"duplicate of row {first} (same ID number, item and period)")
        if id_number is not None and card_reason is None:
            card, first = card_of_person.setdefault(id_number, (card_number, row))
            if card != card_number:
                reasons.append(f"ID number is listed with card {card} in row {first}")
            person, first = person_of_card.setdefault(card_number, (id_number, row))
            if person != id_number:
                reasons.append(f"card {card_number} is listed for another ID number in row {first}")
        if reasons:
            report.rejected.append(Rejection(row, fields, tuple(reasons)))
            continue
        assert id_number is not None and item is not None and fen is not None
        report.lines.append(RosterLine(row, name, id_number, card_number, item, fen, period))
    return report
