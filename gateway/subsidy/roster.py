"""Subsidy rosters (分户清册): read the file and check every row, pure and storage-free.

A roster is CSV (UTF-8 with or without BOM, or GBK/GB18030) or XLSX (the first sheet).
Its first row names the columns, in any order, in Chinese or in English:

======================  ======================  =========================================
Chinese                 English                 what
======================  ======================  =========================================
姓名                    name                    the beneficiary
身份证号码              id_number               GB 11643
一卡通卡号              card_number             19 digits; the payee's card
补贴项目                item                    catalogue code or name
金额(元)                amount_fen              yuan with at most two decimals / whole fen
发放期间                period                  YYYY-MM, YYYY-Qn, YYYY (once: also YYYY-MM-DD)
户主姓名 (optional)     household_name          the head of household
户主身份证号码 (opt.)   household_id            the head's ID number
乡镇(街道) (optional)   township
村(社区) (optional)     village
主管部门 (optional)     department
======================  ======================  =========================================

Per-household items (生产性补贴) are paid to the head of household: the line's payee is the
户主 (the person listed when no head is given) and the card must be the head's. A payee
appears once per item and period, and never on two items that exclude each other in one
period (城市低保 / 农村低保).

Two kinds of trouble. A *hostile or broken file* - unreadable, mixed encodings, a cell a
spreadsheet would run as a formula, an amount that is not a plain decimal (``1e3``,
``580.001``, ``-5``, full-width digits), too many rows or too long a cell - is refused as
a whole (``RosterFormatError`` naming the line): nothing in it is checked or stored. A
*row that fails a check* (ID number, card, item, period, cap, duplicate) is rejected with
every reason and the valid rows go on.

Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gateway.subsidy.catalogue import Catalogue, Item
from terminal.apdu.errors import YikatongError
from terminal.csv_cells import FORMULA_STARTS
from terminal.identity import IdNumberError, check_id_number
from terminal.money import parse_yuan
from terminal.roles.registry import CardRecord, CardState, UnknownCard
from terminal.text import nfkc, person_name

REQUIRED = ("name", "id_number", "card_number", "item", "amount", "period")
OPTIONAL = ("household_name", "household_id", "township", "village", "department")
HEADER = ("name", "id_number", "card_number", "item", "amount_fen", "period")
CHINESE_HEADER = ("姓名", "身份证号码", "一卡通卡号", "补贴项目", "金额(元)", "发放期间")
_COLUMNS = {  # header cell (NFKC, lower case) -> (field, amount in yuan?)
    **{h: (f, False) for h, f in zip(HEADER, REQUIRED, strict=True)},
    **{h: (h, False) for h in OPTIONAL},
    **{h: (f, h == "金额(元)") for h, f in zip(CHINESE_HEADER, REQUIRED, strict=True)},
    "户主姓名": ("household_name", False),
    "户主身份证号码": ("household_id", False),
    "乡镇(街道)": ("township", False),
    "村(社区)": ("village", False),
    "主管部门": ("department", False),
}
CARD_NUMBER_DIGITS = 19
MAX_AMOUNT_FEN = 10**9  # ten million yuan: no single subsidy line comes near it
MAX_ROWS = 50_000
MAX_CELL = 200
MAX_XLSX_UNPACKED = 64 * 1024 * 1024  # a zip bomb is refused before it is opened
ENCODINGS = ("utf-8-sig", "gb18030")  # spreadsheet exports from either world

_CARD = re.compile(rf"^[0-9]{{{CARD_NUMBER_DIGITS}}}\Z", re.ASCII)
_FEN = re.compile(r"^[0-9]+\Z", re.ASCII)
_YUAN = re.compile(r"^[0-9]+(\.[0-9]{1,2})?\Z", re.ASCII)
_PERIOD = {
    "month": (re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])\Z", re.ASCII), "YYYY-MM"),
    "quarter": (re.compile(r"^([0-9]{4})-Q([1-4])\Z", re.ASCII), "YYYY-Qn"),
    "year": (re.compile(r"^([0-9]{4})\Z", re.ASCII), "YYYY"),
    "day": (re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])-([0-3][0-9])\Z", re.ASCII), "YYYY-MM-DD"),
}
_KINDS = {
    "month": ("month",),
    "quarter": ("quarter",),
    "year": ("year",),
    "once": ("day", "month", "year"),
}
FIRST_YEAR = 2000

CardLookup = Callable[[str], CardRecord | None]


class RosterFormatError(YikatongError, ValueError):
    """The file is refused as a whole (unreadable, hostile, wrong header): nothing is
    checked or stored. The message names the line."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row as read: its spreadsheet row number, its fields by canonical name
    (NFKC, amount already in fen) and how many cells it had."""

    row: int
    fields: dict[str, str]
    width: int  # cells given, trailing blank ones left out
    expected: int  # columns in the header
    amount_fen: int | None


@dataclass(frozen=True, slots=True)
class RosterLine:
    """An accepted row: one payment of ``amount_fen`` to the payee's card for one item and
    period. The payee is the head of household for per-household items, else the person."""

    row: int
    name: str  # the payee
    id_number: str  # the payee's
    card_number: str
    item: Item
    amount_fen: int
    period: str
    member_name: str = ""  # the person listed, when not the payee
    member_id: str = ""
    household_id: str = ""  # the head of household's ID number, when given
    township: str = ""
    village: str = ""
    department: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "name": self.name,
            "id_number": self.id_number,
            "card_number": self.card_number,
            "item": self.item.code,
            "item_name": self.item.name,
            "category": self.item.category,
            "payee": self.item.payee,
            "amount_fen": self.amount_fen,
            "period": self.period,
            "member_name": self.member_name,
            "member_id": self.member_id,
            "household_id": self.household_id,
            "township": self.township,
            "village": self.village,
            "department": self.department,
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
def _bad_line(raw: bytes, encoding: str) -> int:
    """The first line (1-based) that does not decode in ``encoding``."""
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode(encoding)
        except UnicodeDecodeError:
            return n
    return 1


def decode_roster(raw: bytes) -> str:
    """UTF-8 (with or without BOM) or GBK/GB18030, one of them for the whole file: a GBK file
    with a UTF-8 line in it (two exports pasted together) is refused naming that line."""
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise RosterFormatError(f"line {line}: a NUL byte; a roster is text (a CSV file)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        line = _bad_line(raw, "gb18030")
        raise RosterFormatError(f"line {line}: neither UTF-8 nor GBK text") from None
    for n, line_bytes in enumerate(raw.split(b"\n"), start=1):
        if not line_bytes.isascii():
            try:
                line_bytes.decode("utf-8")
            except UnicodeDecodeError:
                continue
            raise RosterFormatError(
                f"line {n}: UTF-8 text in a GBK file (mixed encodings); save the whole "
                "file in one encoding"
            )
    return text


def _csv_table(text: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    table = []
    try:
        for cells in reader:
            table.append((reader.line_num, cells))
            if len(table) > MAX_ROWS + 1:
                raise RosterFormatError(f"line {reader.line_num}: more than {MAX_ROWS} rows")
    except csv.Error as exc:
        raise RosterFormatError(f"line {reader.line_num}: not CSV: {exc}") from None
    return table


def _xlsx_cell(value: Any) -> str:
    """A cell as text: numbers as Excel wrote them (the shortest decimal that reads back to
    the same value, so 580.5 stays 580.5 and 580.001 stays 580.001), dates ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)


def _xlsx_table(raw: bytes) -> list[tuple[int, list[str]]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        unpacked = sum(i.file_size for i in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise RosterFormatError(f"line 1: not an XLSX workbook: {exc}") from None
    if unpacked > MAX_XLSX_UNPACKED or len(archive.infolist()) > 1000:
        raise RosterFormatError(
            f"line 1: the workbook unpacks to {unpacked} bytes; at most {MAX_XLSX_UNPACKED}"
        )
    import openpyxl  # only an XLSX roster needs it

    try:
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook
        raise RosterFormatError(f"line 1: not a readable XLSX workbook ({exc})") from None
    table = []
    try:
        for n, row in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1):
            if n > MAX_ROWS + 1:
                raise RosterFormatError(f"line {n}: more than {MAX_ROWS} rows")
            table.append((n, [_xlsx_cell(v) for v in row]))
    finally:
        book.close()
    return table


def read_table(raw: bytes) -> list[tuple[int, list[str]]]:
    """(row number, cells) for every row of a CSV or XLSX roster, header included."""
    if raw.startswith(b"PK\x03\x04"):
        return _xlsx_table(raw)
    return _csv_table(decode_roster(raw))


def _header(cells: list[str]) -> tuple[list[str | None], bool]:
    """Each column's field (None for trailing blank columns) and whether amounts are yuan."""
    fields: list[str | None] = []
    yuan = False
    for cell in cells:
        key = nfkc(cell).lower()
        if not key:
            fields.append(None)
            continue
        if key not in _COLUMNS:
            raise RosterFormatError(
                f"line 1: unknown column {cell!r}; the header is {','.join(CHINESE_HEADER)} "
                f"(or {','.join(HEADER)}) with optional 户主姓名,户主身份证号码,乡镇(街道),"
                "村(社区),主管部门"
            )
        name, in_yuan = _COLUMNS[key]
        if name in fields:
            raise RosterFormatError(f"line 1: column {cell!r} is given twice")
        fields.append(name)
        yuan = yuan or in_yuan
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        raise RosterFormatError(
            f"line 1: header must be {','.join(CHINESE_HEADER)} or {','.join(HEADER)} "
            f"(optional columns after them); missing {', '.join(missing)}"
        )
    return fields, yuan


def parse_amount(text: str, *, yuan: bool) -> int:
    """An amount cell as integer fen, from its decimal text (never through float):
    yuan with at most two decimals, or whole fen. RosterFormatError says what is wrong."""
    if not text.isascii():
        raise RosterFormatError(
            f"amount {text!r} has full-width or other non-ASCII characters; type ASCII digits"
        )
    value = text.strip()
    if value.startswith("-"):
        raise RosterFormatError(f"amount {text!r} is negative")
    if yuan:
        if _YUAN.match(value):
            return parse_yuan(value)
        if re.match(r"^[0-9]+\.[0-9]{3,}\Z", value):
            raise RosterFormatError(f"amount {text!r} has more than two decimals (fen)")
        raise RosterFormatError(f"amount {text!r} is not a plain amount in yuan (e.g. 580.00)")
    if _FEN.match(value):
        return int(value)
    if re.match(r"^[0-9]*\.[0-9]+\Z", value):
        raise RosterFormatError(f"amount {text!r} has a fraction: amount_fen is whole fen")
    raise RosterFormatError(f"amount {text!r} is not a whole number of fen")


def parse_table(table: list[tuple[int, list[str]]]) -> list[RawRow]:
    """Every non-blank data row, checked for hostile content (see the module docstring)."""
    if not table:
        raise RosterFormatError("line 1: roster is empty")
    columns, yuan = _header(_trimmed(table[0][1]))
    rows = []
    for line, cells in table[1:]:
        if not any(cell.strip() for cell in cells):
            continue
        fields: dict[str, str] = {}
        for n, cell in enumerate(cells):
            column = columns[n] if n < len(columns) else None
            if len(cell) > MAX_CELL:
                raise RosterFormatError(f"line {line}: a cell of {len(cell)} characters")
            if column != "amount" and cell.startswith(FORMULA_STARTS):
                raise RosterFormatError(
                    f"line {line}: cell {cell[:20]!r} would run as a spreadsheet formula; "
                    "rosters hold values only"
                )
            if column is not None:
                fields[column] = nfkc(cell)
        amount = fields.get("amount", "")
        fen = None
        if amount:
            raw_amount = cells[columns.index("amount")]
            try:
                fen = parse_amount(raw_amount, yuan=yuan)
            except RosterFormatError as exc:
                raise RosterFormatError(f"line {line}: {exc}") from None
        if "name" in fields:
            fields["name"] = person_name(fields["name"])
        if "household_name" in fields:
            fields["household_name"] = person_name(fields["household_name"])
        rows.append(RawRow(line, fields, len(_trimmed(cells)), len(columns), fen))
    return rows


def _trimmed(cells: list[str]) -> list[str]:
    """``cells`` without trailing blank ones (a spreadsheet's unused columns)."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def parse_roster(text: str) -> list[RawRow]:
    """The data rows of a CSV roster given as text."""
    return parse_table(_csv_table(text))


def load_roster(raw: bytes) -> list[RawRow]:
    """The data rows of a roster file's bytes (CSV in UTF-8 or GBK, or XLSX)."""
    return parse_table(read_table(raw))


def read_roster(path: str | Path) -> list[RawRow]:
    return load_roster(Path(path).read_bytes())


# -- checking -----------------------------------------------------------------------------
def check_amount(fen: int | None, item: Item | None) -> str | None:
    """None, or why the amount (already parsed) is not payable for the item."""
    if fen is None:
        return "amount is empty"
    if fen == 0:
        return "amount is zero"
    if fen > MAX_AMOUNT_FEN:
        return f"amount {fen} fen is implausibly large"
    if item is not None and item.max_fen is not None and fen > item.max_fen:
        return f"amount {fen} fen is above the {item.max_fen} fen cap of item {item.code}"
    return None


def check_period(text: str, item: Item | None, today: date) -> str | None:
    """None, or why ``text`` is no period of the item's kind (any kind if the item is unknown)."""
    kinds = list(_KINDS[item.period]) if item is not None else list(_PERIOD)
    for kind in kinds:
        pattern, _ = _PERIOD[kind]
        m = pattern.match(text)
        if m:
            year = int(m.group(1))
            if not FIRST_YEAR <= year <= today.year + 1:
                return f"period {text} is out of range ({FIRST_YEAR}..{today.year + 1})"
            if kind == "day":
                try:
                    date.fromisoformat(text)
                except ValueError:
                    return f"period {text} is no date"
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
        return f"card {card_number} belongs to another ID number than the payee's"
    return None


def registry_lookup(get: Callable[[str], CardRecord]) -> CardLookup:
    """A card lookup over a ``CardRegistry.get`` (UnknownCard becomes None)."""

    def lookup(card_number: str) -> CardRecord | None:
        try:
            return get(card_number)
        except UnknownCard:
            return None

    return lookup


def _id(text: str, what: str, today: date, reasons: list[str]) -> str | None:
    try:
        return check_id_number(text, today=today)
    except IdNumberError as exc:
        reasons.append(f"{what}: {exc.reason}")
        return None


def validate_roster(
    rows: Iterable[RawRow],
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
    for raw in rows:
        row, f = raw.row, raw.fields
        reasons: list[str] = []
        if any(k not in f for k in REQUIRED) or raw.width > raw.expected:
            reasons.append(f"row has {raw.width} fields, expected {raw.expected}")
            report.rejected.append(Rejection(row, f, tuple(reasons)))
            continue
        name, card_number, item_text, period = f["name"], f["card_number"], f["item"], f["period"]
        if not name:
            reasons.append("name is empty")
        member_id = _id(f["id_number"], "ID number", today, reasons)
        item = catalogue.lookup(item_text)
        if item is None:
            reasons.append(f"unknown subsidy item {item_text!r}")
        head_text, head_name = f.get("household_id", ""), f.get("household_name", "")
        head_id = _id(head_text, "户主 ID number", today, reasons) if head_text else None
        payee_name, payee_id = name, member_id
        if item is not None and item.per_household and head_text:
            payee_id = head_id
            if head_id != member_id:
                payee_name = head_name
                if not head_name:
                    reasons.append("a per-household item is paid to the head: name the 户主")
        card_reason = check_card(card_number, payee_id, cards)
        if card_reason:
            reasons.append(card_reason)
        amount_reason = check_amount(raw.amount_fen, item)
        if amount_reason:
            reasons.append(amount_reason)
        period_reason = check_period(period, item, today)
        if period_reason:
            reasons.append(period_reason)
        if payee_id is not None and item is not None and period_reason is None:
            first = seen_line.setdefault((payee_id, item.code, period), row)
            if first != row:
                who = "household" if item.per_household else "ID number"
                reasons.append(f"duplicate of row {first} (same {who}, item and period)")
            for other in sorted(item.excludes):
                clash = seen_line.get((payee_id, other, period))
                if clash is not None:
                    reasons.append(
                        f"excluded by row {clash}: {other} and {item.code} are never paid "
                        "to one person in one period"
                    )
        if payee_id is not None and card_reason is None:
            card, first = card_of_person.setdefault(payee_id, (card_number, row))
            if card != card_number:
                reasons.append(f"ID number is listed with card {card} in row {first}")
            person, first = person_of_card.setdefault(card_number, (payee_id, row))
            if person != payee_id:
                reasons.append(f"card {card_number} is listed for another ID number in row {first}")
        if reasons:
            report.rejected.append(Rejection(row, f, tuple(reasons)))
            continue
        assert payee_id is not None and item is not None and raw.amount_fen is not None
        assert member_id is not None
        report.lines.append(
            RosterLine(
                row,
                payee_name,
                payee_id,
                card_number,
                item,
                raw.amount_fen,
                period,
                member_name=name if member_id != payee_id else "",
                member_id=member_id if member_id != payee_id else "",
                household_id=head_id or "",
                township=f.get("township", ""),
                village=f.get("village", ""),
                department=f.get("department", ""),
            )
        )
    return report
