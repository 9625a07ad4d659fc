"""A POS served by ``ykt run`` (sales from the cash register over ``POST /sale``) and the
carrying-on ``ykt pos``, as real subprocesses against a real gateway process: stopped,
killed and restarted, with the gateway down and up again, every settled sale reaches the
gateway exactly once, nothing is left open and the cards paid exactly what was approved."""

from __future__ import annotations

import json
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from simulators.files import load_device
from simulators.profiles import demo_card
from terminal.hotlist import Hotlist
from terminal.journal import SETTLED, Journal
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

TERMINAL_ID = "310000000101"
CARDS = 4
START_BALANCE = 50_000


def _config(tmp: Path, gateway_port: int | None, status_port: int, *, pay: str = "ep") -> Path:
    """The POS's configuration in ``tmp`` (offline when ``gateway_port`` is None)."""
    return write_config(
        tmp / "pos.toml",
        section("terminal", role="pos"),
        SIM_READERS,
        section(
            "sim",
            terminal_id=TERMINAL_ID,
            sam_state="psam.json",
            cards=card_files(tmp, CARDS, START_BALANCE),
        ),
        journal_section(),
        hotlist_section(),
        gateway_section(gateway_port) if gateway_port else "",
        status_section(status_port),
        section("pos", pay=pay, merchant="corner shop"),
    )


def _sale(device: Device, body: Any) -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{device.url}/sale", json=body, timeout=30)
    return r.status_code, r.json()


def _sales(device: Device, amounts: list[int], approved: list[dict[str, Any]]) -> None:
    for amount in amounts:
        status, doc = _sale(device, {"amount_fen": amount})
        assert status == 200 and doc["ok"], doc
        assert doc["amount_fen"] == amount and doc["state"] == SETTLED
        assert "corner shop" in doc["receipt"] and doc["tac"] in doc["receipt"]
        assert "Auth code" in doc["receipt"] and "TAC" not in doc["receipt"]
        approved.append(doc)


def _paid(tmp: Path) -> int:
    """What the software cards paid, in fen (their balances as saved)."""
    return sum(
        START_BALANCE - load_device(tmp / f"card{i}.json").state.balance
        for i in range(1, CARDS + 1)
    )


def test_a_pos_service_survives_sigterm_sigkill_and_a_gateway_outage_exactly_once(
    tmp_path: Path,
) -> None:
    gw_port, status_port = free_port(), free_port()
    register(tmp_path, TERMINAL_ID, "pos", "corner-shop")
    gateway = start_gateway(tmp_path, gw_port)
    approved: list[dict[str, Any]] = []
    try:
        # 1. sales from the cash register, back to back; SIGTERM among them: the sale in
        #    progress is finished and answered, later ones are refused (or find the port
        #    closed), what was settled is uploaded, exit 0
        config = _config(tmp_path, gw_port, status_port)
        device = Device(config, status_port)
        device.wait_until("started", sales=0)
        _sales(device, [1_250, 300, 4_999, 1], approved)
        answers = device.stop_among(
            lambda n: _sale(device, {"amount_fen": 77}),
            "the POS is stopping",
            "back-to-back sales",
            sales=len(approved) + 5,
        )
        for status, doc in answers:
            if status == 200:
                assert doc["ok"] and doc["state"] == SETTLED
                approved.append(doc)
        first = journal_rows(tmp_path / "journal.db")
        assert len(first) == len(approved) and gateway_rows(tmp_path) == first

        # 2. the gateway goes down; the POS keeps selling and keeps every sale
        gateway.stop()
        device = Device(_config(tmp_path, gw_port, status_port), status_port)
        device.wait_until("started", sales=0)
        _sales(device, [200, 350, 1_000], approved)
        h = device.health()
        assert h is not None and h["waiting_upload"] == 3 and h["journal_ok"]
        assert device.signal(signal.SIGTERM) == 0  # the flush fails, the sales stay queued

        # 3. the gateway comes back; SIGKILL while the queued sales are being uploaded
        gateway = start_gateway(tmp_path, gw_port)
        device = Device(_config(tmp_path, gw_port, status_port), status_port)
        device.wait_until("started", sales=0)
        _sales(device, [450, 60], approved)
        assert device.signal(signal.SIGKILL) == -signal.SIGKILL

        # 4. started again on the same journal and PSAM state: numbers on, uploads all
        device = Device(_config(tmp_path, gw_port, status_port, pay="auto"), status_port)
        device.wait_until("started", sales=0)
        _sales(device, [880, 120, 5], approved)
        device.wait_until_sent()
        metrics = httpx.get(f"{device.url}/metrics").text
        assert f'ykt_upload_waiting_rows{{terminal="{TERMINAL_ID}"}} 0' in metrics
        assert f'ykt_sales_approved_total{{terminal="{TERMINAL_ID}"}} 3' in metrics
        assert device.signal(signal.SIGTERM) == 0
    finally:
        gateway.stop()

    journal = journal_rows(tmp_path / "journal.db")
    at_gateway = gateway_rows(tmp_path)
    assert at_gateway == journal  # every settled sale, once, no duplicates, nothing else
    assert len(set(at_gateway)) == len(at_gateway) == len(approved)
    seqs = [doc["terminal_seq"] for doc in approved]
    assert seqs == list(range(1, len(approved) + 1))  # the PSAM numbered on across restarts
    assert sorted((TERMINAL_ID, s) for s in seqs) == journal
    assert _paid(tmp_path) == sum(doc["amount_fen"] for doc in approved)
    with Journal(tmp_path / "journal.db") as j:
        assert j.totals()[SETTLED] == (len(approved), _paid(tmp_path))
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [t["seq"] for t in lines if t["ok"]] == seqs  # one structured line per sale
    assert all(t["terminal_id"] == TERMINAL_ID and t["card"] for t in lines)


def test_a_pos_service_refuses_in_words_and_takes_nothing(tmp_path: Path) -> None:
    """A bad request is answered 400 with the reason; a sale the card cannot pay is
    refused in words; a second sale while one runs is 409; nothing of it is journaled."""
    status_port = free_port()
    device = Device(_config(tmp_path, None, status_port), status_port)
    try:
        device.wait_until("started", sales=0)
        for body, what in (
            ({"amount_fen": 0}, "amount_fen must be a whole number of fen above 0, got 0"),
            ({"amount_fen": True}, "got True"),
            ({"amount_fen": "12.50"}, "got '12.50'"),
            ({"amount_fen": 100, "tip": 5}, "unknown field(s) tip"),
            ({"amount_fen": 100, "pay": "cash"}, "pay 'cash'"),
            ([100], "must be a JSON object"),
        ):
            status, doc = _sale(device, body)
            assert status == 400 and doc["ok"] is False and what in doc["refused"], doc
        r = httpx.post(f"{device.url}/sale", content=b"{amount", timeout=5)
        assert r.status_code == 400 and r.json()["refused"] == "the body is not JSON"

        status, doc = _sale(device, {"amount_fen": START_BALANCE + 1})
        assert status == 200 and doc["ok"] is False
        assert doc["refused"].startswith("insufficient balance (ep: balance ¥500.00 short of")
        status, doc = _sale(device, {"amount_fen": 100, "pay": "ec"})
        assert status == 200 and doc["refused"] == "card cannot pay: ec: no EMV application"

        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(_sale(device, {"amount_fen": 10})[0]))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(set(results)) <= [200, 409] and 200 in results
        approved = results.count(200)
        h = device.health()
        assert h is not None and h["approved"] == approved and h["refused"] == 2
        assert device.signal(signal.SIGTERM) == 0
    finally:
        if device.proc.poll() is None:
            device.signal(signal.SIGKILL)
    with Journal(tmp_path / "journal.db") as j:
        assert j.totals()[SETTLED] == (approved, 10 * approved) and j.open_rows() == []
    assert _paid(tmp_path) == 10 * approved


def test_a_pos_service_refuses_a_psam_behind_its_journal_and_a_missing_sale_port(
    tmp_path: Path,
) -> None:
    status_port = free_port()
    config = _config(tmp_path, None, status_port)
    device = Device(config, status_port)
    device.wait_until("started", sales=0)
    shutil.copy(tmp_path / "psam.json", tmp_path / "psam-old.json")
    approved: list[dict[str, Any]] = []
    _sales(device, [100, 200], approved)
    assert device.signal(signal.SIGTERM) == 0
    shutil.copy(tmp_path / "psam.json", tmp_path / "psam-new.json")

    shutil.copy(tmp_path / "psam-old.json", tmp_path / "psam.json")  # an older PSAM state
    r = ykt("run", str(config), check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"PSAM {TERMINAL_ID} would number its next purchase 1" in r.stderr
    assert "already holds seq 2" in r.stderr and "refusing to start" in r.stderr
    with Journal(tmp_path / "journal.db") as j:
        assert len(j.rows()) == 2  # nothing was sold

    without_port = tmp_path / "no-port.toml"
    without_port.write_text(config.read_text().replace(f"port = {status_port}", "port = 0"))
    shutil.copy(tmp_path / "psam-new.json", tmp_path / "psam.json")
    r = ykt("run", str(without_port), check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "a POS takes its sales on [status] port (POST /sale)" in r.stderr


def test_ykt_pos_restarted_on_its_journal_carries_on(tmp_path: Path) -> None:
    demo_card(1, balance=START_BALANCE).save(tmp_path / "card.json")
    common = ["pos", "--card", str(tmp_path / "card.json"), "--journal", str(tmp_path / "p.db")]
    first = ykt(*common, "--amount", "1.00", "--json")
    assert json.loads(first.stdout)["terminal_seq"] == 1
    assert (tmp_path / "p.psam.json").is_file()  # next to the journal by default
    shutil.copy(tmp_path / "p.psam.json", tmp_path / "old.json")
    again = ykt(*common, "--amount", "2.00", "--json", check=False)
    assert again.returncode == 0 and "already journaled" not in again.stderr
    assert json.loads(again.stdout)["terminal_seq"] == 2
    with Journal(tmp_path / "p.db") as j:
        assert j.totals()[SETTLED] == (2, 300)

    shutil.copy(tmp_path / "old.json", tmp_path / "p.psam.json")  # a PSAM behind its journal
    r = ykt(*common, "--amount", "3.00", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "already holds seq 2" in r.stderr and "refusing to start" in r.stderr
    assert load_device(tmp_path / "card.json").state.balance == START_BALANCE - 300


def test_a_pos_service_refuses_a_card_on_its_hotlist_and_debits_nothing(tmp_path: Path) -> None:
    """A card reported lost (on the hotlist the service syncs) cannot pay at the POS."""
    status_port = free_port()
    config = _config(tmp_path, None, status_port)
    lost = load_device(tmp_path / "card2.json")
    hotlist = Hotlist(tmp_path / "hotlist.db")
    hotlist.replace_all(7, [lost.serial])
    hotlist.close()
    device = Device(config, status_port)
    try:
        device.wait_until("started", sales=0)
        status, first = _sale(device, {"amount_fen": 500})  # card 1
        assert status == 200 and first["ok"]
        status, doc = _sale(device, {"amount_fen": 500})  # card 2, reported lost
        assert status == 200 and doc["ok"] is False
        assert doc["refused"] == (  # demo card 2's printed number
            "card refused: card 3100029000000000002 is reported lost or stolen (hotlist)"
        )
        assert device.signal(signal.SIGTERM) == 0
    finally:
        if device.proc.poll() is None:
            device.signal(signal.SIGKILL)
    assert load_device(tmp_path / "card2.json").state.balance == START_BALANCE
    with Journal(tmp_path / "journal.db") as j:
        assert [(r.card_serial, r.amount) for r in j.rows()] == [
            (load_device(tmp_path / "card1.json").serial.hex().upper(), 500)
        ]


def test_a_journal_removed_under_a_running_pos_puts_it_out_of_service(tmp_path: Path) -> None:
    status_port = free_port()
    device = Device(_config(tmp_path, None, status_port), status_port)
    device.wait_until("started", sales=0)
    _sales(device, [100], [])
    (tmp_path / "journal.db").unlink()
    assert device.proc.wait(30) == 3  # by itself: it stops taking sales
    device.out.close()
    log = (tmp_path / "run.log").read_text()
    assert "out of service: journal" in log and "was removed" in log
    assert "Traceback" not in log
    assert _paid(tmp_path) == 100  # nothing was charged after the sale that was answered
