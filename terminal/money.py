"""Money is an integer number of fen. These helpers only format and parse it - never a float."""

from __future__ import annotations

import re

from terminal.text import nfkc

_AMOUNT = re.compile(r"^([0-9]{1,9})(?:\.([0-9]{1,2}))?\Z", re.ASCII)


def format_fen(fen: int, symbol: str = "¥") -> str:
    """1234 -> '¥12.34'; negative amounts keep their sign."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{symbol}{fen // 100}.{fen % 100:02d}"


def parse_yuan(text: str) -> int:
    """'12.34' -> 1234, '5' -> 500; rejects anything that is not a plain decimal amount
    (NFKC first, so full-width digits are read as ASCII; other scripts' digits are refused)."""
    m = _AMOUNT.match(nfkc(text))
    if m is None:
        raise ValueError(f"{text!r} is not an amount in yuan (e.g. 12.50)")
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
