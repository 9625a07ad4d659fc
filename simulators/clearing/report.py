"""The settlement table as text: per issuer, per operator, and the totals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from terminal.money import format_fen


def format_settlement(doc: dict[str, Any]) -> Iterator[str]:
    day = doc.get("day") or "all days"
    yield f"== Settlement ({day})"
    yield f"   {'issuer':<18s} {'purchases':>9s} {'amount':>12s} {'loads':>6s} {'amount':>12s}"
    for i in doc["by_issuer"]:
        yield (
            f"   {i['issuer_id']:<18s} {i['purchases']:>9d} "
            f"{format_fen(i['purchase_amount']):>12s} {i['loads']:>6d} "
            f"{format_fen(i['load_amount']):>12s}"
        )
    yield f"   {'operator':<18s} {'purchases':>9s} {'amount':>12s} {'loads':>6s} {'amount':>12s}"
    for o in doc["by_operator"]:
        yield (
            f"   {o['operator_id']:<18s} {o['purchases']:>9d} "
            f"{format_fen(o['purchase_amount']):>12s} {o['loads']:>6d} "
            f"{format_fen(o['load_amount']):>12s}"
        )
    t = doc["totals"]
    yield (
        f"   {'total':<18s} {t['purchases']:>9d} {format_fen(t['purchase_amount']):>12s} "
        f"{t['loads']:>6d} {format_fen(t['load_amount']):>12s}"
    )
    yield f"   rejected by clearing: {doc['rejections']}"
