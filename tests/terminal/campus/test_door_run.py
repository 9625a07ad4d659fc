"""A door under ``ykt run`` and ``ykt validator --mode door``, as real subprocesses against a
real gateway: decisions from the synced lists, events uploaded once, anti-passback kept
across a restart in the door's local store, a cloned card refused."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from simulators.campus import campus_card, clone
from terminal.private_files import write_private
from tests.campus_kit import DOOR_ID, RULES, enrol
from tests.cli_kit import ykt
from tests.gateway_fixtures import GatewayServer
from tests.servers import free_port
from tests.terminal.cli.run_kit import Device


@pytest.fixture
def door_dir(gateway: GatewayServer, tmp_path: Path) -> Path:
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    token = gateway.register(DOOR_ID, "campus", role="door")
    write_private(tmp_path / "door.token", token + "\n")
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "staff", card)  # staff: any hour (the validator has no --clock)
    card.save(tmp_path / "s1.json")
    clone(card).save(tmp_path / "clone.json")
    return tmp_path


def _config(tmp: Path, url: str, status_port: int, point: str) -> Path:
    path = tmp / "door.toml"
    path.write_text(
        f"""\
[terminal]
role = "door"
clock = "2026-11-30T08:30:00"

[door]
rules = "rules.toml"
point = "{point}"

[sim]
terminal_id = "{DOOR_ID}"
sam_state = "psam.json"
cards = ["s1.json"]
taps = 1

[journal]
path = "door.db"

[hotlist]
path = "hotlist.db"
sync_interval = 0.3

[gateway]
url = "{url}"
token_file = "door.token"
flush_timeout = 5.0

[status]
port = {status_port}
""",
        encoding="utf-8",
    )
    return path


def _run_once(tmp: Path, url: str, point: str) -> dict[str, object]:
    """``ykt run`` the door for one tap, until its event is uploaded; its JSON line."""
    port = free_port()
    device = Device(_config(tmp, url, port, point), port)
    deadline = time.monotonic() + 30
    while (h := device.health()) is None or h["taps"] != 1 or h["waiting_upload"] != 0:
        assert time.monotonic() < deadline, f"the tap's event never left: {h}"
        time.sleep(0.05)
    assert device.signal(signal.SIGTERM) == 0
    lines = [ln for ln in (tmp / "run.log").read_text().splitlines() if ln.startswith("{")]
    (tmp / "run.log").unlink()
    assert len(lines) == 1
    return dict(json.loads(lines[0]))


def test_door_service_keeps_anti_passback_across_a_restart(
    door_dir: Path, gateway: GatewayServer
) -> None:
    first = _run_once(door_dir, gateway.url, "east-in")
    assert (first["granted"], first["person"], first["reason"]) == (True, "S1", "granted")
    again = _run_once(door_dir, gateway.url, "east-in")  # a new process, the same store
    assert (again["granted"], again["reason"]) == (False, "anti-passback: already inside 'campus'")
    assert gateway.count("campus_events") == 2
    with gateway.db.tx() as cur:
        cur.execute("SELECT event_seq, result FROM campus_events ORDER BY event_seq")
        assert cur.fetchall() == [(1, "granted"), (2, "refused")]


def test_validator_mode_door_lets_the_card_out_and_refuses_its_clone(
    door_dir: Path, gateway: GatewayServer
) -> None:
    _run_once(door_dir, gateway.url, "east-in")
    common = ["validator", "--mode", "door", "--rules", str(door_dir / "rules.toml")]
    common += ["--journal", str(door_dir / "door.db"), "--taps", "1"]
    common += ["--sam-state", str(door_dir / "psam.json"), "--gateway", gateway.url]
    common += ["--token-file", str(door_dir / "door.token")]
    out = ykt(*common, "--point", "east-out", "--card", str(door_dir / "s1.json")).stdout
    assert "GREEN east-out: S1 may pass" in out
    assert "1 granted, 0 refused; 0 awaiting upload" in out
    out = ykt(*common, "--point", "east-in", "--card", str(door_dir / "clone.json")).stdout
    assert "refused: not a genuine campus card" in out
    assert "0 granted, 1 refused; 0 awaiting upload" in out
    assert gateway.count("campus_events") == 3


def test_a_door_configuration_names_its_rules_and_a_known_point(door_dir: Path) -> None:
    path = _config(door_dir, "http://127.0.0.1:9", 0, "front-gate")
    r = ykt("run", str(path), check=False)
    assert r.returncode == 1
    assert "door point 'front-gate' is not a door of" in r.stderr
    path.write_text(path.read_text().replace('point = "front-gate"\n', ""))
    r = ykt("run", str(path), check=False)
    assert r.returncode == 1
    assert "a door needs [door] point" in r.stderr


def test_upload_and_journal_refuse_a_door_configuration(door_dir: Path) -> None:
    path = _config(door_dir, "http://127.0.0.1:9", 0, "east-in")
    for command in ("upload", "journal"):
        r = ykt(command, str(path), check=False)
        assert r.returncode == 1
        assert "a door keeps its events in its own store" in r.stderr
        assert "ykt run uploads them" in r.stderr
    assert not (door_dir / "door.db").exists()
