"""Fares of the taxi, public bike, coach and parking modes: their fare-file sections, checked
strictly like the rest of the fare file, and the pure fee rules (integer fen throughout).

* taxi: the meter's amount, refused above ``max_fare`` (a mistyped or broken meter);
* bike: a deposit checked (the balance must hold it) or held (charged at rent and credited
  against the return fee), then a fee by rental time from a step table, capped;
* coach: a ticket at boarding, priced by an origin/destination table;
* parking: free minutes, then a fee per started hour (one entry per hour, the last repeats),
  each 24 hours of a stay capped at the daily cap.

Each mode keeps its state in one 0x1A variable-length record (``record``, 27xx): which
record a scheme uses is operator-defined (reference §5.6 [?]), so it is configurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from terminal.text import nfkc
from terminal.tomlfile import ANY_KEYS

MINUTES_PER_DAY = 24 * 60
MAX_STAY_DAYS = 366  # a parking stay longer than this is refused (a card with a wild date)

# industry codes of the 0x1E process record (reference §5.5), the default 0x1A record numbers
INDUSTRY_TAXI = 0x04
INDUSTRY_BIKE = 0x06
INDUSTRY_PARKING = 0x07
INDUSTRY_COACH = 0x08

DEPOSIT_CHECK = "check"
DEPOSIT_HOLD = "hold"
NO_ENTRY_REFUSE = "refuse"
NO_ENTRY_DAILY_CAP = "daily-cap"

MODE_SCHEMA: dict[str, Any] = {
    "taxi": {"max_fare": None, "record": None},
    "bike": {
        "deposit": None,
        "deposit_mode": None,
        "max_fee": None,
        "extra_minutes": None,
        "extra_fee": None,
        "record": None,
        "fees": [{"up_to_minutes": None, "fee": None}],
    },
    "coach": {"record": None, "stations": ANY_KEYS, "fares": ANY_KEYS},
    "parking": {
        "free_minutes": None,
        "hour_fees": None,
        "daily_cap": None,
        "no_entry": None,
        "record": None,
    },
}


def _minutes(start: datetime, end: datetime) -> int:
    """Whole minutes from ``start`` to ``end``, a started minute counting as one."""
    seconds = int((end - start).total_seconds())
    return max(0, -(-seconds // 60))


@dataclass(frozen=True)
class TaxiRules:
    max_fare: int
    record: int = INDUSTRY_TAXI


@dataclass(frozen=True)
class FeeStep:
    """A rental of at most ``up_to_minutes`` costs ``fee``."""

    up_to_minutes: int
    fee: int


@dataclass(frozen=True)
class BikeRules:
    deposit: int
    deposit_mode: str  # DEPOSIT_CHECK or DEPOSIT_HOLD
    fees: tuple[FeeStep, ...]
    extra_minutes: int  # past the last step: every started ``extra_minutes`` ...
    extra_fee: int  # ... costs ``extra_fee`` more
    max_fee: int  # the most one rental costs; also what a return with no rent found costs
    record: int = INDUSTRY_BIKE

    @property
    def held(self) -> int:
        """What the rent itself charges."""
        return self.deposit if self.deposit_mode == DEPOSIT_HOLD else 0

    def fee(self, rented: datetime, returned: datetime) -> int:
        minutes = _minutes(rented, returned)
        for step in self.fees:
            if minutes <= step.up_to_minutes:
                return min(step.fee, self.max_fee)
        last = self.fees[-1] if self.fees else FeeStep(0, 0)
        over = minutes - last.up_to_minutes
        extra = -(-over // self.extra_minutes) * self.extra_fee if self.extra_minutes else 0
        return min(last.fee + extra, self.max_fee)


@dataclass(frozen=True)
class CoachRules:
    stations: dict[str, str]  # 4-hex-digit code -> name
    fares: dict[tuple[str, str], int]
    record: int = INDUSTRY_COACH

    def fare(self, origin: str, destination: str) -> int | None:
        return self.fares.get((origin, destination))


@dataclass(frozen=True)
class ParkingRules:
    free_minutes: int
    hour_fees: tuple[int, ...]  # fee of the 1st, 2nd, ... started hour; the last repeats
    daily_cap: int  # the most each 24 hours of a stay costs
    no_entry: str = NO_ENTRY_REFUSE  # exit with no entry found: refuse, or one daily cap
    record: int = INDUSTRY_PARKING

    def fee(self, entered: datetime, left: datetime) -> int:
        minutes = _minutes(entered, left)
        if minutes <= self.free_minutes:
            return 0
        days, rest = divmod(minutes, MINUTES_PER_DAY)
        fee = days * self.daily_cap
        if rest:
            hours = -(-rest // 60)
            steps = self.hour_fees or (0,)
            part = sum(steps[min(i, len(steps) - 1)] for i in range(hours))
            fee += min(part, self.daily_cap)
        return fee


@dataclass(frozen=True)
class ModeRules:
    taxi: TaxiRules | None = None
    bike: BikeRules | None = None
    coach: CoachRules | None = None
    parking: ParkingRules | None = None


def _record(f: Any, section: dict[str, Any], name: str, default: int) -> int:
    """``record = "27xx"``: the 0x1A record this mode writes (xx 01..12, the card's 18)."""
    keys = (name, "record")
    if "record" not in section:
        return default
    raw = f.hex(section["record"], 2, keys)
    if raw[0] != 0x27 or not 0x01 <= raw[1] <= 0x12:
        raise f.error(keys, f"{name}.record must be 2701..2712, got {section['record']!r}")
    return raw[1]


def _taxi(f: Any, t: dict[str, Any]) -> TaxiRules:
    if "max_fare" not in t:
        raise f.error(("taxi",), "[taxi] is missing 'max_fare' (the largest meter amount)")
    return TaxiRules(f.fen(t["max_fare"], ("taxi", "max_fare")), _record(f, t, "taxi", 0x04))


def _bike(f: Any, b: dict[str, Any]) -> BikeRules:
    at = ("bike",)
    for key in ("deposit", "max_fee"):
        if key not in b:
            raise f.error(at, f"[bike] is missing {key!r}")
    steps: list[FeeStep] = []
    for index, item in enumerate(b.get("fees", [])):
        f.after = f.table_line("fees", index)
        for key in ("up_to_minutes", "fee"):
            if key not in item:
                raise f.error((), f"a [[bike.fees]] entry is missing {key!r}")
        step = FeeStep(
            f.count(item["up_to_minutes"], ("up_to_minutes",), MINUTES_PER_DAY * MAX_STAY_DAYS),
            f.fen(item["fee"], ("fee",)),
        )
        if steps and (step.up_to_minutes <= steps[-1].up_to_minutes or step.fee < steps[-1].fee):
            raise f.error(
                ("up_to_minutes",),
                "[[bike.fees]] must be in increasing up_to_minutes with fees that never fall",
            )
        steps.append(step)
    f.after = 1
    return BikeRules(
        deposit=f.fen(b["deposit"], (*at, "deposit")),
        deposit_mode=f.choice(
            b.get("deposit_mode", DEPOSIT_CHECK),
            (*at, "deposit_mode"),
            (DEPOSIT_CHECK, DEPOSIT_HOLD),
        ),
        fees=tuple(steps),
        extra_minutes=f.count(b.get("extra_minutes", 60), (*at, "extra_minutes"), MINUTES_PER_DAY),
        extra_fee=f.fen(b.get("extra_fee", 0), (*at, "extra_fee")),
        max_fee=f.fen(b["max_fee"], (*at, "max_fee")),
        record=_record(f, b, "bike", INDUSTRY_BIKE),
    )


def _coach(f: Any, c: dict[str, Any]) -> CoachRules:
    at = ("coach",)
    stations: dict[str, str] = {}
    for raw_code, name in c.get("stations", {}).items():
        keys = (*at, "stations", raw_code)
        stations[f.hex(raw_code, 2, keys).hex().upper()] = f.text_value(name, keys)
    fares: dict[tuple[str, str], int] = {}
    for pair, amount in c.get("fares", {}).items():
        keys = (*at, "fares", pair)
        a, _, b = nfkc(str(pair)).upper().partition("-")
        if a not in stations or b not in stations or a == b:
            raise f.error(keys, f"fare {pair!r} must name two different coach.stations")
        fen = f.fen(amount, keys)
        fares[(a, b)] = fen
        fares.setdefault((b, a), fen)
    return CoachRules(stations, fares, _record(f, c, "coach", INDUSTRY_COACH))


def _parking(f: Any, p: dict[str, Any]) -> ParkingRules:
    at = ("parking",)
    for key in ("hour_fees", "daily_cap"):
        if key not in p:
            raise f.error(at, f"[parking] is missing {key!r}")
    hour_fees = p["hour_fees"]
    if not isinstance(hour_fees, list) or not hour_fees:
        raise f.error((*at, "hour_fees"), "parking.hour_fees must be a list of fen, one per hour")
    return ParkingRules(
        free_minutes=f.count(p.get("free_minutes", 0), (*at, "free_minutes"), MINUTES_PER_DAY),
        hour_fees=tuple(f.fen(v, (*at, "hour_fees")) for v in hour_fees),
        daily_cap=f.fen(p["daily_cap"], (*at, "daily_cap")),
        no_entry=f.choice(
            p.get("no_entry", NO_ENTRY_REFUSE),
            (*at, "no_entry"),
            (NO_ENTRY_REFUSE, NO_ENTRY_DAILY_CAP),
        ),
        record=_record(f, p, "parking", INDUSTRY_PARKING),
    )


def parse_modes(f: Any, data: dict[str, Any]) -> ModeRules:
    """The mode sections present in a fare file whose keys were already checked."""
    return ModeRules(
        taxi=_taxi(f, data["taxi"]) if "taxi" in data else None,
        bike=_bike(f, data["bike"]) if "bike" in data else None,
        coach=_coach(f, data["coach"]) if "coach" in data else None,
        parking=_parking(f, data["parking"]) if "parking" in data else None,
    )


def largest_mode_charge(modes: ModeRules) -> int:
    """The most one tap of these modes can be charged (a parking stay aside: its days add)."""
    return max(
        modes.taxi.max_fare if modes.taxi else 0,
        max(modes.bike.max_fee, modes.bike.deposit) if modes.bike else 0,
        max(modes.coach.fares.values(), default=0) if modes.coach else 0,
        modes.parking.daily_cap if modes.parking else 0,
    )
