"""``ykt kiosk``, ``ykt subsidy import/review/approve/report`` and ``ykt issue --push`` in
process against a real gateway: receipts, limits, the purse ceiling, 挂失, subsidy pickup."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway import cards
from simulators.epurse_card import SoftEPurseCard
from terminal.journal import SETTLED, Journal
from terminal.words import set_lang
from tests.cli_kit import ykt_here
from tests.subsidy_kit import PEOPLE, Centre, card_for, holder_row

KIOSK = "310000000090"


@pytest.fixture
def kiosk_env(gateway, clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    centre = Centre(gateway, clock)
    (record,) = centre.issue(PEOPLE[:1])
    card = card_for(record, balance=1_000)
    card.save(tmp_path / "card.json")
    token = gateway.register(KIOSK, "card-centre", role="kiosk")
    yield record, ["--card", "card.json", "--gateway", gateway.url, "--token", token]
    centre.close()


def balance() -> int:
    return SoftEPurseCard.load("card.json").balance


def test_balance_and_top_up_print_receipts_and_respect_the_limits(
    capsys, gateway, kiosk_env, clock
):
    record, opts = kiosk_env
    masked = record.card_number[:4] + "*" * 11 + record.card_number[-4:]
    rc, out, _ = ykt_here(capsys, "kiosk", "balance", "--card", "card.json")
    assert rc == 0 and "BALANCE" in out and masked in out and "¥10.00" in out
    assert record.card_number not in out

    rc, out, _ = ykt_here(capsys, "kiosk", "top-up", "50", *opts)
    assert rc == 0 and balance() == 6_000
    lines = {line[:12].strip(): line[12:].strip() for line in out.splitlines()[3:10]}
    assert lines["Terminal"] == KIOSK and lines["Card"] == masked
    assert lines["Amount"] == "¥50.00" and lines["Balance"] == "¥60.00"
    with gateway.db.tx() as cur:
        cur.execute("SELECT tac, reference FROM loads WHERE state = 'confirmed'")
        tac, reference = cur.fetchone()
    assert lines["Auth code"] == tac and lines["Reference"] == reference
    assert "TAC" not in out
    assert lines["Time"].startswith(f"{clock.now:%Y-%m-%d %H:%M}")

    rc, _, err = ykt_here(capsys, "kiosk", "top-up", "995", *opts)
    assert rc == 1 and "holds ¥60.00 and at most ¥1000.00: top up ¥940.00 or less" in err
    rc, _, err = ykt_here(capsys, "--lang", "zh", "kiosk", "top-up", "995", *opts)
    set_lang("en")
    assert rc == 1 and "卡内余额 ¥60.00，上限 ¥1000.00：最多可充 ¥940.00" in err
    assert "holds" not in err and balance() == 6_000
    rc, _, err = ykt_here(capsys, "kiosk", "top-up", "0.50", *opts)
    assert rc == 1 and "between ¥1.00 and ¥1000.00" in err
    (Path("kiosk.toml")).write_text("[kiosk]\nmax_top_up_fen = 2000\n", encoding="utf-8")
    rc, _, err = ykt_here(capsys, "kiosk", "top-up", "30", *opts, "--config", "kiosk.toml")
    assert rc == 1 and "between ¥1.00 and ¥20.00" in err
    rc, out, _ = ykt_here(capsys, "kiosk", "top-up", "12.34", *opts, "--json")
    assert rc == 0 and json.loads(out)["balance_fen"] == 7_234 == balance()
    assert gateway.count("loads") == 2
    with Journal("kiosk-journal.db") as journal:  # the quick command journals like ykt run
        rows = journal.load_rows()
        assert [(r.state, r["amount"]) for r in rows] == [(SETTLED, 5_000), (SETTLED, 1_234)]
        assert journal.open_loads() == []

    rc, out, _ = ykt_here(capsys, "--lang", "zh", "kiosk", "top-up", "1", *opts)
    set_lang("en")
    with gateway.db.tx() as cur:
        cur.execute("SELECT tac FROM loads WHERE state = 'confirmed' AND amount = 100")
        (tac,) = cur.fetchone()
    labelled = [line.split() for line in out.splitlines() if line.startswith("交易验证码")]
    assert rc == 0 and labelled == [["交易验证码", tac]] and balance() == 7_334


def test_subsidy_roster_from_import_to_pickup_on_the_command_line(
    capsys, gateway, kiosk_env, tmp_path
):
    record, opts = kiosk_env
    db = ["--db", gateway.db.url]
    holder = holder_row(record)
    Path("roster.csv").write_text(
        "name,id_number,card_number,item,amount_fen,period\n"
        f"{holder},H18,20000,2026-10\n"
        f"{holder},E99,100,2026-10\n"
        f"{holder},H17,0,2026-10\n",
        encoding="utf-8",
    )
    rc, out, _ = ykt_here(capsys, "subsidy", "import", "roster.csv", "--by", "王会计", *db)
    assert rc == 1 and "3 row(s): 1 accepted (¥200.00), 2 rejected" in out
    assert "row 3: unknown subsidy item 'E99'" in out and "row 4: amount is zero" in out
    assert "roster #1 declared by 王会计: 1 line(s)" in out
    rc, _, err = ykt_here(capsys, "kiosk", "pickup", *opts)  # not interactive, no --holder
    assert rc == 2 and "the holder must type their ID number" in err
    with pytest.raises(SystemExit):  # argparse refuses a malformed answer
        ykt_here(capsys, "kiosk", "pickup", *opts, "--holder", "12345")
    assert "digits, the last may be X" in capsys.readouterr().err
    answer = ["--holder", record.holder.id_number]
    rc, out, _ = ykt_here(capsys, "kiosk", "pickup", *opts, *answer)
    assert rc == 0 and "1 line(s) await approval" in out and balance() == 1_000
    rc, _, err = ykt_here(capsys, "subsidy", "approve", "1", "--by", "李科长", *db)
    assert rc == 1 and "not reviewed yet: review it before approving" in err
    assert ykt_here(capsys, "subsidy", "review", "1", "--by", "赵审核", *db)[0] == 0
    rc, _, err = ykt_here(capsys, "subsidy", "approve", "1", "--by", "赵审核", *db)
    assert rc == 1 and "four eyes" in err
    rc, _, err = ykt_here(capsys, "subsidy", "approve", "1", "--by", "李科长", *db)
    assert rc == 1 and "never published (公示)" in err
    start = date.today() - timedelta(days=9)
    span = ["--from", str(start), "--to", str(start + timedelta(days=7))]
    rc, out, _ = ykt_here(capsys, "subsidy", "publish", "1", *span, "--by", "钱站长", *db)
    assert rc == 0 and "on display" in out
    rc, out, _ = ykt_here(capsys, "subsidy", "publication", "1", "--format", "html", *db)
    assert rc == 0 and "公示期" in out and record.card_number not in out
    rc, _, err = ykt_here(capsys, "subsidy", "approve", "1", "--by", "李科长", *db)
    assert rc == 1 and "no sign-off" in err
    sign = ["--signatures", "12", "--by", "钱站长"]
    assert ykt_here(capsys, "subsidy", "signoff", "1", *sign, *db)[0] == 0
    rc, out, _ = ykt_here(capsys, "subsidy", "approve", "1", "--by", "李科长", *db)
    assert rc == 0 and "roster #1 is approved (李科长)" in out
    rc, out, _ = ykt_here(capsys, "subsidy", "send", "1", "--by", "孙财政", *db)
    assert rc == 0 and "roster #1 is sent to finance (孙财政)" in out
    rc, out, _ = ykt_here(capsys, "subsidy", "show", "1", *db)
    assert [line.split()[2:5] for line in out.splitlines()[1:7]] == [
        ["declared", "by", "王会计"],
        ["reviewed", "by", "赵审核"],
        ["published", "by", "钱站长"],
        ["signed_off", "by", "钱站长"],
        ["approved", "by", "李科长"],
        ["sent_to_finance", "by", "孙财政"],
    ]
    rc, out, _ = ykt_here(capsys, "subsidy", "report", *db)
    assert "total: pending 1 (¥200.00)" in out

    right = record.holder.id_number
    wrong = right[:6] + ("19800102" if right[6:14] != "19800102" else "19750615") + right[14:]
    rc, _, err = ykt_here(capsys, "kiosk", "pickup", *opts, "--holder", wrong)
    assert rc == 1 and "does not match the holder" in err and wrong not in err
    assert balance() == 1_000
    rc, out, _ = ykt_here(capsys, "kiosk", "pickup", *opts, *answer)
    assert rc == 0 and "SUBSIDY" in out and "农村分散供养五保户补助资金 2026-10: ¥200.00" in out
    assert "paid 1 line(s), ¥200.00" in out and balance() == 21_000
    rc, out, _ = ykt_here(capsys, "kiosk", "pickup", *opts, *answer, "--json")
    assert json.loads(out)["message"] == "no subsidy to pick up" and balance() == 21_000
    rc, out, _ = ykt_here(capsys, "subsidy", "report", "--json", *db)
    doc = json.loads(out)
    assert doc["totals"]["paid"] == {"lines": 1, "amount_fen": 20_000}
    assert doc["totals"]["pending"] == {"lines": 0, "amount_fen": 0}
    rc, out, _ = ykt_here(capsys, "subsidy", "publication", "1", *db)
    assert out.splitlines()[1].startswith("1,2,,,张*,110101********")


def test_report_loss_on_the_command_line(capsys, gateway, kiosk_env):
    record, opts = kiosk_env
    no_card = opts[2:]
    rc, _, err = ykt_here(
        capsys, "kiosk", "report-loss", record.card_number, PEOPLE[1][1], *no_card
    )
    assert rc == 1 and "not the card holder" in err
    rc, out, _ = ykt_here(
        capsys, "kiosk", "report-loss", record.card_number, PEOPLE[0][1], *no_card
    )
    assert rc == 0 and "LOSS REPORT" in out and "version 1" in out
    book = cards.get_card(gateway.db, record.card_number)
    assert book is not None and book.state == "lost" and book.hotlist_version == 1
    rc, _, err = ykt_here(capsys, "kiosk", "top-up", "5", *opts)
    assert rc == 1 and "hotlist" in err
    # a validator started with the gateway syncs the hotlist first and refuses the card
    token = gateway.register("310000000201", "bus-co", role="validator")
    validator = ["validator", "--card", "card.json", "--taps", "2", "--journal", "v.db"]
    rc, out, _ = ykt_here(capsys, *validator, "--gateway", gateway.url, "--token", token)
    assert rc == 0 and "hotlist version 1 (1 card(s))" in out
    assert "card reported lost (挂失): blocked" in out and "0 green, 2 red" in out
    assert balance() == 1_000


def test_issue_pushes_its_book_to_the_gateway_once(capsys, gateway, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    token = gateway.register("310000000080", "card-centre", role="issuance")
    gw = ["--gateway", gateway.url, "--token", token]
    rc, _, err = ykt_here(
        capsys, "issue", "--name", "张三", "--id-number", PEOPLE[0][1], "--out", "a.json", *gw
    )
    assert rc == 0 and "1 record(s) sent (1 stored)" in err
    rc, _, err = ykt_here(capsys, "issue", "--push", *gw)
    assert rc == 0 and "0 record(s) sent (nothing new)" in err
    assert gateway.count("card_revisions") == 1
    (number,) = [r["card_number"] for r in json.loads(_export(capsys))]
    book = cards.get_card(gateway.db, number)
    assert book is not None and book.state == "active"


def _export(capsys: pytest.CaptureFixture[str]) -> str:
    rc, out, _ = ykt_here(capsys, "issue", "--export", "-")
    assert rc == 0
    return out
