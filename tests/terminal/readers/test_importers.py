"""``ykt read --replay`` reads the dumps other tools make (issue 12): each example in
tests/data/imports is in one tool's own format, written for these tests from the bytes of
the project's software cards, and must read to the same card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal.cli.main import main
from terminal.readers.importers import (
    FORMAT_BLOG,
    FORMAT_CARDPEEK,
    FORMAT_METRODROID,
    FORMAT_PCSCD,
    FORMAT_PM3_CONSOLE,
    FORMAT_PM3_EMV_JSON,
    FORMAT_SCRIPTOR,
    FORMAT_TRACE,
    SUPPORTED,
    UnknownTraceFormat,
    import_file,
    import_text,
)

DATA = Path(__file__).resolve().parents[2] / "data"
IMPORTS = DATA / "imports"
TERMINAL_FILE = DATA / "emv" / "terminal.json"

TUNION_DUMPS = {
    "proxmark3-console.log": FORMAT_PM3_CONSOLE,
    "pcscd-debug.log": FORMAT_PCSCD,
    "scriptor.txt": FORMAT_SCRIPTOR,
    "cardpeek.log": FORMAT_CARDPEEK,
    "blog-capdu.txt": FORMAT_BLOG,
    "blog-zh.txt": FORMAT_BLOG,
    "blog-arrows.txt": FORMAT_BLOG,
    "metrodroid-china.json": FORMAT_METRODROID,
}


def read_json(capsys, path: Path) -> dict:  # type: ignore[no-untyped-def]
    code = main(["read", "--replay", str(path), "--terminal-data", str(TERMINAL_FILE), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize(("name", "fmt"), sorted(TUNION_DUMPS.items()))
def test_each_tool_dump_is_recognised_and_reads(capsys, name: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    imported = import_file(IMPORTS / name)
    assert imported.format == fmt
    assert imported.trace.exchanges[0][0] == bytes.fromhex("00A4040008A00000063201010500")
    data = read_json(capsys, IMPORTS / name)
    assert data["application"] == "A000000632010105"
    assert data["balance_fen"] == 8400
    assert [e["atc"] for e in data["log"]] == [2, 1, 0]
    assert [e["amount_fen"] for e in data["log"]] == [1250, 200, 150]


def test_metrodroid_second_balance_is_the_second_purse(capsys) -> None:  # type: ignore[no-untyped-def]
    data = read_json(capsys, IMPORTS / "metrodroid-china.json")
    assert data["second_purse"] == {"balance_fen": 500, "balance_flag": False}


def test_proxmark3_emv_scan_json_reads_the_emv_application(capsys) -> None:  # type: ignore[no-untyped-def]
    """The scan keeps answers, not the GPO it sent: the GPO is matched by header, and
    fDDA (signed over the scan's own terminal data) is reported as not verifiable."""
    assert import_file(IMPORTS / "proxmark3-emv-scan.json").format == FORMAT_PM3_EMV_JSON
    data = read_json(capsys, IMPORTS / "proxmark3-emv-scan.json")
    assert data["directory"] == "PPSE"
    emv = next(a for a in data["applications"] if a["kind"] == "emv")["emv"]
    assert emv["pan"] == "6299990000001015"
    assert emv["oda"]["verifiable"] is False and emv["oda"]["passed"] is None
    assert [m["command"] for m in data["loosely_matched"]] == ["GET PROCESSING OPTIONS"]


def test_the_project_trace_format_is_still_read_as_is() -> None:
    imported = import_file(DATA / "epurse" / "tunion-read.trace")
    assert imported.format == FORMAT_TRACE and imported.trace.atr


def test_cardpeek_puts_the_status_word_first_and_cut_commands_are_left_out() -> None:
    text = (
        "INFO\tsend: 805C000204 [CLASS_4S]\nINFO\trecv: 9000 000004D2 [ok]\n"
        "INFO\tsend: 00A4040010A0000000031010A0000000031010(...) [CLASS_4S]\n"
        "INFO\trecv: 6A82  [not found]\n"
    )
    imported = import_text(text)
    assert imported.trace.exchanges == [
        (bytes.fromhex("805C000204"), bytes.fromhex("000004D29000"))
    ]
    assert imported.skipped == 1


@pytest.mark.parametrize(
    "text",
    [
        "hello, this is not a card log\n",
        '{"some": "json", "of": ["no", "tool"]}',
        "APDU: 00 A4\n",  # the marker without the other half
    ],
)
def test_unknown_formats_are_refused_listing_the_supported_ones(text: str) -> None:
    with pytest.raises(UnknownTraceFormat) as exc:
        import_text(text)
    for name in SUPPORTED:
        assert name in str(exc.value)


def test_unknown_format_through_ykt_read_is_a_clean_error(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "notes.txt"
    junk.write_text("shopping list: milk, eggs\n")
    assert main(["read", "--replay", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "not a trace in a known format" in err and "cardpeek" in err
    assert "Traceback" not in err and "UnknownTraceFormat" not in err  # words, not class names
