"""``ykt validator --mode`` for the taxi, bike, coach and parking modes, end to end."""

from __future__ import annotations

from pathlib import Path

from simulators.profiles import demo_card
from terminal.journal import Journal
from tests.cli_kit import ykt


def card_file(tmp_path: Path, balance: int = 50_000) -> Path:
    path = tmp_path / "card.json"
    demo_card(1, balance=balance).save(path)
    return path


def test_taxi_pays_the_meter_with_driver_and_vehicle_in_the_journal(tmp_path: Path) -> None:
    card = card_file(tmp_path)
    journal = tmp_path / "taxi.db"
    args = ["--meter", "2350", "--driver", "D0042", "--vehicle", "HU-A1234"]
    out = ykt(
        "validator",
        "--mode",
        "taxi",
        *args,
        "--card",
        str(card),
        "--taps",
        "1",
        "--journal",
        str(journal),
    ).stdout
    assert "mode taxi" in out and "GREEN" in out and "¥23.50" in out
    with Journal(journal) as j:
        (row,) = j.rows()
    assert (row.amount, row.context["driver"], row.context["vehicle"]) == (
        2_350,
        "D0042",
        "HU-A1234",
    )


def test_a_mode_whose_fare_file_section_is_missing_is_refused_at_start(tmp_path: Path) -> None:
    fares = tmp_path / "bus-only.toml"
    fares.write_text(
        '[operator]\nname = "Bus"\ncity_code = "2900"\nacquirer_id = "02902900FFFFFFFF"\n'
        "[bus]\nflat_fare = 200\n"
    )
    r = ykt(
        "validator",
        "--mode",
        "parking-exit",
        "--fares",
        str(fares),
        "--journal",
        str(tmp_path / "p.db"),
        check=False,
    )
    assert r.returncode == 1 and "the fare file has no [parking] section" in r.stderr
    assert "Traceback" not in r.stderr


def test_coach_bike_and_parking_run_from_the_command_line(tmp_path: Path) -> None:
    card = card_file(tmp_path)
    runs = [
        (["--mode", "coach", "--station", "0201", "--to", "0202"], "¥25.00"),
        (["--mode", "bike-rent", "--station", "0301", "--vehicle", "B7"], "GREEN"),
        (["--mode", "bike-rent", "--station", "0302"], "already renting B7"),
        (["--mode", "parking-entry", "--station", "0401"], "GREEN"),
    ]
    for i, (args, want) in enumerate(runs):
        out = ykt(
            "validator",
            *args,
            "--card",
            str(card),
            "--taps",
            "1",
            "--journal",
            str(tmp_path / f"{i}.db"),
        ).stdout
        assert want in out, out
