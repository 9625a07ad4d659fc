"""The publication listing (公示) of a roster: names and ID numbers masked; as CSV, as XLSX
and as a printable HTML page for the notice board, with the display period and room for
the residents' signatures.

Masking (terminal/identity.py): a name keeps its first and last character (张*三, a
two-character name its first: 李*); an ID number keeps its 6-digit address code and its
last 4 characters (110101********1234). Card numbers are not published at all.
"""

from __future__ import annotations

import html
import io
from typing import Any

from gateway.subsidy.roster import RosterReport
from terminal.csv_cells import csv_writer
from terminal.identity import mask_id_number, mask_name
from terminal.money import format_fen

COLUMNS = (
    "序号",
    "行",
    "乡镇(街道)",
    "村(社区)",
    "姓名",
    "身份证号",
    "补贴项目",
    "金额(元)",
    "期间",
)


def publication_rows(report: RosterReport) -> list[dict[str, Any]]:
    """One entry per accepted line, in roster order, with nothing that identifies fully."""
    return [
        {
            "no": n,
            "row": line.row,
            "township": line.township,
            "village": line.village,
            "name": mask_name(line.name),
            "id_number": mask_id_number(line.id_number),
            "item": line.item.name,
            "amount_fen": line.amount_fen,
            "period": line.period,
        }
        for n, line in enumerate(report.lines, start=1)
    ]


def _cells(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["no"],
        row["row"],
        row["township"],
        row["village"],
        row["name"],
        row["id_number"],
        row["item"],
        format_fen(row["amount_fen"], symbol=""),
        row["period"],
    )


def publication_csv(report: RosterReport) -> str:
    """The listing as CSV with Chinese column heads, amounts in yuan (e.g. 120.00); cells
    that a spreadsheet would run as formulas are neutralised (terminal/csv_cells.py)."""
    out = io.StringIO()
    writer = csv_writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in publication_rows(report):
        writer.writerow(_cells(row))
    return out.getvalue()


def publication_xlsx(report: RosterReport, title: str = "公示") -> bytes:
    """The listing as an XLSX workbook; every cell is a value (text cells that look like
    formulas are neutralised as in the CSV), amounts as text in yuan."""
    import openpyxl

    from terminal.csv_cells import safe_cell

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "公示"
    sheet.append([safe_cell(title[:200])])
    sheet.append(list(COLUMNS))
    for row in publication_rows(report):
        sheet.append([safe_cell(c) for c in _cells(row)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def publication_html(
    report: RosterReport, *, title: str, starts_on: str, ends_on: str, place: str = ""
) -> str:
    """A printable notice (张榜公布): the masked listing, the display period, where to raise
    an objection, and a column for the residents' signatures (群众签字认可)."""
    e = html.escape
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in _cells(row)) + "<td></td></tr>"
        for row in publication_rows(report)
    )
    total = format_fen(report.total_fen, symbol="")
    head = "".join(f"<th>{e(c)}</th>" for c in (*COLUMNS, "签字"))
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #000; padding: 4px 6px; }}
td:nth-child(8) {{ text-align: right; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>{e(title)} 公示</h1>
<p>公示期: {e(starts_on)} 至 {e(ends_on)}{f"　地点: {e(place)}" if place else ""}</p>
<p>如有异议, 请在公示期内向乡镇(街道)财政所反映, 写明序号和理由。</p>
<table><thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
<p>合计 {len(report.lines)} 人(户), {total} 元。</p>
<p>公示人: ________　监督电话: ________　日期: ________</p>
</body></html>
"""
