"""The agent bank: payment batches of rosters sent to finance (CSV and fixed width), the
bank's result file, tracking to paid / failed / overdue past 3 working days, re-issue of
failed lines, and funds per item apart from top-ups - on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import httpx
import pytest

from gateway.storage import open_storage
from gateway.subsidy import bank
from terminal.text import FileError
from tests.cli_kit import ykt_here
from tests.conftest import FrozenClock
from tests.gateway_fixtures import BANK_KEY, race_held, start_gateway
from tests.subsidy_kit import (
    PEOPLE,
    Centre,
    admin,
    answer,
    bank_batch,
    bank_result,
    card_for,
    import_roster,
    payment_file,
    post_result,
    send_roster,
    sent_batch,
    sent_roster,
)


def test_the_payment_file_lists_each_line_once_with_totals(gateway, centre):
    sent_roster(gateway, centre)
    got = bank_batch(gateway)
    ref = got["batch"]
    assert (got["lines"], got["total_fen"], got["skipped"]) == (3, 1_603_050, [])
    text = payment_file(gateway, ref).decode()
    day = date.today().strftime("%Y%m%d")
    (z, li, w) = centre.records
    assert text.splitlines() == [
        f"H,{ref},{day},3,1603050",
        f"D,1,{z.card_number},张三,{z.holder.id_number},1500000,{ref}-00001",
        f"D,2,{li.card_number},李四,{li.holder.id_number},45000,{ref}-00002",
        f"D,3,{w.card_number},王小五,{w.holder.id_number},58050,{ref}-00003",
        "T,3,1603050",
    ]
    fixed = payment_file(gateway, ref, "fixed").split(b"\r\n")
    assert [len(x) for x in fixed] == [52, 131, 131, 131, 24, 0]
    assert fixed[1][26:30].decode("gbk") == "张三" and fixed[1][26:66].endswith(b" " * 36)
    assert fixed[1][84:99] == b"000000001500000"
    assert fixed[4] == b"T00000003000000001603050"
    # nothing is sent twice: every line is at the bank now
    r = admin(gateway, "POST", "/v1/admin/subsidies/bank/batches", json={"actor": "finance"})
    assert r.status_code == 409 and r.json()["error"] == "nothing_to_send", r.text


def test_result_failed_lines_reissued_and_paid(gateway, centre):
    ref, text = sent_batch(gateway, centre)
    r = post_result(gateway, bank_result(text, failed={2: "账户已冻结"}))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "batch": ref,
        "paid": 2,
        "paid_fen": 1_558_050,
        "failed": [{"reference": f"{ref}-00002", "reason": "账户已冻结"}],
    }
    track = admin(gateway, "GET", "/v1/admin/subsidies/bank/tracking").json()
    assert [x["state"] for x in track["lines"]] == ["paid", "failed", "paid"]
    # the ¥15,000 line is paid through the bank
    report = admin(gateway, "GET", "/v1/admin/subsidies/report").json()
    by_item = {x["item"]: x for x in report["lines"]}
    assert by_item["H31"]["status"] == "paid" and by_item["H31"]["channel"] == "bank"
    assert by_item["H18"]["status"] == "pending"
    again = bank_batch(gateway, reissue_of=ref)
    assert (again["lines"], again["total_fen"], again["reissue_of"]) == (1, 45_000, ref)
    text2 = payment_file(gateway, again["batch"]).decode()
    assert post_result(gateway, bank_result(text2)).status_code == 200
    funds = admin(gateway, "GET", "/v1/admin/subsidies/funds").json()
    assert funds["subsidy_totals"]["bank_paid_fen"] == 1_603_050
    assert funds["subsidy_totals"]["unpaid_fen"] == 0
    assert funds["top_ups"] == {"loads": 0, "amount_fen": 0}
    trail = gateway.db
    with trail.tx() as cur:
        cur.execute(
            "SELECT e.action FROM subsidy_line_events e JOIN subsidy_lines l ON l.id = e.line_id"
            " WHERE l.item = 'H18' ORDER BY e.id"
        )
        assert [x[0] for x in cur.fetchall()] == [
            "bank_sent",
            "bank_failed",
            "bank_sent",
            "bank_paid",
        ]


def test_a_line_is_overdue_three_working_days_after_it_was_sent(gateway, centre):
    sent_roster(gateway, centre)
    ref = bank_batch(gateway)["batch"]
    with gateway.db.tx() as cur:  # sent on Friday 2026-09-25, before 国庆
        cur.execute("UPDATE subsidy_bank_lines SET sent_on = '2026-09-25'")
    cal = bank.Calendar(
        frozenset(date(2026, 10, d) for d in range(1, 9)), frozenset({date(2026, 9, 27)})
    )
    # working days after Fri 25th: Sun 27th (调休), Mon 28th, Tue 29th -> due 29th
    assert cal.add_working_days(date(2026, 9, 25), 3) == date(2026, 9, 29)
    on_time = bank.tracking(gateway.db, today=date(2026, 9, 29), calendar=cal, batch=ref)
    late = bank.tracking(gateway.db, today=date(2026, 9, 30), calendar=cal, batch=ref)
    assert on_time["totals"]["sent"]["lines"] == 3 and on_time["totals"]["overdue"]["lines"] == 0
    assert late["totals"]["overdue"] == {"lines": 3, "amount_fen": 1_603_050}
    assert late["lines"][0]["due_on"] == "2026-09-29"


def test_holiday_file(tmp_path):
    f = tmp_path / "holidays.txt"
    f.write_text("# 2026 国庆\n2026-10-01\n2026-10-02  # 国庆\n+2026-10-10\n", encoding="utf-8")
    cal = bank.load_calendar(f)
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 5)
    assert cal.is_working(date(2026, 10, 10)) and not cal.is_working(date(2026, 10, 11))


def test_kiosk_pickup_leaves_bank_lines_alone_and_funds_keep_top_ups_apart(gateway, centre):
    sent_roster(gateway, centre)
    bank_batch(gateway)
    card = card_for(centre.records[1], balance=0)
    kiosk, _ = centre.kiosk(card=card)
    got = kiosk.pick_up(answer(1))
    assert got.paid == [] and card.balance == 0 and gateway.count("loads") == 0
    kiosk.top_up(5_000)
    funds = admin(gateway, "GET", "/v1/admin/subsidies/funds").json()
    assert funds["top_ups"] == {"loads": 1, "amount_fen": 5_000}
    assert funds["subsidy_totals"]["kiosk_paid_fen"] == 0
    assert funds["subsidy_totals"]["at_bank_fen"] == 1_603_050


def test_result_file_on_the_command_line_needs_the_bank_key_file(capsys, gateway, centre, tmp_path):
    sent_roster(gateway, centre)
    db = ["--db", gateway.db.url]
    rc, out, _ = ykt_here(capsys, "subsidy", "bank", "batch", "--by", "孙财政", *db)
    ref = out.split()[1].rstrip(":")
    assert rc == 0 and ref.startswith("B")
    pay = tmp_path / "代发.csv"
    assert ykt_here(capsys, "subsidy", "bank", "file", ref, "--out", str(pay), *db)[0] == 0
    result = tmp_path / "回盘.csv"
    result.write_bytes(bank_result(pay.read_text(encoding="utf-8"), failed={2: "账户已冻结"}))
    secret = bytes(range(16)).hex()
    keys = tmp_path / "bank.toml"
    keys.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{secret}"\n')
    keys.chmod(0o640)
    cmd = ["subsidy", "bank", "result", str(result), "--by", "孙财政", "--bank-key", str(keys)]
    rc, _, err = ykt_here(capsys, *cmd, *db)  # the right key, but the group may read it
    assert rc == 1 and "bank.toml:1: is open to group or others (mode 0640)" in err
    assert gateway.count("subsidy_bank_results") == 0
    keys.chmod(0o600)
    keys.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{secret[:-2]}"\n')
    rc, _, err = ykt_here(capsys, *cmd, *db)  # a key one hex digit short: refused, not shown
    assert rc == 1 and "bank.toml:3: key must be 16 to 64 bytes of hex" in err
    assert secret[:20] not in err
    keys.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{"00" * 16}"\n')
    rc, _, err = ykt_here(capsys, *cmd, *db)
    assert rc == 1 and "MAC is not the agent bank's" in err
    keys.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{secret}"\n')
    rc, out, _ = ykt_here(capsys, *cmd, *db)
    assert rc == 0 and "2 paid (¥15580.50), 1 failed" in out and "账户已冻结" in out
    assert bank.load_bank_key(keys).key == bytes(range(16)) and secret not in repr(
        bank.load_bank_key(keys)
    )


def test_several_banks_each_batch_to_one_and_checked_with_its_key(
    capsys, gateway, centre, tmp_path
):
    """Two agent banks in a banks file: rules send 民政局's lines to ICBC and 朱仙镇's to RCC,
    a line under no rule goes with the batch that takes it; each batch records its bank, and
    its result file is taken with that bank's key only."""
    zhang, li, wang = centre.records
    head = "name,id_number,card_number,item,amount_fen,period,township,department"
    rows = [
        f"张三,{zhang.holder.id_number},{zhang.card_number},H21,58050,2026-10,城关镇,民政局",
        f"李四,{li.holder.id_number},{li.card_number},H18,45000,2026-10,朱仙镇,",
        f"王小五,{wang.holder.id_number},{wang.card_number},H18,30000,2026-10,,",
    ]
    doc = import_roster(gateway, ("\n".join([head, *rows]) + "\n").encode())
    send_roster(gateway, doc["roster"]["id"])
    keys = {"ICBC": bytes(range(16)), "RCC": bytes(range(50, 82))}
    for code, key in keys.items():
        path = tmp_path / f"{code.lower()}.toml"
        path.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{key.hex()}"\n')
        path.chmod(0o600)
    banks = tmp_path / "banks.toml"
    banks.write_text(
        'default = "ICBC"\n[banks.ICBC]\nname = "工商银行"\nkey_file = "icbc.toml"\n'
        '[banks.RCC]\nname = "农信社"\nkey_file = "rcc.toml"\nformat = "fixed"\n'
        '[departments]\n"民政局" = "ICBC"\n[townships]\n"朱仙镇" = "RCC"\n'
    )
    db = ["--db", gateway.db.url]
    batch = ("subsidy", "bank", "batch", "--by", "孙财政", "--banks", str(banks), "--json")
    rc, out, _ = ykt_here(capsys, *batch, "--bank", "RCC", *db)
    rcc = json.loads(out)
    assert (rc, rcc["bank"], rcc["lines"], rcc["total_fen"]) == (0, "RCC", 2, 75_000)
    assert [s["reason"] for s in rcc["skipped"]] == ["its rule sends it to agent bank ICBC"]
    rc, out, _ = ykt_here(capsys, *batch, *db)
    icbc = json.loads(out)
    assert (icbc["bank"], icbc["lines"], icbc["total_fen"]) == ("ICBC", 1, 58_050)
    assert bank.load_banks(banks).bank("RCC").format == "fixed"
    text = payment_file(gateway, rcc["batch"]).decode()
    result = tmp_path / "回盘.csv"
    cmd = ("subsidy", "bank", "result", str(result), "--by", "孙财政", "--banks", str(banks))
    result.write_bytes(bank_result(text, key=bank.BankKey("hmac-sm3", "line", keys["ICBC"])))
    rc, _, err = ykt_here(capsys, *cmd, *db)
    assert rc == 1 and "the batch went to agent bank RCC, 农信社" in err
    assert gateway.count("subsidy_bank_results") == 0
    result.write_bytes(bank_result(text, key=bank.BankKey("hmac-sm3", "line", keys["RCC"])))
    rc, out, _ = ykt_here(capsys, *cmd, *db)
    assert rc == 0 and "2 paid (¥750.00), 0 failed" in out


def test_a_banks_file_names_only_configured_banks(tmp_path):
    key = tmp_path / "a.toml"
    key.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{"11" * 16}"\n')
    key.chmod(0o600)
    banks = tmp_path / "banks.toml"
    banks.write_text('[banks.A]\nkey_file = "a.toml"\n[townships]\n"城关镇" = "B"\n')
    with pytest.raises(FileError, match=r"banks.toml:4: townships.城关镇 names no configured"):
        bank.load_banks(banks)
    banks.write_text('default = "B"\n[banks.A]\nkey_file = "a.toml"\n')
    with pytest.raises(FileError, match=r"banks.toml:1: default must be one of the banks \(A\)"):
        bank.load_banks(banks)
    banks.write_text('[banks.A]\nkey_file = "a.toml"\n')
    assert bank.load_banks(banks).bank(None).code == "A"


def test_two_result_files_deadlocked_on_postgres_one_imports_the_other_is_refused(
    pg_cluster, clock: FrozenClock, tmp_path: Path
):
    """The bank's result file for one batch arrives twice, its lines in another order
    (1 2 3 and 3 2 1), and two operators import both at once. A third connection holds line
    2 until both imports wait on it: each has marked its first line and waits for the
    other's, a deadlock PostgreSQL breaks by rolling one back. That one runs again and gets
    the rule's answer (409 ``already_settled``), not a storage error; every line is paid once."""
    gw = start_gateway(open_storage(pg_cluster.new_database()), clock)
    centre = Centre(gw, clock)
    try:
        centre.issue(PEOPLE)
        ref, text = sent_batch(gw, centre)
        head, *lines, total = bank_result(text, key=None).decode().splitlines()
        files = {
            by: BANK_KEY.signed("\n".join([head, *order, total]).encode() + b"\n")
            for by, order in (("finance-a", lines), ("finance-b", lines[::-1]))
        }
        answers: dict[str, httpx.Response] = {}

        def send(by: str) -> None:
            answers[by] = post_result(gw, files[by], by=by)

        threads = [threading.Thread(target=send, args=(by,)) for by in files]
        race_held(
            gw,
            threads,
            lambda cur: cur.execute("SELECT id FROM subsidy_bank_lines WHERE seq = 2 FOR UPDATE"),
            waiting=2,
            what="the imports at line 2",
        )
        said = {by: r.text for by, r in answers.items()}
        assert sorted(r.status_code for r in answers.values()) == [200, 409], said
        assert [r.json().get("error") for r in answers.values()].count("already_settled") == 1
        (lost,) = (r for r in answers.values() if r.status_code == 409)
        assert "paid already" in lost.json()["reason"] or "meanwhile" in lost.json()["reason"]
        with gw.db.tx() as cur:
            cur.execute("SELECT COUNT(*), MIN(imported_by) FROM subsidy_bank_results")
            imports, winner = cur.fetchone()
            cur.execute("SELECT state, COUNT(*) FROM subsidy_bank_lines GROUP BY state")
            states = dict(cur.fetchall())
            cur.execute("SELECT COUNT(*) FROM subsidy_line_events WHERE action = 'bank_paid'")
            paid_events = cur.fetchone()[0]
        assert imports == 1 and answers[winner].json()["batch"] == ref
        assert states == {"paid": 3} and paid_events == 3
    finally:
        centre.close()
        gw.server.stop()
        gw.db.close()
