"""`ykt demo` runs the whole path and its settlement balances to the fen against the cards."""

from __future__ import annotations

import subprocess
import sys

from terminal.cli.demo_clearing import settlement_balances


def test_demo_runs_terminals_journal_gateway_clearing():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "terminal.cli.main",
            "demo",
            "--cards",
            "4",
            "--taps",
            "12",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "== Settlement (all days)" in out
    assert "BALANCED to the fen" in out
    assert "gateway reconciliation with clearing: MATCHED" in out


def test_demo_issues_a_card_and_pays_a_subsidy_roster_onto_it():
    r = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "demo", "--cards", "2", "--taps", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "1 issuance record(s) -> gateway: {'stored': 1}" in out
    assert "declared by 王会计: 2 line(s) ¥350.00, 1 row(s) rejected" in out
    assert "ID number: check character is 1, should be X" in out
    assert (
        "reviewed by 赵审核; 公示" in out and "approved by 李科长; sent to finance by 孙财政" in out
    )
    assert "公示 1  张*  110105********002X  农村分散供养五保户补助资金  ¥200.00" in out
    assert "kiosk pickup: paid 2 line(s), ¥350.00; balance ¥350.00" in out
    assert "report: paid 2 line(s) ¥350.00, pending 0 line(s) ¥0.00" in out
    bank = out[out.index("== Agent bank") :]
    assert "roster #2: 2 line(s), ¥15320.50, approved and sent to finance" in bank
    assert "1 line(s) paid, ¥15000.00; line B" in bank and "not paid: 账户已冻结" in bank
    assert "tracking: 1 paid, 1 failed" in bank
    assert "the bank answers: 1 line(s) paid, ¥320.50" in bank
    assert "report: roster #2 paid 2 of 2 line(s), ¥15320.50, by the bank" in bank
    assert "3100029000010000001  balance ¥350.00" in out  # the subsidy card, in the check
    assert "BALANCED to the fen" in out


def test_settlement_check_catches_a_missing_fen():
    class Card:
        def __init__(self, issuer: str, serial: str, balance: int):
            self.issuer_id, self.serial, self.balance = (
                bytes.fromhex(issuer),
                bytes.fromhex(serial),
                balance,
            )

    cards = [Card("02902900FFFFFFFF", "0000000000000001", 700)]
    opening = {"0000000000000001": 1_000}
    doc = {
        "by_issuer": [{"issuer_id": "02902900FFFFFFFF", "load_amount": 0, "purchase_amount": 300}]
    }
    assert settlement_balances(doc, cards, opening)
    doc["by_issuer"][0]["purchase_amount"] = 299
    assert not settlement_balances(doc, cards, opening)
