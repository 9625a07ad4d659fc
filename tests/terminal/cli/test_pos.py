"""``ykt pos`` as a real subprocess with software cards: sales, receipts, refusals in words,
Electronic Cash, the journal, and the upload to a real gateway."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from gateway.forwarder import Forwarder
from terminal.journal import SETTLED, Journal
from terminal.private_files import write_private
from tests import cli_kit

ykt = partial(cli_kit.ykt, check=False)  # each test checks the exit status itself


def new_card(path: Path, balance: str) -> Path:
    r = ykt("sim", "new-card", "--out", str(path), "--balance", balance)
    assert r.returncode == 0, r.stderr
    return path


def balance(card: Path) -> int:
    return int(json.loads(card.read_text())["state"]["balance"])


def test_one_sale_prints_a_receipt_and_journals_it(tmp_path: Path) -> None:
    card, journal = new_card(tmp_path / "c.json", "50.00"), tmp_path / "pos.db"
    r = ykt("pos", "--card", str(card), "--amount", "12.50", "--journal", str(journal))
    assert r.returncode == 0, r.stderr
    assert "SALE" in r.stdout and "¥12.50" in r.stdout and "¥37.50" in r.stdout
    assert "T-Union purse" in r.stdout and "3100***********0001" in r.stdout
    assert "1 sale(s), ¥12.50; 0 refused" in r.stdout
    assert balance(card) == 3_750
    with Journal(journal) as j:
        [row] = j.rows()
        assert (row.state, row.amount, row.terminal_id) == (SETTLED, 1_250, "310000000101")
        assert row.tac is not None and row.tac in r.stdout


def test_amounts_typed_per_sale_on_stdin(tmp_path: Path) -> None:
    """One amount a line, full-width digits too; a line that is not an amount is refused
    and the day goes on; an empty line ends it (the amount after it is never charged)."""
    card, journal = new_card(tmp_path / "c.json", "50.00"), tmp_path / "pos.db"
    r = ykt(
        "pos",
        "--card",
        str(card),
        "--journal",
        str(journal),
        "--json",
        stdin="3\n１２.５０\n1.5e3\n0.80\n\n9.99\n",
    )
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["ok"], d["amount_fen"], d["source"]) for d in docs] == [
        (True, 300, "ep"),
        (True, 1_250, "ep"),
        (True, 80, "ep"),
    ]
    assert [d["balance_fen"] for d in docs] == [4_700, 3_450, 3_370]
    assert [d["terminal_seq"] for d in docs] == [1, 2, 3] and all(d["journaled"] for d in docs)
    assert "'1.5e3' is not an amount in yuan" in r.stderr and r.returncode == 1
    assert balance(card) == 3_370
    with Journal(journal) as j:
        assert j.totals()[SETTLED] == (3, 1_630)


def test_insufficient_balance_is_refused_in_words_and_nothing_is_taken(tmp_path: Path) -> None:
    card, journal = new_card(tmp_path / "c.json", "5.00"), tmp_path / "pos.db"
    r = ykt("pos", "--card", str(card), "--amount", "20", "--journal", str(journal))
    assert r.returncode == 1
    assert "REFUSED ¥20.00: insufficient balance" in r.stdout and "¥5.00" in r.stdout
    assert "9401" not in r.stdout + r.stderr and "SW" not in r.stdout
    assert "Traceback" not in r.stderr
    assert balance(card) == 500
    assert json.loads(card.read_text())["state"]["offline_atc"] == 0
    with Journal(journal) as j:
        assert j.rows() == []


def test_electronic_cash_sale_on_a_resident_card(tmp_path: Path) -> None:
    card, journal = tmp_path / "resident.json", tmp_path / "pos.db"
    made = ykt(
        "sim", "new-chip-card", "--kind", "resident", "--out", str(card), "--ec-balance", "30"
    )
    assert made.returncode == 0, made.stderr
    r = ykt("pos", "--card", str(card), "--amount", "7", "--pay", "ec", "--journal", str(journal))
    assert r.returncode == 0, r.stderr
    assert "Electronic Cash" in r.stdout and "¥23.00" in r.stdout and "TC " in r.stdout
    assert "Electronic Cash sale 1 journaled" in r.stdout
    assert purses(card) == (2_300, 5_000)
    with Journal(journal) as j:
        assert j.rows() == []  # no e-purse row: the sale is an EC row
        (ec,) = j.ec_rows()
        assert (ec.state, ec["amount"], ec["ec_balance_after"]) == ("settled", 700, 2_300)
        assert ec["cryptogram"] is not None and j.pending_upload() == 1
    auto = ykt(
        "pos",
        *("--card", str(card), "--amount", "25", "--pay", "auto", "--json"),
        *("--journal", str(tmp_path / "auto.db")),
    )
    doc = json.loads(auto.stdout)
    assert (doc["source"], doc["amount_fen"], doc["balance_fen"]) == ("ep", 2_500, 2_500)
    assert doc["journaled"] and "ec: balance ¥23.00 short of ¥25.00" in doc["attempts"]
    assert purses(card) == (2_300, 2_500)


def purses(card: Path) -> tuple[int, int]:
    """(EC, EP) balances of a resident card file, as ``ykt read`` sees them."""
    apps = json.loads(ykt("read", "--card", str(card), "--json").stdout)["applications"]
    return apps[0]["emv"]["ec"]["balance_fen"], apps[1]["epurse"]["balance_fen"]


def test_a_sale_is_uploaded_to_the_gateway(tmp_path: Path, gateway) -> None:  # type: ignore[no-untyped-def]
    card, journal = new_card(tmp_path / "c.json", "50.00"), tmp_path / "pos.db"
    token = tmp_path / "token"
    write_private(token, gateway.register("310000000101", "corner-shop", role="pos") + "\n")
    args = ["pos", "--card", str(card), "--journal", str(journal), "--gateway", gateway.url]
    r = ykt(*args, "--token-file", str(token), stdin="4.20\n6.00\n")
    assert r.returncode == 0, r.stderr
    assert "0 awaiting upload" in r.stdout and "upload failed" not in r.stderr
    assert gateway.count("txn") == 2
    with Journal(journal) as j:
        assert j.pending_upload() == 0 and j.totals()[SETTLED] == (2, 1_020)


def test_an_unreachable_gateway_keeps_the_sale_for_later(tmp_path: Path) -> None:
    card, journal = new_card(tmp_path / "c.json", "50.00"), tmp_path / "pos.db"
    args = ["pos", "--card", str(card), "--journal", str(journal), "--amount", "1"]
    r = ykt(*args, "--gateway", "http://127.0.0.1:9", env={"YKT_POS_TOKEN": "t"})
    assert r.returncode == 0, r.stderr
    assert "upload failed, 1 sale(s) kept for the next upload" in r.stderr
    assert "1 awaiting upload" in r.stdout


def test_a_gateway_without_a_token_is_refused_before_any_sale(tmp_path: Path) -> None:
    card, journal = new_card(tmp_path / "c.json", "50.00"), tmp_path / "pos.db"
    r = ykt(
        "pos",
        *("--card", str(card), "--journal", str(journal), "--amount", "1"),
        *("--gateway", "http://127.0.0.1:9"),
        env={"YKT_POS_TOKEN": ""},
    )
    assert r.returncode != 0 and "--token-file PATH or $YKT_POS_TOKEN" in r.stderr
    assert balance(card) == 5_000


def test_an_ec_sale_is_journaled_uploaded_and_cleared(tmp_path: Path, gateway, clearing) -> None:  # type: ignore[no-untyped-def]
    card, journal = tmp_path / "resident.json", tmp_path / "pos.db"
    made = ykt(
        "sim", "new-chip-card", "--kind", "resident", "--out", str(card), "--ec-balance", "30"
    )
    assert made.returncode == 0, made.stderr
    token = tmp_path / "token"
    write_private(token, gateway.register("310000000101", "corner-shop", role="pos") + "\n")
    r = ykt(
        *("pos", "--card", str(card), "--amount", "7", "--pay", "ec"),
        *("--journal", str(journal), "--gateway", gateway.url, "--token-file", str(token)),
    )
    assert r.returncode == 0, r.stderr
    assert "0 awaiting upload" in r.stdout and "upload failed" not in r.stderr
    assert purses(card) == (2_300, 5_000)
    with Journal(journal) as j:
        (row,) = j.ec_rows()
        assert row.state == SETTLED and row.uploaded_at is not None and j.pending_upload() == 0
    assert gateway.count("ec_txn") == 1 and gateway.count("txn") == 0
    fwd = Forwarder(gateway.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 1 and fwd.stats.accepted == 1, clearing.ledger.rejections()
    totals = clearing.settlement()["totals"]
    assert (totals["ec_sales"], totals["ec_amount"], totals["purchases"]) == (1, 700, 0)
    (issuer,) = clearing.settlement()["by_issuer"]
    assert issuer["issuer_id"] == "EC" + row["pan"][:6] and issuer["issuer_net"] == -700
    # the same sale with its amount altered, under a fresh sequence number: clearing refuses
    with gateway.db.tx() as cur:
        cur.execute("SELECT payload FROM outbox WHERE kind = 'ec_purchase'")
        record = json.loads(cur.fetchone()[0])
    altered = {**record, "amount": 70, "ec_seq": 2, "key": "E:310000000101:2"}
    (result,) = clearing.ledger.post("gw-test", [altered])
    assert result["status"] == "rejected" and "amount" in result["reason"]
    assert clearing.ledger.stats()["accepted"] == 1
