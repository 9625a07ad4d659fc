"""The campus part of ``ykt demo`` on the demo's real gateway: its operator lines."""

from __future__ import annotations

from pathlib import Path

from terminal.cli.demo_campus import run_campus_demo
from terminal.cli.demo_clearing import ClearingPath
from terminal.words import set_lang


def test_the_demo_card_opens_clocks_in_pays_borrows_and_its_clone_is_refused(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    with ClearingPath(str(tmp_path)) as path:
        assert run_campus_demo(path, tmp_path, lines.append)
        with path.db.tx() as cur:
            cur.execute("SELECT result FROM campus_events ORDER BY event_seq")
            assert [r[0] for r in cur.fetchall()] == ["granted", "granted", "refused"]
    assert lines[1:5] == [
        "   door east-in: S2026001 may pass",
        "   time clock: S2026001 clocked in at 08:40",
        "   canteen lunch: S2026001 paid ¥12.00 from the allowance 补助, ¥288.00 left",
        "   library: S2026001 borrowed ISBN-9787020002207 (1 of 5 books held)",
    ]
    assert lines[5].startswith(
        "   door east-out: a cloned card (same UID and files) refused: not a genuine campus card"
    )
    assert lines[6] == "   3 door events uploaded to the gateway once"


def test_the_demos_door_lines_are_in_the_terminals_language(tmp_path: Path) -> None:
    lines: list[str] = []
    set_lang("zh")
    try:
        with ClearingPath(str(tmp_path)) as path:
            assert run_campus_demo(path, tmp_path, lines.append)
    finally:
        set_lang("en")
    assert lines[1] == "   door east-in: S2026001 可以通行"
    assert lines[5] == "   door east-out: a cloned card (same UID and files) " + (
        "拒绝：不是真卡（卡内没有校园密钥）"
    )
