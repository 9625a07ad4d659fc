"""The terminal configuration file: paths relative to the file, defaults, strict values."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from terminal.roles.loop import TapPlacement
from terminal.runtime.config import load_config
from terminal.text import FileError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dev" / "t.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_are_relative_to_the_file_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[terminal]\nrole = "metro-exit"\nstation = "0102"\nclock = 2026-03-01T08:00:00\n'
        '[journal]\npath = "j.db"\n[sim]\ncards = ["c1.json"]\ntaps = 3\n'
        '[gateway]\nurl = "http://gw"\ntoken_file = "/etc/ykt/t.token"\nbatch_size = 50\n',
    )
    config = load_config(path)
    assert config.role == "metro-exit" and config.is_validator
    assert config.journal == str(path.parent / "j.db")
    assert config.sam_state_path == str(path.parent / "j.psam.json")
    assert config.cards == [str(path.parent / "c1.json")] and config.taps == 3
    assert config.token_file == "/etc/ykt/t.token" and config.batch_size == 50
    assert config.clock == datetime(2026, 3, 1, 8, 0)
    assert config.upload_interval == 30.0 and config.status_port == 0


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("[gateway]\nbatch_size = 0\n", 6, "gateway.batch_size must be a whole number >= 1"),
        ("[gateway]\nupload_interval = -1\n", 6, "must be a number of seconds >= 0"),
        ("[sim]\ncards = [1]\n", 6, "sim.cards must be a list of software card files"),
        ('[sim]\nterminal_id = "31"\n', 6, "sim.terminal_id must be 6 bytes"),
        ("[status]\nport = 70000\n", 6, "status.port must be 0 (off) or a TCP port"),
        ("[readers]\ncard = 5\n", 6, "readers.card must be a string"),
        ("[terminal.extra]\nx = 1\n", 5, "unknown key 'extra' in section [terminal]"),
        ("[ride]\nmeter = -5\n", 6, "ride.meter must be a whole number >= 0"),
        ('[ride]\ndestination = "02"\n', 6, "ride.destination"),
        ("[ride]\nmetre = 5\n", 6, "unknown key 'metre' in section [ride]"),
        ('[desk]\nissuer_id = "0290"\n', 6, "desk.issuer_id must be 8 bytes"),
        ("[desk]\nreplacement_wait_days = -1\n", 6, "must be a whole number >= 0"),
        ("[runtime]\ntap_cpu = -1\n", 6, "runtime.tap_cpu must be a whole number >= 0"),
        ('[runtime]\ntap_priority = "max"\n', 6, "runtime.tap_priority must be 'normal' or"),
        ("[runtime]\ntap_core = 1\n", 6, "unknown key 'tap_core' in section [runtime]"),
    ],
)
def test_bad_values_are_refused_at_their_line(
    tmp_path: Path, body: str, line: int, what: str
) -> None:
    path = write(tmp_path, f'[terminal]\nrole = "bus"\n[journal]\npath = "j.db"\n{body}')
    with pytest.raises(FileError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and what in str(err.value)


def test_a_validator_reads_its_tap_placement_and_other_roles_are_refused_one(
    tmp_path: Path,
) -> None:
    runtime = '[runtime]\ntap_cpu = 1\ntap_priority = "realtime"\n'
    path = write(tmp_path, f'[terminal]\nrole = "bus"\n[journal]\npath = "j.db"\n{runtime}')
    assert load_config(path).tap == TapPlacement(cpu=1, priority="realtime")
    plain = write(tmp_path, '[terminal]\nrole = "bus"\n[journal]\npath = "j.db"\n')
    assert load_config(plain).tap == TapPlacement(cpu=None, priority="normal")
    kiosk = write(tmp_path, f'[terminal]\nrole = "kiosk"\n[journal]\npath = "j.db"\n{runtime}')
    with pytest.raises(FileError, match=r"\[runtime\] is for validators .*not a kiosk"):
        load_config(kiosk)


ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.toml")))
def test_every_example_is_a_valid_configuration(example: Path) -> None:
    config = load_config(example)
    assert config.role in example.read_text(encoding="utf-8")


def test_kiosk_limits_are_read_and_checked(tmp_path: Path) -> None:
    body = '[terminal]\nrole = "kiosk"\n[journal]\npath = "j.db"\n[kiosk]\n'
    config = load_config(write(tmp_path, body + "max_top_up_fen = 5000\npickup = true\n"))
    assert (config.min_top_up, config.max_top_up, config.pickup) == (100, 5000, True)
    with pytest.raises(FileError) as err:
        load_config(write(tmp_path, body + "min_top_up_fen = 900\nmax_top_up_fen = 800\n"))
    assert "min_top_up_fen <= max_top_up_fen" in str(err.value)


def test_a_taxi_ride_is_configured_in_its_own_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[terminal]\nrole = "taxi"\n[journal]\npath = "j.db"\n'
        '[ride]\nmeter = 2350\ndriver = "D0042"\nvehicle = "HU-A1234"\n',
    )
    config = load_config(path)
    assert (config.role, config.meter, config.driver, config.vehicle) == (
        "taxi",
        2_350,
        "D0042",
        "HU-A1234",
    )
    assert config.is_validator


def test_a_desk_names_its_registry_and_makes_cards_next_to_its_file(tmp_path: Path) -> None:
    head = '[terminal]\nrole = "desk"\n[journal]\npath = "j.db"\n'
    path = write(tmp_path, head + '[desk]\nissuer_id = "01001000FFFFFFFF"\n')
    with pytest.raises(FileError) as err:
        load_config(path)
    assert "a desk needs [desk] registry" in str(err.value)
    path = write(tmp_path, head + '[desk]\nregistry = "cards.db"\nkeys = "/etc/ykt/k.json"\n')
    config = load_config(path)
    assert config.registry == str(path.parent / "cards.db")
    assert config.desk_cards == str(path.parent / "cards")
    assert (config.keys, config.issuer_id) == ("/etc/ykt/k.json", "02902900FFFFFFFF")


def test_a_till_and_a_library_name_their_rules(tmp_path: Path) -> None:
    head = '[terminal]\nrole = "{}"\n[journal]\npath = "j.db"\n'
    for role, what in (("till", "the canteen rules file"), ("library", "the loan limits file")):
        with pytest.raises(FileError) as err:
            load_config(write(tmp_path, head.format(role)))
        assert f"a {role} needs [{role}] rules ({what}" in str(err.value)
    till = load_config(write(tmp_path, head.format("till") + '[till]\nrules = "meals.toml"\n'))
    base = tmp_path / "dev"
    assert (till.till_rules, till.sales_path) == (
        str(base / "meals.toml"),
        str(base / "j.sales.db"),
    )
    with pytest.raises(FileError) as err:
        load_config(write(tmp_path, head.format("till") + '[till]\nrules = "m"\nmenu = "x"\n'))
    assert "menu" in str(err.value)
    with pytest.raises(FileError) as err:  # ykt issue's desk without a PSAM is not a file's
        load_config(write(tmp_path, head.format("bus") + '[readers]\nsam = "none"\n'))
    assert "readers.sam = 'none' is only for ykt issue's desk" in str(err.value)
