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
        "verifiable": True,
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
    assert "TTQ (9F66) must be 4 bytes" in capsys.readouterr().err


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
    assert "does not support this request" in err and "Traceback" not in err


# -- issue 12: cards as they are in the field ------------------------------------------------

EPURSE_DATA = DATA.parent / "epurse"


def read_json(capsys, trace: Path, *argv: str) -> dict:  # type: ignore[no-untyped-def]
    code, out = run_cli(
        capsys, "--replay", str(trace), "--terminal-data", str(TERMINAL_FILE), "--json", *argv
    )
    assert code == 0
    return json.loads(out)


def test_partial_read_keeps_what_was_read_and_says_what_was_not(capsys) -> None:  # type: ignore[no-untyped-def]
    """0x17 of 11 bytes, no 0x16, log record 2 failing, one trip record, no 0x1A."""
    data = read_json(capsys, EPURSE_DATA / "field-partial-read.trace")
    assert data["balance_fen"] == 8400 and data["balance_flag"] is False
    assert data["holder"] is None and "holder" not in data["errors"]  # 6A82: absent, no error
    assert data["management"] == {
        "country_code": "00000156",
        "province_code": "3100",
        "city_code": "2900",
        "interop_type": "0001",
        "card_kind": 1,
    }
    assert [e["atc"] for e in data["log"]] == [2]
    assert data["log_end"].startswith("record 2: UnknownStatus: SW 6581")
    (trip,) = data["trips"]
    assert (trip["amount_fen"], trip["balance_fen"], trip["line"]) == (200, 8000, "0012")
    assert data["capp_records"] is None and data["errors"] == {}


def _edited(tmp_path: Path, replace: dict[str, str]) -> Path:
    text = (EPURSE_DATA / "field-partial-read.trace").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "edited.trace"
    path.write_text(text)
    return path


def test_a_failing_balance_keeps_the_log_and_prints_no_number(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace = _edited(tmp_path, {"805C000204 : 000020D09000": "805C000204 : 6581"})
    data = read_json(capsys, trace)
    assert data["balance_fen"] is None and data["balance_flag"] is None
    assert data["errors"]["balance"].startswith("UnknownStatus: SW 6581")
    assert [e["atc"] for e in data["log"]] == [2]
    code, out = run_cli(capsys, "--replay", str(trace), "--terminal-data", str(TERMINAL_FILE))
    assert code == 0
    assert "Balance       (not read: UnknownStatus: SW 6581" in out and "¥84.00" not in out


def test_a_failing_first_log_record_is_reported_on_the_log(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace = _edited(
        tmp_path,
        {"00B201C400 : 0002000000000000C809310000000007202611280830159000": "00B201C400 : 6F00"},
    )
    data = read_json(capsys, trace)
    assert data["log"] == [] and data["balance_fen"] == 8400
    assert data["errors"]["log"].startswith("record 1: ") and "6F00" in data["errors"]["log"]


def test_a_short_management_file_marks_the_missing_fields_absent(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace = _edited(
        tmp_path, {"00B0970000 : 00000156310029000001019000": "00B0970000 : 0000015631009000"}
    )
    data = read_json(capsys, trace)
    m = data["management"]
    assert (m["country_code"], m["province_code"]) == ("00000156", "3100")
    assert m["city_code"] is None and m["card_kind"] is None and data["interoperable"] is None


def test_older_pboc_city_card_is_found_by_the_pboc_directory(capsys) -> None:  # type: ignore[no-untyped-def]
    """No PPSE, no T-Union AID (6D00 to both): 1PUB.SYS.DDF01 lists the purse."""
    data = read_json(capsys, EPURSE_DATA / "pboc-city-directory.trace")
    assert data["application"] == "A00000000386980701"
    assert data["application_label"] == "CITY EP"
    assert data["found_by"] == "PBOC directory 1PUB.SYS.DDF01"
    assert data["balance_fen"] == 3000 and [e["amount_fen"] for e in data["log"]] == [100]
    code, out = run_cli(
        capsys,
        "--replay",
        str(EPURSE_DATA / "pboc-city-directory.trace"),
        "--terminal-data",
        str(TERMINAL_FILE),
    )
    assert code == 0 and out.splitlines()[0] == "Application   CITY EP (A00000000386980701)"
    assert "T-Union" not in out


def test_older_pboc_city_card_without_directory_is_found_by_its_known_aid(
    capsys, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text = (EPURSE_DATA / "pboc-city-directory.trace").read_text()
    kept = [line for line in text.splitlines() if "315055422E" not in line and "0C00 :" not in line]
    trace = tmp_path / "no-directory.trace"
    trace.write_text("\n".join(kept) + "\n")
    data = read_json(capsys, trace)
    assert data["application"] == "A00000000386980701"
    assert data["application_label"] == "City Union EP"
    assert data["found_by"] == "known city AID list" and data["balance_fen"] == 3000


def test_older_pboc_card_with_only_mf_and_df_1001(capsys) -> None:  # type: ignore[no-untyped-def]
    data = read_json(capsys, EPURSE_DATA / "pboc-mf-df1001.trace")
    assert data["application"] == "3F001001" and data["found_by"] == "MF 3F00 / DF 1001"
    assert data["balance_fen"] == 1234 and data["log"] == []


def test_second_purse_is_read_and_both_are_reported(capsys) -> None:  # type: ignore[no-untyped-def]
    trace = EPURSE_DATA / "second-purse.trace"
    data = read_json(capsys, trace)
    assert data["balance_fen"] == 8400
    assert data["second_purse"] == {"balance_fen": 500, "balance_flag": False}
    assert data["balance_rule"] == "main" and data["displayed_balance_fen"] == 8400
    data = read_json(capsys, trace, "--balance-rule", "main-minus-second")
    assert data["balance_rule"] == "main-minus-second" and data["displayed_balance_fen"] == 7900


def test_a_card_refusing_the_second_purse_reports_none(capsys) -> None:  # type: ignore[no-untyped-def]
    data = read_json(capsys, EPURSE_DATA / "tunion-read-with-log.trace")
    assert data["second_purse"] is None and data["displayed_balance_fen"] == data["balance_fen"]
    assert "second_purse" not in data["errors"]


def test_contact_atr_reads_the_contact_way_without_being_told(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    terminal = tmp_path / "terminal.json"
    terminal.write_text('{"date": "2015-03-16"}')
    argv = ["--replay", str(DATA / "contact-atr-auto.trace"), "--terminal-data", str(terminal)]
    code, out = run_cli(capsys, *argv, "--unpredictable-number", "7863AFC6")
    assert code == 0
    assert "contact, found by PSE" in out
    assert "ODA           DDA passed (CA A000000333/09)" in out


def test_auto_falls_back_to_the_other_directory(capsys) -> None:  # type: ignore[no-untyped-def]
    """A contactless pseudo-ATR but no PPSE: the PSE answers, and the card is read the
    contact way (the social security card trace was recorded over contact)."""
    data = read_json(capsys, DATA / "ssse-contact-read.trace")
    assert data["interface"] == "contact" and data["directory"] == "PSE"
    kinds = {a["kind"]: a for a in data["applications"]}
    assert kinds["ssse"]["ssse"]["holder"]["name"] == "张三"


def test_interface_from_the_atr() -> None:
    from terminal.emv.selection import interface_from_atr

    assert interface_from_atr(bytes.fromhex("3B8F8001804F0CA0000003060300030000000068")) == (
        "contactless"
    )
    assert interface_from_atr(bytes.fromhex("3B6800000073C84013009000")) == "contact"
    assert interface_from_atr(bytes.fromhex("3B6800000073C84013009000"), "nfc:usb") == (
        "contactless"
    )
    assert interface_from_atr(b"") == "contactless"


def test_foreign_trace_gpo_matches_loosely_and_fdda_is_not_judged(capsys) -> None:  # type: ignore[no-untyped-def]
    """The trace's GPO carries its recorder's amount (12.34); ykt read sends its own. The
    GPO is matched by header and position and said so; fDDA, signed over the recorder's
    data, is neither passed nor failed. 9F27 is absent: the type comes from the CVR."""
    data = read_json(capsys, DATA / "qpboc-no-cid.trace")
    (loose,) = data["loosely_matched"]
    assert loose["command"] == "GET PROCESSING OPTIONS" and loose["recorded"].startswith("80A8")
    assert loose["sent"] != loose["recorded"]
    (app,) = data["applications"]
    oda = app["emv"]["oda"]
    assert oda["verifiable"] is False and oda["passed"] is None and oda["failure"] is None
    assert oda["detail"].startswith("fDDA not verifiable from this trace")
    assert app["emv"]["outcome"].startswith("not decided")
    assert app["emv"]["cryptogram"]["type"] == "TC"
    assert app["emv"]["cryptogram"]["type_from"] == "CVR in 9F10"


def test_exact_replays_report_no_loose_match(capsys) -> None:  # type: ignore[no-untyped-def]
    data = read_json(capsys, DATA / "resident-contactless-read.trace")
    assert "loosely_matched" not in data
    assert data["applications"][0]["emv"]["oda"]["passed"] is True


def test_replay_never_matches_a_select_loosely() -> None:
    from terminal.readers.replay import ReplayReader
    from terminal.readers.trace import parse_trace

    reader = ReplayReader(
        parse_trace("00A4040008A00000033301010100 : 9000\n80A8000004830211220000 : 77009000\n")
    )
    assert reader.transmit(bytes.fromhex("00A4040008A00000033301010200")) == b"\x6d\x00"
    assert reader.transmit(bytes.fromhex("80A8000004830233440000")) == bytes.fromhex("77009000")
    (m,) = reader.loose
    assert m.name == "GET PROCESSING OPTIONS" and m.line == 1
    assert reader.transmit(bytes.fromhex("80AE8000020000")) == b"\x6d\x00"  # no such header


def test_dda_over_another_unpredictable_number_is_not_verifiable(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The recorded INTERNAL AUTHENTICATE was for UN 7863AFC6; this read sends its own."""
    terminal = tmp_path / "terminal.json"
    terminal.write_text('{"date": "2015-03-16", "unpredictable_number": "11111111"}')
    argv = ["--replay", str(DATA / "uics-contact-upi.trace"), "--interface", "contact"]
    code, out = run_cli(capsys, *argv, "--terminal-data", str(terminal), "--json")
    data = json.loads(out)
    assert code == 0
    assert [m["command"] for m in data["loosely_matched"]] == ["INTERNAL AUTHENTICATE"]
    oda = data["applications"][0]["emv"]["oda"]
    assert oda["method"] == "DDA" and oda["verifiable"] is False and oda["passed"] is None
    assert "FAILED" not in out and "passed" not in oda["detail"]


def test_balance_word_top_bit_is_a_flag_not_money(capsys) -> None:  # type: ignore[no-untyped-def]
    trace = EPURSE_DATA / "balance-top-bit.trace"
    data = read_json(capsys, trace)
    assert data["balance_fen"] == 5710 and data["balance_flag"] is True
    code, out = run_cli(capsys, "--replay", str(trace), "--terminal-data", str(TERMINAL_FILE))
    assert code == 0 and "Balance       ¥57.10 (flag set)" in out
    assert "21,474,893.58" not in out


def test_a_card_refusing_le_00_is_asked_for_the_specified_length(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace = _edited(
        tmp_path,
        {
            "00B0970000 : 00000156310029000001019000": (
                "00B0970000 : 6700\n00B097003C : 00000156310029000001019000"
            )
        },
    )
    data = read_json(capsys, trace)
    assert data["management"]["card_kind"] == 1 and "management" not in data["errors"]
