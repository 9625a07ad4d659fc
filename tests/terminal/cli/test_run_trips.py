"""A taxi and a coach conductor's terminal served by ``ykt run``: each trip's meter amount or
destination arrives over ``POST /trip``, the next card pays it once; real subprocesses
against a real gateway process, stopped and restarted: every paid trip reaches the gateway
exactly once and the cards paid exactly what was answered."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.files import load_device
from tests.cli_kit import ykt
from tests.servers import free_port
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

CARDS = 4  # each request presents the next; no card twice within the double-tap window
START_BALANCE = 20_000
TERMINALS = {"taxi": "310000000301", "coach": "310000000302"}
STATIONS = {"taxi": "0000", "coach": "0201"}


def _config(
    tmp: Path, role: str, gateway_port: int, status_port: int, *, first_card: int = 1
) -> Path:
    """The device's configuration; its software cards are presented from ``first_card`` on."""
    cards = card_files(tmp, CARDS, START_BALANCE)
    return write_config(
        tmp / f"{role}.toml",
        section("terminal", role=role, station=STATIONS[role]),
        SIM_READERS,
        section(
            "sim",
            terminal_id=TERMINALS[role],
            sam_state="psam.json",
            cards=cards[first_card - 1 :] + cards[: first_card - 1],
        ),
        section("ride", driver="D0042", vehicle="HU-A1234"),
        journal_section(),
        hotlist_section(),
        gateway_section(gateway_port),
        status_section(status_port) if status_port else "",
    )


def _trip(device: Device, body: Any) -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{device.url}/trip", json=body, timeout=30)
    return r.status_code, r.json()


def _balances(tmp: Path) -> list[int]:
    return [load_device(tmp / f"card{i}.json").balance for i in range(1, CARDS + 1)]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("role", "trips", "fares", "bad"),
    [
        (
            "taxi",
            [{"amount_fen": 2_350}, {"amount_fen": 1_800}, {"amount_fen": 990}],
            [2_350, 1_800, 990],
            [{"amount_fen": 0}, {"destination": "0202"}, {"amount_fen": 60_000}],
        ),
        (
            "coach",
            [{"destination": "0202"}, {"destination": "0203"}, {"destination": "0203"}],
            [2_500, 4_800, 4_800],
            [{"destination": "02"}, {"amount_fen": 100}, {"destination": "0209"}],
        ),
    ],
)
def test_each_trip_arrives_over_post_and_is_paid_once_and_uploaded(
    tmp_path: Path, role: str, trips: list[dict[str, Any]], fares: list[int], bad: list[Any]
) -> None:
    gw_port, status_port = free_port(), free_port()
    register(tmp_path, TERMINALS[role], "validator", "city-transit")
    gateway = start_gateway(tmp_path, gw_port)
    try:
        device = Device(_config(tmp_path, role, gw_port, status_port), status_port)
        device.wait_until("started", trips=0)
        paid: list[dict[str, Any]] = []
        for body, fare in zip(trips[:2], fares, strict=False):
            status, doc = _trip(device, body)
            assert status == 200 and doc["ok"] and doc["fare_fen"] == fare, doc
            assert doc["state"] == "settled" and doc["terminal_seq"] >= 1
            paid.append(doc)
        # a malformed request is 400 with the reason; a fare the rules refuse is a red tap
        status, doc = _trip(device, bad[0])
        assert status == 400 and "bad trip request" in doc["refused"]
        status, doc = _trip(device, bad[1])
        assert status == 400 and "bad trip request" in doc["refused"]
        status, doc = _trip(device, bad[2])
        assert status == 200 and not doc["ok"] and doc["terminal_seq"] is None, str(doc)
        assert ("maximum" if role == "taxi" else "no coach fare") in doc["refused"]
        said = {"taxi": "the meter amount is over the maximum", "coach": "no fare to that"}
        assert doc["outcome"] != "paid" and doc["text"].startswith(said[role]), doc
        device.wait_until_sent()
        assert device.signal(signal.SIGTERM) == 0

        # started again on the same journal and PSAM: it carries on (with the fourth card)
        config = _config(tmp_path, role, gw_port, status_port, first_card=4)
        device = Device(config, status_port)
        device.wait_until("restarted", trips=0)
        status, doc = _trip(device, trips[2])
        assert status == 200 and doc["ok"] and doc["fare_fen"] == fares[2], doc
        paid.append(doc)
        device.wait_until_sent()
        assert device.signal(signal.SIGTERM) == 0
    finally:
        gateway.stop()

    log = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert f"POST http://127.0.0.1:{status_port}/trip" in log
    assert [d["terminal_seq"] for d in paid] == [1, 2, 3]
    rows = journal_rows(tmp_path / "journal.db")
    assert rows == gateway_rows(tmp_path) == [(TERMINALS[role], n) for n in (1, 2, 3)]
    assert sum(START_BALANCE - b for b in _balances(tmp_path)) == sum(fares)
    for doc in paid:
        assert doc[next(iter(trips[0]))] is not None  # the fare asked is echoed


def test_a_taxi_without_a_status_port_is_refused_at_start(tmp_path: Path) -> None:
    config = _config(tmp_path, "taxi", free_port(), 0)
    r = ykt("run", str(config), check=False)
    assert r.returncode == 1 and "takes each trip on [status] port (POST /trip)" in r.stderr
