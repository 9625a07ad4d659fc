"""The subsidy catalogue: categories and their items, read from a TOML or JSON file.

An item has a code (what rosters normally quote), a name (accepted too), its payee
("person": living subsidies, paid to the person; "household": production subsidies, paid to
the head of household; "institution": fee waivers, listed per beneficiary), its payment
period ("month", "quarter", "year" or "once"), optionally a cap per roster line in fen and
the items it excludes (the same payee may not have both in one period: 城市低保 / 农村低保).
The default is Henan's list from 豫财办〔2011〕58号 (data/catalogue.toml).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from terminal.apdu.errors import YikatongError

DEMO_CATALOGUE = Path(__file__).parent / "data" / "catalogue.toml"
PERIODS = ("month", "quarter", "year", "once")
PAYEES = ("person", "household", "institution")


class CatalogueError(YikatongError, ValueError):
    """A catalogue file that is not well formed."""


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    name: str
    category: str  # category code
    period: str  # month | quarter | year | once
    max_fen: int | None = None
    payee: str = "person"  # person | household | institution
    excludes: frozenset[str] = frozenset()

    @property
    def per_household(self) -> bool:
        """Production subsidies: one line per household, paid to the head of household."""
        return self.payee == "household"


@dataclass(frozen=True)
class Catalogue:
    categories: dict[str, str]  # code -> name
    items: dict[str, Item]  # code -> item

    def lookup(self, text: str) -> Item | None:
        """The item a roster cell names, by code or by exact name."""
        text = text.strip()
        item = self.items.get(text)
        if item is not None:
            return item
        return next((i for i in self.items.values() if i.name == text), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalogue:
        categories: dict[str, str] = {}
        items: dict[str, Item] = {}
        names: set[str] = set()
        raw_categories = data.get("categories")
        if not isinstance(raw_categories, list) or not raw_categories:
            raise CatalogueError("catalogue needs a non-empty list of categories")
        for cat in raw_categories:
            code, name = _text(cat, "code"), _text(cat, "name")
            if code in categories:
                raise CatalogueError(f"category {code} is listed twice")
            categories[code] = name
            for raw in cat.get("items") or []:
                item = _item(raw, code)
                if item.code in items or item.name in names:
                    raise CatalogueError(f"item {item.code} ({item.name}) is listed twice")
                items[item.code] = item
                names.add(item.name)
        if not items:
            raise CatalogueError("catalogue has no items")
        return cls(categories, _symmetric(items))


def _symmetric(items: dict[str, Item]) -> dict[str, Item]:
    """Exclusion goes both ways: declared once, it holds for either item. Both items must
    name known items of the same period kind (a period is compared as written)."""
    pairs: dict[str, set[str]] = {code: set(item.excludes) for code, item in items.items()}
    for code, item in items.items():
        for other in item.excludes:
            if other not in items or other == code:
                raise CatalogueError(f"item {code} excludes {other!r}, which is no other item")
            if items[other].period != item.period:
                raise CatalogueError(
                    f"items {code} and {other} exclude each other but have different periods"
                )
            pairs[other].add(code)
    return {code: replace(item, excludes=frozenset(pairs[code])) for code, item in items.items()}


def _text(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{key!r} must be a non-empty string in {data!r}")
    return value.strip()


def _item(raw: Any, category: str) -> Item:
    period = _text(raw, "period")
    if period not in PERIODS:
        raise CatalogueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    cap = raw.get("max_fen")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0):
        raise CatalogueError(f"max_fen must be a positive whole number of fen, got {cap!r}")
    payee = raw.get("payee", "person")
    if payee not in PAYEES:
        raise CatalogueError(f"payee must be one of {', '.join(PAYEES)}, got {payee!r}")
    excludes = raw.get("excludes") or []
    if not isinstance(excludes, list) or not all(isinstance(x, str) for x in excludes):
        raise CatalogueError(f"excludes must be a list of item codes, got {excludes!r}")
    code = _text(raw, "code")
    return Item(code, _text(raw, "name"), category, period, cap, payee, frozenset(excludes))


def load_catalogue(path: str | Path = DEMO_CATALOGUE) -> Catalogue:
    """Read a catalogue; ``.json`` files are JSON, anything else TOML."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    return Catalogue.from_dict(data)
