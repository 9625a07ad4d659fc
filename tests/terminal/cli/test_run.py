"""``ykt run`` / ``ykt upload`` / ``ykt journal`` and the carrying-on ``ykt validator``, as real
subprocesses against a real gateway process (``ykt gateway serve`` on SQLite): stopped,
killed and restarted, with the gateway down and up again, every settled transaction
reaches the gateway exactly once and nothing is left open."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import httpx
import pytest

from terminal.fares import DEMO_FARES
from terminal.journal import SETTLED, Journal
from tests.cli_kit import ykt
from tests.servers import ROOT, free_port
from tests.terminal.cli.run_kit import (
    SIM_READERS,
    Device,
    card_files,
    gateway_rows,
    gateway_section,
    hotlist_section,
    journal_rows,
    journal_section,
    register,
    section,
    start_gateway,
    status_section,
    write_config,
)

TERMINAL_ID = "310000000201"


def _cards(tmp: Path, n: int) -> list[str]:
    """``n`` software card files, and a fare file under which every tap pays (no
    double-tap window), in ``tmp``."""
    fares = DEMO_FARES.read_text(encoding="utf-8")
    (tmp / "fares.toml").write_text(
        fares.replace("double_tap_seconds = 60", "double_tap_seconds = 0")
    )
    return card_files(tmp, n, 50_000)


def _config(tmp: Path, gateway_port: int, status_port: int, *, taps: int, seed: int) -> Path:
    return write_config(
        tmp / "terminal.toml",
        section("terminal", role="bus"),
        SIM_READERS,
        section(
            "sim",
            terminal_id=TERMINAL_ID,
            sam_state="psam.json",
            cards=_cards(tmp, 8),
            taps=taps,
            tap_interval=0.35,
            seed=seed,
        ),
        journal_section(),
        section("fares", file="fares.toml"),
        hotlist_section(),
        gateway_section(gateway_port),
        status_section(status_port),
    )


def _register(tmp: Path) -> None:
    register(tmp, TERMINAL_ID, "validator", "bus-co")


def test_run_survives_sigterm_sigkill_and_a_gateway_outage_exactly_once(tmp_path: Path) -> None:
    gw_port, status_port = free_port(), free_port()
    _register(tmp_path)
    gateway = start_gateway(tmp_path, gw_port)
    try:
        # 1. serve taps, SIGTERM mid-run: exits 0 after uploading what it settled
        config = _config(tmp_path, gw_port, status_port, taps=12, seed=1)
        device = Device(config, status_port)
        device.wait_until("first taps", taps=3)
        assert device.signal(signal.SIGTERM) == 0
        first = journal_rows(tmp_path / "journal.db")
        assert first and gateway_rows(tmp_path) == first

        # 2. the gateway goes down; the device keeps serving and keeps every row
        gateway.stop()
        config = _config(tmp_path, gw_port, status_port, taps=6, seed=2)
        device = Device(config, status_port)
        h = device.wait_until("taps while the gateway is down", taps=6)
        assert h["waiting_upload"] and h["journal_ok"]  # type: ignore[truthy-bool]
        assert device.signal(signal.SIGTERM) == 0  # the flush fails, the rows stay queued

        # 3. the gateway comes back; SIGKILL while uploads and taps are under way
        gateway = start_gateway(tmp_path, gw_port)
        config = _config(tmp_path, gw_port, status_port, taps=9, seed=3)
        device = Device(config, status_port)
        device.wait_until("taps after the outage", taps=2)
        assert device.signal(signal.SIGKILL) == -signal.SIGKILL

        # 4. started again: carries on (PSAM state and journal), settles what was open,
        #    and uploads everything
        config = _config(tmp_path, gw_port, status_port, taps=12, seed=4)
        device = Device(config, status_port)
        device.wait_until("taps after the kill", taps=12)
        device.wait_until_sent()
        metrics = httpx.get(f"http://127.0.0.1:{status_port}/metrics").text
        assert f'ykt_upload_waiting_rows{{terminal="{TERMINAL_ID}"}} 0' in metrics
        assert device.signal(signal.SIGTERM) == 0
    finally:
        gateway.stop()

    journal = journal_rows(tmp_path / "journal.db")
    at_gateway = gateway_rows(tmp_path)
    assert len(journal) > 12
    assert at_gateway == journal  # every settled row, once, no duplicates, nothing else
    assert len(set(at_gateway)) == len(at_gateway)
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log
    tx_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {(TERMINAL_ID, t["seq"]) for t in tx_lines if t["state"] == "settled"} <= set(journal)


def test_upload_sends_what_waits_once_and_says_what_is_left(tmp_path: Path) -> None:
    gw_port = free_port()
    _register(tmp_path)
    config = _config(tmp_path, gw_port, 0, taps=4, seed=1)
    # settle offline: no gateway yet (the validator's flush fails, rows wait)
    r = ykt(
        "validator",
        "--journal",
        str(tmp_path / "journal.db"),
        "--sam-state",
        str(tmp_path / "psam.json"),
        "--card",
        str(tmp_path / "card1.json"),
        "--taps",
        "1",
        "--gateway",
        f"http://127.0.0.1:{gw_port}",
        "--token-file",
        str(tmp_path / "terminal.token"),
        "--flush-timeout",
        "1",
    )
    assert "1 awaiting upload" in r.stdout
    r = ykt("upload", str(config), check=False)
    assert r.returncode == 1 and "1 waiting" in r.stdout
    gateway = start_gateway(tmp_path, gw_port)
    try:
        r = ykt("upload", str(config))
        assert "1 stored" in r.stdout and "0 waiting" in r.stdout
        assert gateway_rows(tmp_path) == journal_rows(tmp_path / "journal.db")
    finally:
        gateway.stop()
    listing = ykt("journal", str(config), "--csv", str(tmp_path / "j.csv")).stdout
    assert "unsent: 0" in listing and "open (resolved at the card's next tap): 0" in listing
    lines = (tmp_path / "j.csv").read_text().splitlines()
    assert lines[0].startswith("kind,id,terminal_id,seq,card") and len(lines) == 2


def test_validator_carries_on_and_refuses_a_psam_behind_its_journal(tmp_path: Path) -> None:
    _cards(tmp_path, 3)
    common = [
        "validator",
        "--journal",
        str(tmp_path / "v.db"),
        "--sam-state",
        str(tmp_path / "sam.json"),
        "--fares",
        str(tmp_path / "fares.toml"),
        *(f"--card={tmp_path / f'card{i}.json'}" for i in (1, 2, 3)),
    ]
    ykt(*common, "--taps", "3")
    with Journal(tmp_path / "v.db") as j:
        first = len(j.rows("settled"))
    shutil.copy(tmp_path / "sam.json", tmp_path / "sam-old.json")
    r = ykt(*common, "--taps", "3", "--seed", "9")  # carries on: no "already journaled"
    with Journal(tmp_path / "v.db") as j:
        settled = len(j.rows("settled"))
        last = j.last_seq(bytes.fromhex(TERMINAL_ID))
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert settled > first and last == settled  # numbered on from where the PSAM stopped

    shutil.copy(tmp_path / "sam-old.json", tmp_path / "sam.json")  # an older PSAM state
    r = ykt(*common, "--taps", "3", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    reason = r.stderr.strip()
    assert len(reason.splitlines()) == 1
    assert f"PSAM {TERMINAL_ID}" in reason and f"already holds seq {last}" in reason
    assert "refusing to start" in reason
    with Journal(tmp_path / "v.db") as j:
        assert len(j.rows()) == settled  # nothing was tapped

    config = tmp_path / "t.toml"  # ykt run assembles the same device and refuses it too
    config.write_text(
        '[terminal]\nrole = "bus"\n[journal]\npath = "v.db"\n[sim]\nsam_state = "sam.json"\n'
    )
    r = ykt("run", str(config), check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"already holds seq {last}" in r.stderr and "refusing to start" in r.stderr

    (tmp_path / "sam.json").unlink()  # a reset (fresh) PSAM is behind too
    r = ykt(*common, "--taps", "1", check=False)
    assert r.returncode == 1 and "would number its next purchase 1" in r.stderr


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (
            '[terminal]\nrole = "bus"\n[journal]\npath = "j.db"\n[gateway]\nupload_intervall = 5\n',
            6,
            "unknown key 'upload_intervall' in section [gateway]",
        ),
        ('[terminal]\nrole = "bus"\n\n[jornal]\npath = "j.db"\n', 4, "unknown key 'jornal'"),
        ('[terminal]\nrole = "buss"\n[journal]\npath = "j.db"\n', 2, "terminal.role must be"),
        (
            '[terminal]\nrole = "bus"\n[journal]\npath = "j.db"\n[status]\nport = "x"\n',
            6,
            "status.port must be a whole number",
        ),
        ('[terminal]\nrole = "bus"\n', 1, "missing 'path'"),
        (
            '[terminal]\nrole = "bus"\n[journal]\npath = "j.db"\n[gateway]\nurl = "http://x"\n',
            5,
            "needs token_file",
        ),
        (
            '[terminal]\nrole = "pos"\n[journal]\npath = "j.db"\n[pos]\npay = "cash"\n',
            6,
            "pos.pay 'cash': payment sources are 'ec' and 'ep'",
        ),
        (
            '[terminal]\nrole = "pos"\n[journal]\npath = "j.db"\n[pos]\ntrust_test_keys = 1\n',
            6,
            "pos.trust_test_keys must be true or false, got 1",
        ),
    ],
)
def test_a_configuration_with_a_typo_is_refused_with_file_and_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    config = tmp_path / "t.toml"
    config.write_text(text)
    for command in ("run", "upload", "journal"):
        r = ykt(command, str(config), check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"ykt: {config}:{line}: ") and what in r.stderr, r.stderr
    assert not (tmp_path / "j.db").exists()


def test_the_examples_parse() -> None:
    from terminal.runtime.config import load_config

    roles = {load_config(p).role for p in (ROOT / "examples").glob("*.toml")}
    assert {"bus", "metro-entry", "metro-exit", "pos", "kiosk"} <= roles
    assert {"taxi", "bike-return", "coach", "parking-exit"} <= roles


def test_upload_and_journal_never_create_a_journal_at_a_wrong_path(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[terminal]\nrole = "pos"\n[journal]\npath = "typo.db"\n')
    for command in ("upload", "journal"):
        r = ykt(command, str(config), check=False)
        assert r.returncode == 1 and "typo.db does not exist" in r.stderr
    assert not (tmp_path / "typo.db").exists()


def test_a_journal_removed_under_a_running_device_puts_it_out_of_service(tmp_path: Path) -> None:
    gw_port, status_port = free_port(), free_port()
    _register(tmp_path)
    gateway = start_gateway(tmp_path, gw_port)
    try:
        device = Device(_config(tmp_path, gw_port, status_port, taps=200, seed=1), status_port)
        device.wait_until("first taps", taps=2)
        (tmp_path / "journal.db").unlink()
        assert device.proc.wait(30) == 3  # by itself: it stops taking cards
        device.out.close()
    finally:
        gateway.stop()
    log = (tmp_path / "run.log").read_text()
    assert "out of service: journal" in log and "was removed" in log
    assert "Traceback" not in log


def test_journal_lists_and_exports_electronic_cash_rows_with_their_kind(tmp_path: Path) -> None:
    from tests.terminal.journal.test_ec_journal import PROOF, ec_intent
    from tests.terminal.journal.test_journal import intent

    config = _config(tmp_path, free_port(), free_port(), taps=1, seed=1)
    with Journal(tmp_path / "journal.db") as j:
        j.settle(intent(j, 1), tac=b"\x01" * 4, mac2=b"\x02" * 4, mac2_verified=True)
        ec_intent(j)  # torn: open until the card comes back
        sold = j.resolve_ec(ec_intent(j, amount=800), SETTLED, "TC", PROOF)
        refused = j.resolve_ec(ec_intent(j, amount=500), SETTLED, "TC", PROOF)
        assert j.mark_parked([refused.upload_seq], "conflict: held with other content") == 1
        assert [r.kind.name for r in j.parked()] == ["ec_purchase"]
        assert sold.upload_seq == 2
    listing = ykt("journal", str(config), "--csv", str(tmp_path / "j.csv")).stdout
    sections = listing.split("\n")
    assert "open (resolved at the card's next tap): 1" in listing
    assert "unsent: 2" in listing and "parked (refused by the gateway): 1" in listing
    open_line = sections[sections.index("open (resolved at the card's next tap): 1") + 1]
    assert open_line.split()[:3] == ["EC", "seq", "1"] and "intent" in open_line
    assert "EC seq      3" in listing and "conflict: held with other content" in listing
    assert "recent (4 of 4)" in listing and "EP seq      1" in listing
    lines = (tmp_path / "j.csv").read_text().splitlines()
    assert len(lines) == 5 and sum(line.startswith("ec_purchase,") for line in lines) == 3
    assert any(",6235000000000000017," in line and ",800," in line for line in lines)


def test_run_refuses_a_till_and_a_library_without_their_port(tmp_path: Path) -> None:
    """Their input comes from a screen over POST on the status port: without one, the
    start is refused with the reason, before anything was opened."""
    for role, what in (
        ("till", "a till takes its sales on [status] port (POST /sale): set it"),
        ("library", "a library desk takes its loans and returns on [status] port (POST /loan)"),
    ):
        config = tmp_path / f"{role}.toml"
        config.write_text(
            f'[terminal]\nrole = "{role}"\n[journal]\npath = "{role}.db"\n'
            f'[{role}]\nrules = "rules.toml"\n'
        )
        r = ykt("run", str(config), check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert what in r.stderr, r.stderr
        assert not (tmp_path / f"{role}.db").exists()  # refused before anything was opened
    r = ykt("journal", str(tmp_path / "library.toml"), check=False)
    assert r.returncode == 1 and "not a payment journal" in r.stderr
