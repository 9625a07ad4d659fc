"""The publication listing (公示) of a validated roster: names and ID numbers masked.

Masking (terminal/identity.py): a name keeps its first and last character (张*三, a
two-character name its first: 李*); an ID number keeps its 6-digit address code and its
last 4 characters (110101********1234). Card numbers are not published at all.
"""

from __future__ import annotations

import io
from typing import Any

from gateway.subsidy.roster import RosterReport
from terminal.csv_cells import csv_writer
from terminal.identity import mask_id_number, mask_name
from terminal.money import format_fen

COLUMNS = ("序号", "姓名", "身份证号", "补贴项目", "金额(元)", "期间")


def publication_rows(report: RosterReport) -> list[dict[str, Any]]:
    """One entry per accepted line, in roster order, with nothing that identifies fully."""
    return [
        {
            "no": n,
            "name": mask_name(line.name),
            "id_number": mask_id_number(line.id_number),
            "item": line.item.name,
            "amount_fen": line.amount_fen,
            "period": line.period,
        }
        for n, line in enumerate(report.lines, start=1)
    ]


def publication_csv(report: RosterReport) -> str:
    """The listing as CSV with Chinese column heads, amounts in yuan (e.g. 120.00); cells
    that a spreadsheet would run as formulas are neutralised (terminal/csv_cells.py)."""
    out = io.StringIO()
    writer = csv_writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in publication_rows(report):
        writer.writerow(
            (
                row["no"],
                row["name"],
                row["id_number"],
                row["item"],
                format_fen(row["amount_fen"], symbol=""),
                row["period"],
            )
        )
    return out.getvalue()
