"""The taxi, bike, coach and parking sections of a fare file: checked at their line, and
the fee rules they hold."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from terminal.fares import FareFileError, load_rules
from terminal.fares.rules import DEMO_FARES

T0 = datetime(2026, 3, 1, 8)


def with_section(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fares.toml"
    base = DEMO_FARES.read_text(encoding="utf-8").split("# -- taxis")[0]
    path.write_text(base + text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("section", "needle", "what"),
    [
        (
            "[taxi]\nmax_fare = 100\nmax_fair = 5\n",
            "max_fair",
            "unknown key 'max_fair' in section [taxi]",
        ),
        ("[taxi]\nmax_fare = -1\n", "max_fare", "taxi.max_fare must be a non-negative"),
        (
            '[bike]\ndeposit = 1\nmax_fee = 1\ndeposit_mode = "keep"\n',
            "deposit_mode",
            "bike.deposit_mode must be 'check' or 'hold'",
        ),
        (
            "[bike]\ndeposit = 1\nmax_fee = 1\n[[bike.fees]]\nup_to_minutes = 60\ncost = 5\n",
            "cost",
            "unknown key 'cost'",
        ),
        (
            "[bike]\ndeposit = 1\nmax_fee = 1\n[[bike.fees]]\nup_to_minutes = 60\nfee = 5\n"
            "[[bike.fees]]\nup_to_minutes = 30\nfee = 9\n",
            "up_to_minutes = 30",
            "increasing up_to_minutes",
        ),
        (
            '[coach.fares]\n"0201-0202" = 100\n',
            "0201-0202",
            "must name two different coach.stations",
        ),
        (
            "[parking]\nhour_fees = []\ndaily_cap = 1\n",
            "hour_fees",
            "parking.hour_fees must be a list",
        ),
        (
            "[parking]\nhour_fees = [1]\ndaily_cap = 1\nfree_minute = 3\n",
            "free_minute",
            "unknown key 'free_minute' in section [parking]",
        ),
        (
            '[parking]\nhour_fees = [1]\ndaily_cap = 1\nrecord = "2799"\n',
            "record",
            "parking.record must be 2701..2712",
        ),
    ],
)
def test_bad_mode_sections_are_refused_at_their_line(
    tmp_path: Path, section: str, needle: str, what: str
) -> None:
    path = with_section(tmp_path, section)
    with pytest.raises(FareFileError) as err:
        load_rules(path)
    assert str(err.value).startswith(f"{path}:{line_of(path, needle)}: "), str(err.value)
    assert what in str(err.value)


def test_parking_tariff_free_minutes_hour_steps_daily_cap_and_days() -> None:
    p = load_rules().modes.parking
    assert p is not None
    stays = [
        timedelta(minutes=15),
        timedelta(minutes=16),
        timedelta(hours=2),
        timedelta(hours=2, seconds=1),
        timedelta(hours=23),
        timedelta(days=1),
        timedelta(days=3, hours=1),
    ]
    assert [p.fee(T0, T0 + s) for s in stays] == [0, 600, 1_000, 1_300, 4_000, 4_000, 12_600]


def test_a_fare_file_without_mode_sections_has_none() -> None:
    path = DEMO_FARES
    rules = load_rules(path)
    assert rules.modes.taxi is not None and rules.modes.taxi.max_fare == 50_000
    assert rules.modes.coach is not None and rules.modes.coach.fare("0202", "0201") == 2_500
