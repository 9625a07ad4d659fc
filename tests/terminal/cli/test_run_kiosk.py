"""A kiosk served by ``ykt run`` (top-ups from the kiosk's screen over ``POST /top-up``) as
a real subprocess against a real gateway process: stopped with SIGTERM mid-run, killed,
restarted, with the gateway down: every top-up is one confirmed load at the gateway, on
the card once; nothing is left authorised at the gateway or open in the journal."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx

from simulators.files import load_device
from terminal.journal import SETTLED, Journal
from tests.cli_kit import ykt
from tests.servers import free_port
from tests.terminal.cli.run_kit import (
    SIM_READERS,
    Device,
    card_files,
    gateway_section,
    journal_section,
    register,
    section,
    start_gateway,
    status_section,
    write_config,
)

TERMINAL_ID = "310000000090"
CARDS = 3
START_BALANCE = 1_000


def _config(tmp: Path, gateway_port: int, status_port: int, **kiosk: int) -> Path:
    return write_config(
        tmp / "kiosk.toml",
        section("terminal", role="kiosk", clock="2026-03-01T08:00:00"),
        SIM_READERS,
        section(
            "sim",
            terminal_id=TERMINAL_ID,
            cards=card_files(tmp, CARDS, START_BALANCE, serial_base=70),
        ),
        journal_section(),
        gateway_section(gateway_port),
        status_section(status_port),
        section("kiosk", **kiosk),
    )


def _top_up(device: Device, body: Any) -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{device.url}/top-up", json=body, timeout=30)
    return r.status_code, r.json()


def _top_ups(device: Device, amounts: list[int], done: list[dict[str, Any]]) -> None:
    for amount in amounts:
        status, doc = _top_up(device, {"amount_fen": amount})
        assert status == 200 and doc["ok"], doc
        assert doc["amount_fen"] == amount and doc["confirmed"] is True
        assert "TOP-UP" in doc["receipt"] and doc["tac"] in doc["receipt"]
        done.append(doc)


def _gateway_loads(tmp: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(tmp / "gateway.db") as db:
        return db.execute("SELECT reference, state, amount FROM loads ORDER BY id").fetchall()


def _loaded(tmp: Path) -> int:
    return sum(
        load_device(tmp / f"card{i}.json").state.balance - START_BALANCE
        for i in range(1, CARDS + 1)
    )


def test_a_kiosk_service_tops_up_through_sigterm_sigkill_and_restart_exactly_once(
    tmp_path: Path,
) -> None:
    gw_port, status_port = free_port(), free_port()
    register(tmp_path, TERMINAL_ID, "kiosk", "card-centre")
    gateway = start_gateway(tmp_path, gw_port)
    done: list[dict[str, Any]] = []
    try:
        # 1. top-ups from the screen; SIGTERM while they keep coming: the one in progress
        #    is finished and answered, later ones are refused or find the port closed
        device = Device(_config(tmp_path, gw_port, status_port), status_port)
        device.wait_until("started", requests=0)
        _top_ups(device, [1_000, 500, 2_000], done)
        answers: list[tuple[int, dict[str, Any]]] = []

        def screen() -> None:
            try:
                while True:
                    answers.append(_top_up(device, {"amount_fen": 100}))
                    if answers[-1][0] != 200:
                        return
            except httpx.HTTPError:
                return

        sender = threading.Thread(target=screen)
        sender.start()
        device.wait_until("back-to-back top-ups", requests=len(done) + 4)
        assert device.signal(signal.SIGTERM) == 0
        sender.join(30)
        assert not sender.is_alive()
        for status, doc in answers:
            if status == 200:
                assert doc["ok"] and doc["confirmed"], doc
                done.append(doc)
            else:
                assert (status, doc["refused"]) == (503, "the kiosk is stopping")

        # 2. the gateway is down: a top-up is refused in words and loads nothing
        gateway.stop()
        device = Device(_config(tmp_path, gw_port, status_port), status_port)
        device.wait_until("started", requests=0)
        before = _loaded(tmp_path)
        status, doc = _top_up(device, {"amount_fen": 300})
        assert status == 200 and not doc["ok"] and "cannot reach" in doc["refused"], doc
        assert _loaded(tmp_path) == before
        assert device.signal(signal.SIGTERM) == 0

        # 3. back up; SIGKILL after some top-ups; started again it carries on
        gateway = start_gateway(tmp_path, gw_port)
        device = Device(_config(tmp_path, gw_port, status_port), status_port)
        device.wait_until("started", requests=0)
        _top_ups(device, [700, 150], done)
        assert device.signal(signal.SIGKILL) == -signal.SIGKILL
        device = Device(_config(tmp_path, gw_port, status_port), status_port)
        device.wait_until("started", requests=0)
        _top_ups(device, [900], done)
        status, doc = _top_up(device, {"amount_fen": 200_000})  # above the kiosk's limit
        assert status == 200 and not doc["ok"] and "between" in doc["refused"], doc
        status, doc = _top_up(device, {"amount_fen": "10"})
        assert status == 400 and "amount_fen" in doc["refused"]
        h = device.health()
        assert h is not None and h["open_loads"] == 0 and h["role"] == "kiosk"
        metrics = httpx.get(f"{device.url}/metrics").text
        assert f'ykt_kiosk_approved_total{{terminal="{TERMINAL_ID}"}} 1' in metrics
        assert device.signal(signal.SIGTERM) == 0
    finally:
        gateway.stop()

    loads = _gateway_loads(tmp_path)
    refs = [doc["reference"] for doc in done]
    assert len(set(refs)) == len(refs)
    held = {ref: (state, amount) for ref, state, amount in loads}
    assert all(state != "authorized" for state, _ in held.values()), loads
    confirmed = {ref: amount for ref, (state, amount) in held.items() if state == "confirmed"}
    assert confirmed == {doc["reference"]: doc["amount_fen"] for doc in done}
    assert _loaded(tmp_path) == sum(confirmed.values())
    with Journal(tmp_path / "journal.db") as j:
        assert j.open_loads() == []
        rows = j.load_rows()
        assert {r.reference for r in rows if r.state == SETTLED} == set(confirmed)
    out = ykt("journal", str(tmp_path / "kiosk.toml")).stdout
    assert "open (resolved at the card's next tap): 0" in out
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [t["reference"] for t in lines if t["ok"]] == refs
