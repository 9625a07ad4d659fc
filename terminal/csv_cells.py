"""CSV for people to open in a spreadsheet: cells that would run as formulas are neutralised.

Excel, LibreOffice and WPS treat a cell starting with ``= + - @`` (or a tab or carriage
return before one) as a formula, so a name like ``=HYPERLINK(...)`` in a roster would run
when an officer opens the listing. Such a cell gets a leading single quote, which the
spreadsheet shows as text. Every CSV written for people goes through ``csv_writer``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet will show it, never evaluate it (numbers pass unchanged)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every text cell passes through ``safe_cell``."""

    def __init__(self, out: TextIO, **kwargs: Any):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: TextIO, **kwargs: Any) -> SafeWriter:
    return SafeWriter(out, **kwargs)
