"""Fare rules as data: loaded from a TOML fare file, validated once, integer fen throughout.

The fare file (``data/demo.toml`` is the annotated example) is checked strictly, because a
typo must never mean "no fare":

* only the keys and sections of ``SCHEMA`` exist; any other (``[buss]``, ``overtim_penalty``)
  is refused, naming the file, the line and the known keys;
* amounts are whole fen, 0..2^31-1 (what a card's balance word and a record hold), and the
  largest single charge (a fare plus its penalties) must fit too;
* minutes 0..10080, ``double_tap_seconds`` 0..86400, card kinds 0..255, percentages 0..100,
  hex codes of their exact size (full-width digits accepted, read as ASCII);
* ``allow_balance_flag`` (default false): debit cards whose balance word has its top bit set.

Every problem is one ``FareFileError``: ``<file>:<line>: <what>`` (tomllib gives no line
numbers; the line of the key is found in the text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terminal.fares.modes import MODE_SCHEMA, ModeRules, largest_mode_charge, parse_modes
from terminal.text import FileError, nfkc
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml

DEMO_FARES = Path(__file__).parent / "data" / "demo.toml"


MAX_FARE_FEN = 0x7FFF_FFFF  # the largest amount a card's balance word holds (31 bits)
MAX_MINUTES = 7 * 24 * 60
MAX_DOUBLE_TAP_SECONDS = 24 * 60 * 60


class FareFileError(FileError):
    """A fare file that is missing a field, has an unknown key, a bad or out-of-range value,
    or names unknown stations; with the file and line when they are known."""

    def __init__(self, what: str, *, path: str | Path | None = None, line: int | None = None):
        super().__init__(path, line, what)


@dataclass(frozen=True)
class Concession:
    """A card kind that pays ``percent`` of the fare (0 = free, 50 = half)."""

    card_kind: int
    name: str
    percent: int


@dataclass(frozen=True)
class Operator:
    name: str
    city_code: bytes  # 2 bytes, 受理方城市代码
    acquirer_id: bytes  # 8 bytes, 受理方机构标识
    operator_code: bytes  # 2 bytes


@dataclass(frozen=True)
class MetroRules:
    stations: dict[str, str]  # 4-hex-digit code -> name
    fares: dict[tuple[str, str], int]
    entry_debit: int = 0  # 0, or a deposit taken at entry and credited against the exit fare
    same_station_fare: int = 0
    max_trip_minutes: int = 240
    overtime_penalty: int = 0
    missing_exit_penalty: int = 0  # charged at the next entry when an entry is still open
    no_entry: str = "refuse"  # exit without entry: "refuse" or "max-fare"

    @property
    def max_fare(self) -> int:
        return max(self.fares.values(), default=0)

    def fare(self, entry: str, exit_: str) -> int:
        if entry == exit_:
            return self.same_station_fare
        try:
            return self.fares[(entry, exit_)]
        except KeyError:
            raise FareFileError(f"no fare between stations {entry} and {exit_}") from None


@dataclass(frozen=True)
class FareRules:
    operator: Operator
    bus_flat_fare: int
    metro: MetroRules
    transfer_window_minutes: int = 0
    transfer_discount: int = 0
    concessions: dict[int, Concession] = field(default_factory=dict)
    double_tap_seconds: int = 60
    concession_source: str = "management"  # card kind from 0x17 ("management") or 0x16 ("holder")
    allow_balance_flag: bool = False  # debit cards whose balance word has its top bit set
    modes: ModeRules = field(default_factory=ModeRules)  # taxi, bike, coach, parking

    def concession(self, card_kind: int) -> Concession | None:
        return self.concessions.get(card_kind)


class _File(TomlFile):
    """The fare file being parsed; its errors are ``FareFileError``."""

    what = "fare file"

    def make_error(self, what: str, line: int | None) -> FileError:
        return FareFileError(what, path=self.path, line=line)

    def fen(self, value: Any, keys: tuple[str, ...]) -> int:
        what = ".".join(keys)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(
                keys, f"{what} must be a non-negative whole number of fen, got {value!r}"
            )
        if value > MAX_FARE_FEN:
            raise self.error(
                keys, f"{what} {value} fen is more than a card balance can hold ({MAX_FARE_FEN})"
            )
        return value


# Every key a fare file may hold; anything else (a misspelt [buss]) is refused, so a
# typo can never silently mean "no fare". ANY_KEYS: a table of any keys (stations, fares),
# each value checked where it is used.
SCHEMA: dict[str, Any] = {
    "double_tap_seconds": None,
    "concession_source": None,
    "allow_balance_flag": None,
    "operator": {"name": None, "city_code": None, "acquirer_id": None, "operator_code": None},
    "bus": {"flat_fare": None},
    "metro": {
        "entry_debit": None,
        "same_station_fare": None,
        "max_trip_minutes": None,
        "overtime_penalty": None,
        "missing_exit_penalty": None,
        "no_entry": None,
        "stations": ANY_KEYS,
        "fares": ANY_KEYS,
    },
    "transfer": {"window_minutes": None, "discount": None},
    "concessions": [{"card_kind": None, "name": None, "percent": None}],
    **MODE_SCHEMA,
}


def _metro(f: _File, m: dict[str, Any]) -> MetroRules:
    at = ("metro",)
    stations: dict[str, str] = {}
    for raw_code, name in m.get("stations", {}).items():
        keys = (*at, "stations", raw_code)
        code = f.hex(raw_code, 2, keys).hex().upper()
        stations[code] = f.text_value(name, keys)
    fares: dict[tuple[str, str], int] = {}
    for pair, amount in m.get("fares", {}).items():
        keys = (*at, "fares", pair)
        a, _, b = nfkc(str(pair)).upper().partition("-")
        if a not in stations or b not in stations:
            raise f.error(keys, f"fare {pair!r} names a station not in metro.stations")
        fen = f.fen(amount, keys)
        fares[(a, b)] = fen
        fares.setdefault((b, a), fen)
    return MetroRules(
        stations=stations,
        fares=fares,
        entry_debit=f.fen(m.get("entry_debit", 0), (*at, "entry_debit")),
        same_station_fare=f.fen(m.get("same_station_fare", 0), (*at, "same_station_fare")),
        max_trip_minutes=f.count(
            m.get("max_trip_minutes", 240), (*at, "max_trip_minutes"), MAX_MINUTES
        ),
        overtime_penalty=f.fen(m.get("overtime_penalty", 0), (*at, "overtime_penalty")),
        missing_exit_penalty=f.fen(m.get("missing_exit_penalty", 0), (*at, "missing_exit_penalty")),
        no_entry=f.choice(m.get("no_entry", "refuse"), (*at, "no_entry"), ("refuse", "max-fare")),
    )


def _concessions(f: _File, items: list[dict[str, Any]]) -> dict[int, Concession]:
    out = {}
    for index, item in enumerate(items):
        f.after = f.table_line("concessions", index)
        if "card_kind" not in item:
            raise f.error((), "a [[concessions]] entry is missing 'card_kind'")
        kind = f.count(item["card_kind"], ("card_kind",), 0xFF)
        if "percent" not in item:
            raise f.error((), f"concession {kind} is missing 'percent'")
        percent = f.fen(item["percent"], ("percent",))
        if percent > 100:
            raise f.error(("percent",), f"concession {kind}: percent above 100")
        name = f.text_value(item.get("name", f"kind {kind}"), ("name",))
        out[kind] = Concession(kind, name, percent)
    f.after = 1
    return out


def _largest_charge(rules: FareRules) -> int:
    """The most one tap can be charged under these rules (before concessions)."""
    m = rules.metro
    return max(
        rules.bus_flat_fare,
        largest_mode_charge(rules.modes),
        m.entry_debit + m.missing_exit_penalty,
        max(m.max_fare, m.same_station_fare) + m.overtime_penalty,
    )


def parse_rules(
    data: dict[str, Any], *, path: str | Path | None = None, text: str | None = None
) -> FareRules:
    """Fare rules from a parsed fare file; ``path`` and ``text`` let errors name the line."""
    f = _File(data, path, text)
    f.check_keys(data, SCHEMA, ())
    if "operator" not in data:
        raise f.error((), "fare file is missing 'operator'")
    op = data["operator"]
    for key in ("name", "city_code", "acquirer_id"):
        if key not in op:
            raise f.error(("operator",), f"fare file is missing 'operator.{key}'")
    operator = Operator(
        f.text_value(op["name"], ("operator", "name")),
        f.hex(op["city_code"], 2, ("operator", "city_code")),
        f.hex(op["acquirer_id"], 8, ("operator", "acquirer_id")),
        f.hex(op.get("operator_code", "0000"), 2, ("operator", "operator_code")),
    )
    bus = data.get("bus", {})
    transfer = data.get("transfer", {})
    allow_flag = data.get("allow_balance_flag", False)
    if not isinstance(allow_flag, bool):
        raise f.error(("allow_balance_flag",), "allow_balance_flag must be true or false")
    rules = FareRules(
        operator=operator,
        bus_flat_fare=f.fen(bus.get("flat_fare", 0), ("bus", "flat_fare")),
        metro=_metro(f, data.get("metro", {})),
        transfer_window_minutes=f.count(
            transfer.get("window_minutes", 0), ("transfer", "window_minutes"), MAX_MINUTES
        ),
        transfer_discount=f.fen(transfer.get("discount", 0), ("transfer", "discount")),
        concessions=_concessions(f, data.get("concessions", [])),
        double_tap_seconds=f.count(
            data.get("double_tap_seconds", 60), ("double_tap_seconds",), MAX_DOUBLE_TAP_SECONDS
        ),
        concession_source=f.choice(
            data.get("concession_source", "management"),
            ("concession_source",),
            ("management", "holder"),
        ),
        allow_balance_flag=allow_flag,
        modes=parse_modes(f, data),
    )
    if _largest_charge(rules) > MAX_FARE_FEN:
        raise f.error(
            (), f"a fare plus its penalties can pass what a card balance holds ({MAX_FARE_FEN})"
        )
    return rules


def load_rules(path: str | Path = DEMO_FARES) -> FareRules:
    """The fare file at ``path``; FareFileError (``<file>:<line>: <what>``) if unusable."""
    text, data = read_toml(
        path, "fare file", lambda what, line: FareFileError(what, path=path, line=line)
    )
    return parse_rules(data, path=path, text=text)
