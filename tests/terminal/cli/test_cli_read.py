"""``ykt read``: the legacy T-Union view stays, every application is shown on multi-app
cards, and a recorded exchange replays byte for byte with the pinned terminal data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal.cli.main import main
from tests.terminal.emv.traces import DATA, TERMINAL_FILE


def run_cli(capsys, *argv: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    code = main(["read", *argv])
    return code, capsys.readouterr().out


def test_plain_tunion_card_prints_the_legacy_view(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(capsys)
    assert code == 0
    assert out.splitlines()[0] == "Application   T-Union EP (A000000632010105)"
    assert "Balance       ¥50.00" in out


def test_plain_tunion_card_json_keeps_its_shape(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(capsys, "--json")
    data = json.loads(out)
    assert code == 0 and data["application"] == "A000000632010105" and data["balance_fen"] == 5000


def test_resident_card_shows_every_application(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(capsys, "--sim-card", "resident")
    assert code == 0
    assert "found by PPSE" in out
    assert "[PBOC DEBIT]  A000000333010101  (emv)" in out
    assert "ODA           fDDA passed (CA A000000333/E0)" in out
    assert "EC balance    ¥100.00" in out
    assert "A000000632010105  (epurse)" in out and "Balance       ¥50.00" in out


def test_social_security_card_over_contact_json(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(capsys, "--sim-card", "ssse", "--interface", "contact", "--json")
    data = json.loads(out)
    assert code == 0 and data["directory"] == "PSE"
    kinds = {a["kind"]: a for a in data["applications"]}
    assert kinds["ssse"]["ssse"]["holder"]["name"] == "张三"
    assert kinds["emv"]["emv"]["data"]["5A"] == {
        "name": "Application PAN",
        "value": "6299990000002013",
    }
    assert kinds["emv"]["emv"]["oda"] == {
        "method": "DDA",
        "passed": True,
        "failure": None,
        "detail": "",
        "ca_key": "A000000333/E0",
    }


def test_recorded_resident_trace_replays(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(
        capsys,
        "--replay",
        str(DATA / "resident-contactless-read.trace"),
        "--terminal-data",
        str(TERMINAL_FILE),
        "--json",
    )
    data = json.loads(out)
    assert code == 0
    emv, ep = data["applications"]
    assert emv["emv"]["ec"]["balance_fen"] == 7700 and emv["emv"]["oda"]["passed"]
    assert ep["epurse"]["balance_fen"] == 3300


def test_real_unionpay_card_trace_with_its_unpredictable_number(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    terminal = tmp_path / "terminal.json"
    terminal.write_text('{"date": "2015-03-16"}')
    code, out = run_cli(
        capsys,
        "--replay",
        str(DATA / "uics-contact-upi.trace"),
        "--interface",
        "contact",
        "--terminal-data",
        str(terminal),
        "--unpredictable-number",
        "7863AFC6",
    )
    assert code == 0
    assert "ODA           DDA passed (CA A000000333/09)" in out
    assert "PAN           6210948000000011" in out


def test_trace_then_replay_gives_the_same_report(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    card_file = tmp_path / "resident.json"
    from simulators.emv_profiles import resident_card

    resident_card(1, ec_balance=4_200, path=str(card_file))
    trace = tmp_path / "read.trace"
    args = ["--terminal-data", str(TERMINAL_FILE), "--json"]
    code, live = run_cli(capsys, "--card", str(card_file), "--trace", str(trace), *args)
    assert code == 0 and trace.exists()
    code, again = run_cli(capsys, "--replay", str(trace), *args)
    assert code == 0
    assert json.loads(again) == json.loads(live)


def test_bad_unpredictable_number_is_a_usage_error(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["read", "--unpredictable-number", "1234"])
    assert exc.value.code == 2


def test_bad_terminal_data_file_is_reported(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "t.json"
    bad.write_text('{"ttq": "12"}')
    assert main(["read", "--terminal-data", str(bad)]) == 1
    assert "TerminalConfigError" in capsys.readouterr().err


def test_a_trace_recorded_by_the_old_ep_only_read_still_replays(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Traces made before multi-application reading hold only e-purse commands; the new
    read's directory and AID-list probes get 6D00 from the replay and are skipped."""
    import io

    from simulators.profiles import demo_card
    from terminal.apdu.channel import Channel
    from terminal.apdu.flow import run
    from terminal.epurse import flows
    from terminal.readers.sim import SimReader
    from terminal.readers.trace import TraceWriter
    from terminal.readers.tracing import TracingReader

    out = io.StringIO()
    reader = TracingReader(SimReader(demo_card(3, balance=2_468)), TraceWriter(out))
    reader.connect()
    run(flows.read_card(), {"card": Channel(reader)})
    trace = tmp_path / "old.trace"
    trace.write_text(out.getvalue())
    assert "325041592E" not in out.getvalue()  # no PPSE in the old trace
    code, text = run_cli(capsys, "--replay", str(trace))
    assert code == 0
    assert text.splitlines()[0] == "Application   T-Union EP (A000000632010105)"
    assert "Balance       ¥24.68" in text


def test_a_card_with_nothing_known_fails_with_the_typed_error(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.trace"
    empty.write_text("# nothing recorded\n")
    assert main(["read", "--replay", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "InsNotSupported" in err and "Traceback" not in err
