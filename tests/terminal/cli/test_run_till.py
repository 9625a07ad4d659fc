"""A campus canteen till served by ``ykt run`` (each meal's amount and purse from the
cashier's screen over ``POST /sale``) as a real subprocess against a real gateway: stopped
mid-run and restarted, every paid sale reaches the gateway exactly once (a cash sale as a
journaled purchase, an allowance sale as a spend), and a refused sale charges nothing."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from simulators.campus import campus_card
from simulators.files import load_device
from terminal.journal import SETTLED, Journal
from terminal.private_files import write_private
from tests.campus_kit import allowance_of, credit, enrol
from tests.gateway_fixtures import GatewayServer
from tests.servers import free_port
from tests.terminal.cli.run_kit import (
    SIM_READERS,
    Device,
    gateway_section,
    hotlist_section,
    journal_rows,
    journal_section,
    section,
    status_section,
    write_config,
)

TERMINAL_ID = "310000000301"
CARDS = 3
CASH = 50_000  # each card's purse
ALLOWANCE = 30_000  # each person's month
RULES = """\
day_limit = 200000
[meals.lunch]
from = "11:00"
until = "13:30"
limit = 100000
"""


def _config(tmp: Path, gateway_url: str | None, status_port: int, token: str = "") -> Path:
    """The till's configuration in ``tmp`` (offline when ``gateway_url`` is None); its
    clock stands at lunch time."""
    (tmp / "canteen.toml").write_text(RULES, encoding="utf-8")
    for i in range(1, CARDS + 1):
        if not (tmp / f"card{i}.json").exists():
            campus_card(i, f"S{i}", balance=CASH).save(tmp / f"card{i}.json")
    if token:
        write_private(tmp / "terminal.token", token + "\n")
    path = write_config(
        tmp / "till.toml",
        section("terminal", role="till", clock="2026-11-30T12:00:00"),
        SIM_READERS,
        section(
            "sim",
            terminal_id=TERMINAL_ID,
            sam_state="psam.json",
            cards=[f"card{i}.json" for i in range(1, CARDS + 1)],
        ),
        journal_section(),
        hotlist_section(),
        gateway_section(int(gateway_url.rsplit(":", 1)[1])) if gateway_url else "",
        status_section(status_port),
        section("till", rules="canteen.toml", merchant="East canteen"),
    )
    return path


def _sale(device: Device, amount: Any, purse: Any = "cash") -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{device.url}/sale", json={"amount_fen": amount, "purse": purse}, timeout=30)
    return r.status_code, r.json()


def _paid_cash(tmp: Path) -> int:
    return sum(CASH - load_device(tmp / f"card{i}.json").state.balance for i in range(1, CARDS + 1))


def _spends(gateway: GatewayServer) -> list[tuple[str, int]]:
    with gateway.db.tx() as cur:
        cur.execute("SELECT terminal_id, sale_seq FROM campus_allowance_spends ORDER BY sale_seq")
        return [(str(t), int(s)) for t, s in cur.fetchall()]


def _txns(gateway: GatewayServer) -> list[tuple[str, int]]:
    with gateway.db.tx() as cur:
        cur.execute("SELECT terminal_id, terminal_seq FROM txn ORDER BY terminal_seq")
        return [(str(t), int(s)) for t, s in cur.fetchall()]


def test_a_till_service_sells_from_both_purses_and_survives_sigterm_exactly_once(
    tmp_path: Path, gateway: GatewayServer
) -> None:
    token = gateway.register(TERMINAL_ID, "campus", role="pos")
    for i in range(1, CARDS + 1):
        enrol(gateway.url, f"S{i}", "students", campus_card(i, f"S{i}"))
    lines = [{"person_no": f"S{i}", "amount_fen": ALLOWANCE} for i in range(1, CARDS + 1)]
    assert credit(gateway.url, "2026-11", lines).status_code == 200
    status_port = free_port()
    approved: list[dict[str, Any]] = []

    def sell(amount: int, purse: str) -> None:
        status, doc = _sale(device, amount, purse)
        assert status == 200 and doc["ok"], doc
        assert (doc["amount_fen"], doc["purse"], doc["meal"]) == (amount, purse, "lunch")
        assert "East canteen" in doc["receipt"] and doc["person_no"] in doc["receipt"]
        approved.append(doc)

    # 1. sales from both purses; then back to back with SIGTERM among them: the sale in
    #    progress is finished and answered, later ones are refused, what waits is uploaded
    device = Device(_config(tmp_path, gateway.url, status_port, token), status_port)
    device.wait_until("started", sales=0)
    for amount, purse in ((1_250, "cash"), (800, "allowance"), (300, "cash"), (5, "allowance")):
        sell(amount, purse)
    purses = ["cash", "allowance"]
    answers = device.stop_among(
        lambda n: _sale(device, 77, purses[n % 2]),
        "the till is stopping",
        "back-to-back sales",
        sales=len(approved) + 5,
    )
    for status, doc in answers:
        if status == 200:
            assert doc["ok"], doc
            approved.append(doc)

    # 2. started again on the same journal, ledger and PSAM: numbers carry on
    device = Device(_config(tmp_path, gateway.url, status_port), status_port)
    device.wait_until("started", sales=0)
    for amount, purse in ((450, "allowance"), (60, "cash"), (999, "cash")):
        sell(amount, purse)
    device.wait_until_sent()
    assert device.signal(signal.SIGTERM) == 0

    cash = [d for d in approved if d["purse"] == "cash"]
    allowance = [d for d in approved if d["purse"] == "allowance"]
    sale_seqs = [d["sale_seq"] for d in approved]
    assert sale_seqs == list(range(1, len(approved) + 1))  # the ledger numbered on
    # every allowance sale was spent at the gateway once, under its sale number
    assert _spends(gateway) == [(TERMINAL_ID, d["sale_seq"]) for d in allowance]
    spent = {f"S{i}": 0 for i in range(1, CARDS + 1)}
    for d in allowance:
        spent[d["person_no"]] += d["amount_fen"]
    for person, amount in spent.items():
        assert allowance_of(gateway.url, person) == ALLOWANCE - amount
    # every cash sale was journaled, settled and uploaded once
    journal = journal_rows(tmp_path / "journal.db")
    assert _txns(gateway) == journal and len(journal) == len(cash)
    assert _paid_cash(tmp_path) == sum(d["amount_fen"] for d in cash)
    with Journal(tmp_path / "journal.db") as j:
        assert j.totals()[SETTLED] == (len(cash), _paid_cash(tmp_path))
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log
    logged = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert [t["sale_seq"] for t in logged if t["ok"]] == sale_seqs  # one line per sale
    assert all(t["terminal_id"] == TERMINAL_ID and t["card"] for t in logged)


def test_a_till_service_refuses_in_words_and_charges_nothing(tmp_path: Path) -> None:
    """Bad requests are 400 with the reason; a sale over the meal's limit and a short purse
    are refused in words; a sale while an allowance sale waits for a gateway that does not
    answer is 409, and that allowance sale is refused; none of them charged anything."""
    silent = socket.socket()  # a gateway that takes the connection and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    status_port = free_port()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    device = Device(_config(tmp_path, url, status_port, "unused-token"), status_port)
    try:
        device.wait_until("started", sales=0)
        for body, what in (
            ({"amount_fen": 0, "purse": "cash"}, "above 0, got 0"),
            ({"amount_fen": -500, "purse": "cash"}, "above 0, got -500"),
            ({"amount_fen": True, "purse": "cash"}, "got True"),
            ({"amount_fen": 100}, 'a till sale is {"amount_fen": N, "purse"'),
            ({"amount_fen": 100, "purse": "card"}, "purse must be one of allowance, cash"),
            ({"amount_fen": 100, "purse": "cash", "tip": 1}, "a till sale is"),
        ):
            r = httpx.post(f"{device.url}/sale", json=body, timeout=30)
            doc = r.json()
            assert r.status_code == 400 and doc["ok"] is False and what in doc["refused"], doc
            assert doc["text"]  # worded for the cashier too

        status, doc = _sale(device, 100_001)  # card 1: over the lunch limit
        assert status == 200 and doc["ok"] is False
        assert doc["refused"] == "over the lunch limit: ¥0.00 spent of ¥1000.00"
        assert doc["text"].startswith("not sold: over the lunch limit")
        status, doc = _sale(device, 60_000, "cash")  # card 2: short
        assert status == 200 and doc["ok"] is False and doc["refused"] == "insufficient balance"

        waiting: list[tuple[int, dict[str, Any]]] = []
        slow = threading.Thread(target=lambda: waiting.append(_sale(device, 500, "allowance")))
        slow.start()  # card 3: the allowance waits for the gateway's answer (2 s)
        time.sleep(0.8)
        status, doc = _sale(device, 10)
        assert status == 409 and doc["refused"] == (
            "another sale is in progress; send this one when it is done"
        )
        slow.join(30)
        [(status, doc)] = waiting
        assert status == 200 and doc["ok"] is False
        assert doc["refused"].startswith("the allowance purse needs the gateway, which did not")
        # the short cash sale was sale 1 of the ledger (refused); this one is 2, to be voided
        assert doc["refused"].endswith("sale 2 is voided at the gateway at the next chance")
        h = device.health()
        assert h is not None and (h["approved"], h["refused"]) == (0, 3)
        assert device.signal(signal.SIGTERM) == 0
    finally:
        silent.close()
        if device.proc.poll() is None:
            device.signal(signal.SIGKILL)
    assert _paid_cash(tmp_path) == 0
    with Journal(tmp_path / "journal.db") as j:
        assert j.rows() == []
    with sqlite3.connect(tmp_path / "journal.sales.db") as db:
        states = db.execute("SELECT sale_seq, purse, state FROM sales ORDER BY 1").fetchall()
    assert states == [(1, "cash", "refused"), (2, "allowance", "unanswered")]
    assert "Traceback" not in (tmp_path / "run.log").read_text()
