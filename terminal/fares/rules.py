"""Fare rules as data: loaded from a TOML fare file, validated once, integer fen throughout."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terminal.apdu.errors import YikatongError

DEMO_FARES = Path(__file__).parent / "data" / "demo.toml"


class FareFileError(YikatongError, ValueError):
    """A fare file that is missing a field, has a bad value, or names unknown stations."""


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

    def concession(self, card_kind: int) -> Concession | None:
        return self.concessions.get(card_kind)


def _fen(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FareFileError(f"{what} must be a non-negative whole number of fen, got {value!r}")
    return value


def _hex(value: Any, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise FareFileError(f"{what} must be {size} bytes of hex, got {value!r}")
    return raw


def parse_rules(data: dict[str, Any]) -> FareRules:
    try:
        op = data["operator"]
        operator = Operator(
            str(op["name"]),
            _hex(op["city_code"], 2, "operator.city_code"),
            _hex(op["acquirer_id"], 8, "operator.acquirer_id"),
            _hex(op.get("operator_code", "0000"), 2, "operator.operator_code"),
        )
        bus = data.get("bus", {})
        metro_d = data.get("metro", {})
        stations = {str(k).upper(): str(v) for k, v in metro_d.get("stations", {}).items()}
        for code in stations:
            _hex(code, 2, f"station code {code}")
        fares: dict[tuple[str, str], int] = {}
        for pair, amount in metro_d.get("fares", {}).items():
            a, _, b = str(pair).upper().partition("-")
            if a not in stations or b not in stations:
                raise FareFileError(f"fare {pair!r} names a station not in metro.stations")
            fen = _fen(amount, f"metro fare {pair}")
            fares[(a, b)] = fen
            fares.setdefault((b, a), fen)
        no_entry = metro_d.get("no_entry", "refuse")
        if no_entry not in ("refuse", "max-fare"):
            raise FareFileError("metro.no_entry must be 'refuse' or 'max-fare'")
        metro = MetroRules(
            stations=stations,
            fares=fares,
            entry_debit=_fen(metro_d.get("entry_debit", 0), "metro.entry_debit"),
            same_station_fare=_fen(metro_d.get("same_station_fare", 0), "metro.same_station_fare"),
            max_trip_minutes=_fen(metro_d.get("max_trip_minutes", 240), "metro.max_trip_minutes"),
            overtime_penalty=_fen(metro_d.get("overtime_penalty", 0), "metro.overtime_penalty"),
            missing_exit_penalty=_fen(
                metro_d.get("missing_exit_penalty", 0), "metro.missing_exit_penalty"
            ),
            no_entry=no_entry,
        )
        transfer = data.get("transfer", {})
        concessions = {}
        for item in data.get("concessions", []):
            kind = int(item["card_kind"])
            percent = _fen(item["percent"], f"concession {kind} percent")
            if percent > 100:
                raise FareFileError(f"concession {kind}: percent above 100")
            concessions[kind] = Concession(kind, str(item.get("name", f"kind {kind}")), percent)
        source = data.get("concession_source", "management")
        if source not in ("management", "holder"):
            raise FareFileError("concession_source must be 'management' (0x17) or 'holder' (0x16)")
        return FareRules(
            operator=operator,
            bus_flat_fare=_fen(bus.get("flat_fare", 0), "bus.flat_fare"),
            metro=metro,
            transfer_window_minutes=_fen(
                transfer.get("window_minutes", 0), "transfer.window_minutes"
            ),
            transfer_discount=_fen(transfer.get("discount", 0), "transfer.discount"),
            concessions=concessions,
            double_tap_seconds=_fen(data.get("double_tap_seconds", 60), "double_tap_seconds"),
            concession_source=source,
        )
    except KeyError as exc:
        raise FareFileError(f"fare file is missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FareFileError):
            raise
        raise FareFileError(f"fare file has a bad value: {exc}") from None


def load_rules(path: str | Path = DEMO_FARES) -> FareRules:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FareFileError(f"{path}: {exc}") from None
    return parse_rules(data)
