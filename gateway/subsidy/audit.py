"""Special audits (专项治理): findings over the subsidy lines, their rectification, reports.

``run_audit`` looks at every live line (any roster not rejected) and the card book for:
the same payee on items that exclude each other in one period; the same person or
household twice for one item and period; one person holding several live cards; ID
numbers of deceased persons (civil affairs' list) on lines; beneficiaries matching the
staff-and-relatives list (优亲厚友: same household, same surname and village, or a
declared relation); amounts above the item's cap; lines paid to a card after it was lost.
Each finding is stored once (``subsidy_findings`` UNIQUE(kind, subject)); running the
audit again adds only new ones. A finding is marked for rectification (整改) and closed
with a note, each with who and when. Reports per item, township, department or month
(月报) as CSV and XLSX. docs/subsidy.md §4c.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.errors import Conflict, Invalid, NotFound
from gateway.storage import Cursor, Database, now_ms
from gateway.subsidy.catalogue import Catalogue
from gateway.subsidy.roster import RosterFormatError, read_table
from gateway.subsidy.store import check_actor
from terminal.csv_cells import csv_writer, safe_cell
from terminal.identity import IdNumberError, check_id_number
from terminal.text import nfkc

EXCLUSIVE = "exclusive_items"
TWICE = "twice_in_period"
SEVERAL_CARDS = "several_cards"
DECEASED = "deceased_paid"
FAVOURITISM = "favouritism"
ABOVE_CAP = "above_cap"
PAID_LOST = "paid_to_lost_card"
KINDS = (EXCLUSIVE, TWICE, SEVERAL_CARDS, DECEASED, FAVOURITISM, ABOVE_CAP, PAID_LOST)
REPORT_BY = ("item", "township", "department", "month")
OPEN, RECTIFYING, CLOSED = "open", "rectifying", "closed"
MAX_NOTE = 1000
# two-character surnames (复姓) common enough to matter when matching a surname
_COMPOUND = "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 令狐 司徒 夏侯 长孙 宇文 西门 独孤"
COMPOUND_SURNAMES = frozenset(_COMPOUND.split(" "))


@dataclass(frozen=True, slots=True)
class Staff:
    """A staff member of the subsidy chain and the relatives they declared."""

    name: str
    id_number: str
    household_id: str = ""  # their head of household's ID number, when given
    village: str = ""
    relatives: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id_number": self.id_number,
            "household_id": self.household_id,
            "village": self.village,
            "relatives": sorted(self.relatives),
        }


def surname(name: str) -> str:
    name = nfkc(name).strip()
    return name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]


# -- list files ------------------------------------------------------------------------------
_LIST_COLUMNS = {
    "身份证号码": "id_number",
    "id_number": "id_number",
    "姓名": "name",
    "name": "name",
    "户主身份证号码": "household_id",
    "household_id": "household_id",
    "村(社区)": "village",
    "village": "village",
    "亲属身份证号码": "relative_id",
    "relative_id": "relative_id",
    "关系": "relation",
    "relation": "relation",
    "死亡日期": "died_on",
    "died_on": "died_on",
}


def _list_rows(raw: bytes, what: str) -> list[tuple[int, dict[str, str]]]:
    try:
        table = read_table(raw)
    except RosterFormatError as exc:
        raise Invalid("bad_list", f"{what}: {exc}") from None
    if not table:
        raise Invalid("bad_list", f"{what} is empty")
    head = []
    for cell in table[0][1]:
        key = _LIST_COLUMNS.get(nfkc(cell).strip().lower())
        if cell.strip() and key is None:
            raise Invalid("bad_list", f"{what} line 1: unknown column {cell!r}")
        head.append(key)
    if "id_number" not in head:
        raise Invalid("bad_list", f"{what} line 1: the 身份证号码 (id_number) column is missing")
    out = []
    for line, cells in table[1:]:
        row = {k: nfkc(c).strip() for k, c in zip(head, cells, strict=False) if k}
        if any(row.values()):
            out.append((line, row))
    return out


def _id(text: str, what: str, line: int) -> str:
    try:
        return check_id_number(text)
    except IdNumberError as exc:
        raise Invalid("bad_list", f"{what} line {line}: {exc}") from None


def read_deceased(raw: bytes) -> list[str]:
    """Civil affairs' list of deceased persons (CSV or XLSX): a 身份证号码 column, others
    (姓名, 死亡日期) kept out; every number must be a valid one."""
    return sorted(
        {_id(r.get("id_number", ""), "deceased list", n) for n, r in _list_rows(raw, "list")}
    )


def read_staff(raw: bytes) -> list[Staff]:
    """The staff-and-relatives list: 姓名,身份证号码[,户主身份证号码,村(社区),亲属身份证号码,
    关系], one row per declared relative (a staff member without one has the columns empty)."""
    staff: dict[str, dict[str, Any]] = {}
    for n, r in _list_rows(raw, "staff list"):
        number = _id(r.get("id_number", ""), "staff list", n)
        entry = staff.setdefault(
            number,
            {"name": r.get("name", ""), "household": "", "village": "", "relatives": set()},
        )
        if r.get("household_id"):
            entry["household"] = _id(r["household_id"], "staff list", n)
        entry["village"] = r.get("village") or entry["village"]
        if r.get("relative_id"):
            entry["relatives"].add(_id(r["relative_id"], "staff list", n))
    return [
        Staff(e["name"], k, e["household"], e["village"], frozenset(e["relatives"]))
        for k, e in staff.items()
    ]


def checked_ids(numbers: list[str], what: str) -> list[str]:
    """ID numbers given in a request, each checked (GB 11643) and normalised."""
    return sorted({_id(x, what, n) for n, x in enumerate(numbers, 1)})


def staff_of(doc: dict[str, Any]) -> Staff:
    """A staff entry from the API's JSON (the same checks as the file)."""
    relatives = frozenset(_id(x, "staff", 0) for x in doc.get("relatives") or ())
    household = doc.get("household_id") or ""
    return Staff(
        nfkc(doc.get("name") or ""),
        _id(doc.get("id_number") or "", "staff", 0),
        _id(household, "staff", 0) if household else "",
        nfkc(doc.get("village") or "").strip(),
        relatives,
    )


# -- the checks ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Line:
    id: int
    name: str
    id_number: str
    card_number: str
    item: str
    amount_fen: int
    period: str
    payee: str
    member_name: str
    member_id: str
    household_id: str
    village: str
    paid_at: int | None

    @property
    def people(self) -> set[str]:
        return {x for x in (self.id_number, self.member_id) if x}

    @property
    def household(self) -> str:
        return self.household_id or self.id_number

    @property
    def names(self) -> set[str]:
        return {x for x in (self.name, self.member_name) if x}


_LINES = (
    "SELECT l.id, l.name, l.id_number, l.card_number, l.item, l.amount_fen, l.period, l.payee,"
    " l.member_name, l.member_id, l.household_id, l.village,"
    " CASE WHEN b.state = 'paid' THEN b.result_at"
    " WHEN ld.state = 'confirmed' THEN COALESCE(ld.resolved_at, ld.created_at) END"
    " FROM subsidy_lines l LEFT JOIN subsidy_bank_lines b ON b.id = l.bank_line_id"
    " LEFT JOIN loads ld ON ld.id = l.load_id WHERE l.live = 1 ORDER BY l.id"
)


def _lines(cur: Cursor) -> list[_Line]:
    cur.execute(_LINES)
    return [
        _Line(int(r[0]), *r[1:5], int(r[5]), *r[6:12], None if r[12] is None else int(r[12]))
        for r in cur.fetchall()
    ]


Finding = tuple[str, str, dict[str, Any]]


def _exclusive(lines: list[_Line], catalogue: Catalogue) -> list[Finding]:
    held: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for x in lines:
        held[(x.id_number, x.period)][x.item].append(x.id)
    out = []
    for (who, period), items in held.items():
        for a in sorted(items):
            item = catalogue.items.get(a)
            for b in sorted(item.excludes if item else ()):
                if a < b and b in items:
                    what = f"{who} has {a} and {b} in {period}: they exclude each other"
                    out.append(
                        (EXCLUSIVE, f"{who}|{period}|{a}+{b}",
                         {"what": what, "lines": sorted(items[a] + items[b])})
                    )  # fmt: skip
    return out


def _twice(lines: list[_Line], catalogue: Catalogue) -> list[Finding]:
    persons: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    houses: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    house_lines: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for x in lines:
        for p in x.people:
            persons[(p, x.item, x.period)].append(x.id)
        item = catalogue.items.get(x.item)
        if item is not None and item.per_household:
            key = (x.household, x.item, x.period)
            houses[key].add(x.id_number)
            house_lines[key].append(x.id)
    out: list[Finding] = []
    for (p, item_code, period), ids in persons.items():
        if len(ids) > 1:
            what = f"person {p} is on {len(ids)} lines of {item_code} in {period}"
            out.append((TWICE, f"person {p}|{item_code}|{period}", {"what": what, "lines": ids}))
    for key, ids in house_lines.items():
        h, item_code, period = key
        if len(ids) > 1 and len(houses[key]) > 1:  # one payee twice is the person case
            what = f"household {h} is paid {len(ids)} times for {item_code} in {period}"
            out.append((TWICE, f"household {h}|{item_code}|{period}", {"what": what, "lines": ids}))
    return out


def _several_cards(cur: Cursor) -> list[Finding]:
    cur.execute(
        "SELECT id_number, card_number FROM cards WHERE desk_state = 'active'"
        " AND lost_at IS NULL ORDER BY id_number, card_number"
    )
    cards: dict[str, list[str]] = defaultdict(list)
    for who, card in cur.fetchall():
        cards[who].append(card)
    return [
        (SEVERAL_CARDS, who, {"what": f"{who} holds {len(c)} live cards", "cards": c, "lines": []})
        for who, c in cards.items()
        if len(c) > 1
    ]


def _deceased(lines: list[_Line], deceased: set[str]) -> list[Finding]:
    out = []
    for x in lines:
        for p in sorted(x.people & deceased):
            state = "paid" if x.paid_at is not None else "payable"
            what = f"line {x.id} ({x.item} {x.period}, {state}) names {p}, listed as deceased"
            out.append((DECEASED, f"line {x.id}|{p}", {"what": what, "lines": [x.id]}))
    return out


def _favouritism(lines: list[_Line], staff: list[Staff]) -> list[Finding]:
    out = []
    for x in lines:
        for s in staff:
            why = []
            if x.household == (s.household_id or s.id_number) or s.id_number in x.people:
                why.append("same household")
            if (
                s.village
                and x.village == s.village
                and surname(s.name) in {surname(n) for n in x.names}
            ):
                why.append(f"same surname {surname(s.name)} in {s.village}")
            if x.people & s.relatives:
                why.append("declared relative")
            if why:
                what = f"line {x.id} ({x.item} {x.period}) and staff {s.name}: {', '.join(why)}"
                out.append(
                    (FAVOURITISM, f"line {x.id}|{s.id_number}", {"what": what, "lines": [x.id]})
                )
    return out


def _above_cap(lines: list[_Line], catalogue: Catalogue) -> list[Finding]:
    out = []
    for x in lines:
        item = catalogue.items.get(x.item)
        if item is not None and item.max_fen is not None and x.amount_fen > item.max_fen:
            what = f"line {x.id}: {x.amount_fen} fen, above {x.item}'s cap of {item.max_fen} fen"
            out.append((ABOVE_CAP, f"line {x.id}", {"what": what, "lines": [x.id]}))
    return out


def _lost_since(cur: Cursor) -> dict[str, int | None]:
    """Lost or replaced cards and when they were lost (None when the book does not say)."""
    cur.execute(
        "SELECT card_number, lost_at, record FROM cards WHERE lost_at IS NOT NULL"
        " OR desk_state IN ('lost', 'replaced')"
    )
    out: dict[str, int | None] = {}
    for card, lost_at, record in cur.fetchall():
        if lost_at is None:
            text = json.loads(record).get("lost_at")
            lost_at = int(datetime.fromisoformat(text).timestamp() * 1000) if text else None
        out[card] = None if lost_at is None else int(lost_at)
    return out


def _paid_lost(cur: Cursor, lines: list[_Line]) -> list[Finding]:
    lost = _lost_since(cur)
    out = []
    for x in lines:
        if x.paid_at is None or x.card_number not in lost:
            continue
        since = lost[x.card_number]
        if since is None or x.paid_at >= since:
            what = f"line {x.id} was paid to card {x.card_number} after it was reported lost"
            out.append((PAID_LOST, f"line {x.id}", {"what": what, "lines": [x.id]}))
    return out


def find(
    cur: Cursor, catalogue: Catalogue, deceased: set[str], staff: list[Staff]
) -> list[Finding]:
    """Every finding that holds now (nothing stored)."""
    lines = _lines(cur)
    return [
        *_exclusive(lines, catalogue),
        *_twice(lines, catalogue),
        *_several_cards(cur),
        *_deceased(lines, deceased),
        *_favouritism(lines, staff),
        *_above_cap(lines, catalogue),
        *_paid_lost(cur, lines),
    ]


# -- stored findings -------------------------------------------------------------------------
_COLUMNS = (
    "id, kind, subject, detail, found_by, found_at, rectify_by, rectify_at, closed_by,"
    " closed_at, note"
)


def _finding(r: Any) -> dict[str, Any]:
    detail = json.loads(r[3])
    state = CLOSED if r[8] else RECTIFYING if r[6] else OPEN
    return {
        "id": int(r[0]),
        "kind": r[1],
        "subject": r[2],
        "what": detail.get("what", ""),
        "lines": detail.get("lines", []),
        "state": state,
        "found_by": r[4],
        "found_at_ms": int(r[5]),
        "rectify_by": r[6],
        "rectify_at_ms": r[7],
        "closed_by": r[8],
        "closed_at_ms": r[9],
        "note": r[10],
    }


def run_audit(
    db: Database,
    catalogue: Catalogue,
    actor: str,
    *,
    deceased: list[str] | None = None,
    staff: list[Staff] | None = None,
) -> dict[str, Any]:
    """Find, store what is new, and answer the new findings and every open one."""
    actor = check_actor(actor)
    now = now_ms()
    with db.tx() as cur:
        found = find(cur, catalogue, set(deceased or ()), list(staff or ()))
        new = []
        for kind, subject, detail in found:
            cur.execute(
                "INSERT INTO subsidy_findings (kind, subject, detail, found_by, found_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, subject) DO NOTHING RETURNING id",
                (kind, subject, json.dumps(detail, ensure_ascii=False), actor, now),
            )
            r = cur.fetchone()
            if r is not None:
                new.append(int(r[0]))
        cur.execute(f"SELECT {_COLUMNS} FROM subsidy_findings ORDER BY id")
        rows = [_finding(r) for r in cur.fetchall()]
    return {
        "found": len(found),
        "new": [f for f in rows if f["id"] in new],
        "open": [f for f in rows if f["state"] != CLOSED],
    }


def list_findings(db: Database, state: str | None = None) -> list[dict[str, Any]]:
    with db.tx() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM subsidy_findings ORDER BY id")
        rows = [_finding(r) for r in cur.fetchall()]
    return [f for f in rows if state is None or f["state"] == state]


def _one(cur: Cursor, finding_id: int) -> dict[str, Any]:
    cur.execute(f"SELECT {_COLUMNS} FROM subsidy_findings WHERE id = ?", (finding_id,))
    r = cur.fetchone()
    if r is None:
        raise NotFound("unknown_finding", f"no audit finding #{finding_id}")
    return _finding(r)


def rectify(db: Database, finding_id: int, actor: str) -> dict[str, Any]:
    """整改: the finding is handed for rectification (who, when); once, and not when closed."""
    actor = check_actor(actor)
    with db.tx() as cur:
        f = _one(cur, finding_id)
        if f["state"] != OPEN:
            raise Conflict("finding_" + f["state"], f"finding #{finding_id} is {f['state']}")
        cur.execute(
            "UPDATE subsidy_findings SET rectify_by = ?, rectify_at = ? WHERE id = ?"
            " AND rectify_by IS NULL AND closed_by IS NULL",
            (actor, now_ms(), finding_id),
        )
        return _one(cur, finding_id)


def close(db: Database, finding_id: int, actor: str, note: str) -> dict[str, Any]:
    """Close a finding with a note saying what was done (who, when); closed once."""
    actor = check_actor(actor)
    note = nfkc(note or "").strip()
    if not note:
        raise Invalid("note_required", "a finding is closed with a note saying what was done")
    with db.tx() as cur:
        f = _one(cur, finding_id)
        if f["state"] == CLOSED:
            raise Conflict("finding_closed", f"finding #{finding_id} is closed already")
        cur.execute(
            "UPDATE subsidy_findings SET closed_by = ?, closed_at = ?, note = ? WHERE id = ?"
            " AND closed_by IS NULL",
            (actor, now_ms(), note[:MAX_NOTE], finding_id),
        )
        return _one(cur, finding_id)


# -- reports ---------------------------------------------------------------------------------
REPORT_COLUMNS = ("分组", "笔数", "金额(分)", "已发放(分)", "未发放(分)", "未结问题")


def report(db: Database, by: str) -> list[dict[str, Any]]:
    """Lines of approved rosters grouped by item, township, department or month: count,
    amount, paid, unpaid and open findings naming a line of the group. ``month``: the month
    a line was paid, or, unpaid, the month its roster was approved (月报)."""
    if by not in REPORT_BY:
        raise Invalid("bad_report", f"a report is by {', '.join(REPORT_BY)}")
    with db.tx() as cur:
        cur.execute(
            "SELECT l.id, l.item || ' ' || l.item_name, l.township, l.department, r.approved_at,"
            " l.amount_fen, CASE WHEN b.state = 'paid' THEN b.result_at"
            " WHEN ld.state = 'confirmed' THEN COALESCE(ld.resolved_at, ld.created_at) END"
            " FROM subsidy_lines l JOIN subsidy_rosters r ON r.id = l.roster_id"
            " LEFT JOIN subsidy_bank_lines b ON b.id = l.bank_line_id"
            " LEFT JOIN loads ld ON ld.id = l.load_id"
            " WHERE l.live = 1 AND r.state = 'approved' ORDER BY l.id"
        )
        rows = cur.fetchall()
        cur.execute("SELECT detail FROM subsidy_findings WHERE closed_by IS NULL")
        flagged: dict[int, int] = defaultdict(int)
        for (detail,) in cur.fetchall():
            for line_id in set(json.loads(detail).get("lines", [])):
                flagged[int(line_id)] += 1
    groups: dict[str, dict[str, Any]] = {}
    for line_id, item, township, department, approved_at, amount, paid_at in rows:
        if by == "month":
            at = paid_at if paid_at is not None else approved_at
            key = f"{datetime.fromtimestamp(int(at) / 1000):%Y-%m}"
        else:
            key = {"item": item, "township": township, "department": department}[by]
        g = groups.setdefault(
            key or "-",
            {"group": key or "-", "lines": 0, "amount_fen": 0, "paid_fen": 0, "unpaid_fen": 0,
             "open_findings": 0},
        )  # fmt: skip
        g["lines"] += 1
        g["amount_fen"] += int(amount)
        g["paid_fen" if paid_at is not None else "unpaid_fen"] += int(amount)
        g["open_findings"] += flagged.get(int(line_id), 0)
    return [groups[k] for k in sorted(groups)]


def _cells(g: dict[str, Any]) -> list[Any]:
    return [g["group"], g["lines"], g["amount_fen"], g["paid_fen"], g["unpaid_fen"],
            g["open_findings"]]  # fmt: skip


def report_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv_writer(out, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for g in rows:
        w.writerow(_cells(g))
    return out.getvalue()


def report_xlsx(rows: list[dict[str, Any]], title: str) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "报表"
    sheet.append([safe_cell(title[:200])])
    sheet.append(list(REPORT_COLUMNS))
    for g in rows:
        sheet.append([safe_cell(c) for c in _cells(g)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
