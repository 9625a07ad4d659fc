"""A campus library desk served by ``ykt run`` (loans and returns from the librarian's screen
over ``POST /loan`` and ``POST /return``) as a real subprocess against a real gateway:
stopped mid-run and restarted, every loan the desk answered as done is booked at the gateway
exactly once under its loan number, to the card's holder, and every refused one is not."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from simulators.campus import campus_card
from terminal.private_files import write_private
from tests.campus_kit import enrol
from tests.gateway_fixtures import GatewayServer
from tests.servers import free_port
from tests.terminal.cli.run_kit import (
    SIM_READERS,
    Device,
    gateway_section,
    hotlist_section,
    section,
    status_section,
    write_config,
)

TERMINAL_ID = "310000000401"
PEOPLE = ("S1", "S2")  # cards 1 and 2 are enrolled; card 3 (S3) is not


def _config(tmp: Path, gateway: GatewayServer, status_port: int, token: str = "") -> Path:
    (tmp / "limits.toml").write_text("[limits]\nstudents = 3\n", encoding="utf-8")
    for i in (1, 2, 3):
        if not (tmp / f"card{i}.json").exists():
            campus_card(i, f"S{i}").save(tmp / f"card{i}.json")
    if token:
        write_private(tmp / "terminal.token", token + "\n")
    port = int(gateway.url.rsplit(":", 1)[1])
    path = write_config(
        tmp / "library.toml",
        section("terminal", role="library"),
        SIM_READERS,
        section(
            "sim",
            terminal_id=TERMINAL_ID,
            sam_state="psam.json",
            cards=["card1.json", "card2.json", "card3.json"],
        ),
        section("journal", path="library.db"),
        hotlist_section(),
        gateway_section(port),
        status_section(status_port),
        section("library", rules="limits.toml"),
    )
    return path


def _post(device: Device, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{device.url}{path}", json=body, timeout=30)
    return r.status_code, r.json()


def _loans(gateway: GatewayServer) -> list[tuple[str, int, str, str, bool]]:
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT terminal_id, loan_no, person_no, book, returned_at IS NOT NULL"
            " FROM campus_library_loans ORDER BY loan_no"
        )
        return [(str(t), int(n), str(p), str(b), bool(r)) for t, n, p, b, r in cur.fetchall()]


def test_a_library_service_lends_and_takes_back_exactly_once_across_sigterm(
    tmp_path: Path, gateway: GatewayServer
) -> None:
    token = gateway.register(TERMINAL_ID, "campus", role="library")
    for i, person in enumerate(PEOPLE, 1):
        enrol(gateway.url, person, "students", campus_card(i, person))
    status_port = free_port()
    lent: list[dict[str, Any]] = []  # loans answered as done
    returned: list[str] = []

    # 1. the cards are presented in turn: card 1 (S1), card 2 (S2), card 3 (not enrolled)
    device = Device(_config(tmp_path, gateway, status_port, token), status_port)
    # the allow list is synced in the background right after start
    h = device.wait_until("allow list synced", requests=0, access_version=1)
    assert not h["sync_error"]
    status, doc = _post(device, "/loan", {"book": "B-1"})
    assert status == 200 and doc["ok"], doc
    assert (doc["person_no"], doc["held"], doc["limit"]) == ("S1", 1, 3)
    assert doc["text"] == "B-1 lent; 1 book(s) held of 3"
    lent.append(doc)
    status, doc = _post(device, "/loan", {"book": "B-1"})  # card 2: the book is out
    assert status == 200 and doc["ok"] is False and doc["refused"].startswith("the loan refused")
    status, doc = _post(device, "/loan", {"book": "B-2"})  # card 3: not enrolled here
    assert status == 200 and doc["ok"] is False
    assert doc["refused"] == "card is not enrolled at this site", doc
    status, doc = _post(device, "/return", {"book": "B-1"})  # no card needed
    assert status == 200 and doc["ok"] and (doc["person_no"], doc["duplicate"]) == ("S1", False)
    returned.append("B-1")
    status, doc = _post(device, "/return", {"book": "B-404"})
    assert status == 200 and doc["ok"] is False and "not on loan" in doc["refused"]

    # 2. back-to-back loans and returns; SIGTERM among them: the request in progress is
    #    finished and answered, later ones are refused (or find the port closed)
    def request(n: int) -> tuple[str, str]:  # loan L-1, return L-1, loan L-2, ...
        return ("/loan" if n % 2 == 0 else "/return"), f"L-{n // 2 + 1}"

    answers = device.stop_among(
        lambda n: _post(device, request(n)[0], {"book": request(n)[1]}),
        "the library desk is stopping",
        "back-to-back requests",
        requests=5 + 8,
    )
    for n, (status, doc) in enumerate(answers):
        path, book = request(n)
        if status != 200:
            continue
        if path == "/loan" and doc["ok"]:
            lent.append(doc)
        elif path == "/return" and doc["ok"]:
            returned.append(book)

    # 3. started again on the same store: the loan numbers carry on
    device = Device(_config(tmp_path, gateway, status_port), status_port)
    device.wait_until("started", requests=0)
    for _ in range(3):  # cards 1, 2, 3 in turn: whoever is enrolled gets a book
        status, doc = _post(device, "/loan", {"book": f"R-{len(lent)}"})
        assert status == 200, doc
        if doc["ok"]:
            lent.append(doc)
    metrics = httpx.get(f"{device.url}/metrics").text
    assert f'ykt_library_done_total{{terminal="{TERMINAL_ID}"}} 2' in metrics
    assert device.signal(signal.SIGTERM) == 0

    loans = _loans(gateway)
    assert [(t, n, p, b) for t, n, p, b, _ in loans] == [
        (TERMINAL_ID, d["loan_no"], d["person_no"], d["book"]) for d in lent
    ]  # every loan answered as done, once, to the card's holder; nothing else
    assert {d["person_no"] for d in lent} <= set(PEOPLE)
    assert sorted(b for *_, b, back in loans if back) == sorted(returned)
    numbers = [d["loan_no"] for d in lent]
    assert numbers == sorted(set(numbers)) and numbers[-1] > numbers[0]
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log
    logged = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert [t["loan_no"] for t in logged if t["ok"] and t["action"] == "loan"] == numbers


def test_a_library_service_answers_bad_requests_and_one_at_a_time(
    tmp_path: Path, gateway: GatewayServer
) -> None:
    token = gateway.register(TERMINAL_ID, "campus", role="library")
    status_port = free_port()
    device = Device(_config(tmp_path, gateway, status_port, token), status_port)
    try:
        device.wait_until("started", requests=0)
        for path, body, what in (
            ("/loan", {}, 'a loan is {"book": "..."}'),
            ("/loan", {"book": "B-1", "person_no": "S2"}, "the patron is the card in the field"),
            ("/loan", {"book": ""}, "book must be the book's number"),
            ("/loan", {"book": 7}, "book must be the book's number"),
            ("/return", ["B-1"], 'a return is {"book": "..."}'),
            ("/return", {"book": "x" * 65}, "(1 to 64 characters)"),
        ):
            status, doc = _post(device, path, body)
            assert status == 400 and doc["ok"] is False and what in doc["refused"], doc
            assert doc["text"]
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(_post(device, "/return", {"book": "B-9"})[0])
            )
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(set(results)) <= [200, 409] and 200 in results
        assert device.signal(signal.SIGTERM) == 0
    finally:
        if device.proc.poll() is None:
            device.signal(signal.SIGKILL)
    assert _loans(gateway) == []
