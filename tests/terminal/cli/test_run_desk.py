"""An issuance desk served by ``ykt run`` (applicants from the desk clerk's screen over
``POST /issue``) as a real subprocess against a real gateway process: cards issued with
numbers leased from the gateway, a second card for the same person refused in words,
stopped with SIGTERM, started again: every card is in the gateway's card book once."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from simulators.files import load_device
from tests.servers import free_port
from tests.subsidy_kit import id_number
from tests.terminal.cli.run_kit import (
    SIM_READERS,
    Device,
    gateway_section,
    hotlist_section,
    journal_section,
    register,
    section,
    start_gateway,
    status_section,
    write_config,
)

DESK_ID = "310000000081"


def _config(tmp: Path, gateway_port: int, status_port: int) -> Path:
    return write_config(
        tmp / "desk.toml",
        section("terminal", role="desk", clock="2026-03-01T08:00:00"),
        SIM_READERS,
        section("sim", terminal_id=DESK_ID),
        journal_section("desk-journal.db"),
        hotlist_section(sync=False),
        gateway_section(gateway_port),
        status_section(status_port),
        section("desk", registry="desk-cards.db"),
    )


def _issue(device: Device, body: Any) -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{device.url}/issue", json=body, timeout=30)
    return r.status_code, r.json()


def _issued(device: Device, name: str, id_no: str) -> dict[str, Any]:
    status, doc = _issue(device, {"name": name, "id_number": id_no, "card_kind": 1})
    assert status == 200 and doc["ok"], doc
    assert doc["pushed"] is True and doc["action"] == "issue"
    card = load_device(doc["file"])  # the software card, named after its number
    assert Path(doc["file"]).name == f"{doc['card_number']}.json"
    assert card.state.balance == 0
    return doc


def _book(tmp: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(tmp / "gateway.db") as db:
        return db.execute(
            "SELECT card_number, id_number, desk_state, desk_id FROM cards ORDER BY card_number"
        ).fetchall()


def test_a_desk_service_issues_cards_into_the_gateway_book_once_across_a_restart(
    tmp_path: Path,
) -> None:
    gw_port, status_port = free_port(), free_port()
    register(tmp_path, DESK_ID, "issuance", "card-centre")
    gateway = start_gateway(tmp_path, gw_port)
    config = _config(tmp_path, gw_port, status_port)
    people = [("张三", id_number(1)), ("李四", id_number(2)), ("王五", id_number(3))]
    try:
        device = Device(config, status_port)
        device.wait_until("started", requests=0)
        done = [_issued(device, *people[0]), _issued(device, *people[1])]

        # one person, one card: the second card for 张三 is refused in words, no number used
        status, doc = _issue(device, {"name": "张三", "id_number": people[0][1]})
        assert status == 200 and not doc["ok"], doc
        assert "one person, one card" in doc["refused"]
        assert done[0]["card_number"] in doc["refused"]
        status, doc = _issue(device, {"name": "张三"})
        assert status == 400 and "id_number is required" in doc["refused"]
        h = device.health()
        assert h is not None and (h["issued"], h["refused"], h["role"]) == (2, 1, "desk")
        assert device.signal(signal.SIGTERM) == 0

        # started again on the same registry and journal: it carries on
        device = Device(config, status_port)
        device.wait_until("started", requests=0)
        done.append(_issued(device, *people[2]))
        status, doc = _issue(device, {"name": "李四", "id_number": people[1][1]})
        assert status == 200 and not doc["ok"] and "one person, one card" in doc["refused"]
        # a replacement the gateway cannot vouch a balance for yet (its settling period
        # after the loss): refused in words before any card work, the loss in its book
        lost = done[0]["card_number"]
        r = httpx.post(f"{device.url}/replace", json={"card_number": lost}, timeout=30)
        assert r.status_code == 200 and not r.json()["ok"], r.json()
        assert f"card {lost} is not replaced, nothing is carried" in r.json()["refused"]
        assert "offline transactions may still arrive" in r.json()["refused"]
        metrics = httpx.get(f"{device.url}/metrics").text
        assert f'ykt_desk_issued_total{{terminal="{DESK_ID}"}} 1' in metrics
        assert device.signal(signal.SIGTERM) == 0
    finally:
        gateway.stop()

    numbers = [doc["card_number"] for doc in done]
    assert len(set(numbers)) == 3
    book = _book(tmp_path)
    assert [row[0] for row in book] == sorted(numbers)  # every card once, nothing else
    assert {(row[0], row[1]) for row in book} == {
        (doc["card_number"], person[1]) for doc, person in zip(done, people, strict=True)
    }
    assert {row[0]: row[2] for row in book} == {
        n: "lost" if n == lost else "active" for n in numbers
    }
    assert {row[3] for row in book} == {DESK_ID}
    cards = sorted(p.name for p in (tmp_path / "cards").iterdir())
    assert cards == sorted(f"{n}.json" for n in numbers)  # no blank left behind
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [line["card"] for line in lines if line["ok"]] == numbers
    assert [line["text"] for line in lines if line["ok"]] == [f"card {n} issued" for n in numbers]
    assert sum(not line["ok"] for line in lines) == 3
    assert all(people[0][1] not in line and "张三" not in line for line in log.splitlines())
