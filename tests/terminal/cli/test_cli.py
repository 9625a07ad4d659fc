"""The ykt command line, run as a real subprocess."""

import json
from pathlib import Path

from tests.cli_kit import ykt


def test_help_explains_where_to_start() -> None:
    out = ykt("--help").stdout
    assert "ykt demo" in out and "--trace" in out and "replay" in out


def test_demo_balances_and_verifies_every_tac() -> None:
    r = ykt("demo")
    assert r.returncode == 0
    assert "BALANCED" in r.stdout
    assert "Per-terminal summary" in r.stdout
    summary = next(line for line in r.stdout.splitlines() if "verified by the host" in line)
    done, total = summary.rsplit(" ", 1)[1].split("/")
    assert done == total and int(total) > 10


def test_read_json_of_a_card_file(tmp_path: Path) -> None:
    card = tmp_path / "c.json"
    ykt("sim", "new-card", "--out", str(card), "--number", "7", "--balance", "12.34")
    data = json.loads(ykt("read", "--card", str(card), "--json").stdout)
    assert data["balance_fen"] == 1234
    assert data["card_number"].endswith("7")
    assert data["application"] == "A000000632010105"


def test_trace_then_replay_gives_the_same_read(tmp_path: Path) -> None:
    card, trace = tmp_path / "c.json", tmp_path / "read.trace"
    ykt("sim", "new-card", "--out", str(card), "--balance", "5")
    live = ykt("read", "--card", str(card), "--trace", str(trace), "--json").stdout
    assert trace.read_text().startswith("# ykt read")
    replayed = ykt("read", "--replay", str(trace), "--json").stdout
    assert json.loads(replayed) == json.loads(live)


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.trace"
    empty.write_text("# nothing recorded\n")
    r = ykt("read", "--replay", str(empty), check=False)
    assert r.returncode == 1
    assert "does not support this request" in r.stderr and "Traceback" not in r.stderr
    assert "InsNotSupported" not in r.stderr and "SW " not in r.stderr
    r = ykt("read", "--reader", "nonsense:x", check=False)
    assert r.returncode == 1 and "unknown reader" in r.stderr


def test_validator_prints_a_line_per_tap_and_journals(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    r = ykt("validator", "--journal", str(journal), "--taps", "6", "--cards", "6", "--seed", "3")
    lines = [line for line in r.stdout.splitlines() if line.startswith(("GREEN", "RED"))]
    assert len(lines) == 6 and all("ms" in line for line in lines)
    assert "journal:" in r.stdout
    from terminal.journal import Journal

    charged = sum("bus fare" in x and " paid;" in x for x in lines)
    assert all("SW" not in x and "TSN" not in x for x in lines)
    assert charged >= 1 and Journal(journal).totals()["settled"][0] == charged


def test_validator_metro_entry_with_card_files(tmp_path: Path) -> None:
    card = tmp_path / "c.json"
    ykt("sim", "new-card", "--out", str(card), "--balance", "10")
    r = ykt(
        "validator",
        "--mode",
        "metro-entry",
        "--station",
        "0102",
        "--journal",
        str(tmp_path / "j.db"),
        "--card",
        str(card),
        "--taps",
        "1",
    )
    assert r.stdout.splitlines()[1].startswith("GREEN")
    data = json.loads(card.read_text())
    assert "2701" in data["state"]["capp"]  # the entry record was written and saved
