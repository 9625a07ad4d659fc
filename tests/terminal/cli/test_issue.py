"""``ykt issue`` and ``ykt subsidy check`` run in process against files in a temp dir."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.cards import CarryRules
from gateway.registry import SqliteCardRegistry
from simulators.epurse_card import SoftEPurseCard
from terminal.epurse import flows
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.load_host import HttpLoadHost
from terminal.roles.registry import NumberBlock, serial_of
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient
from terminal.words import set_lang
from tests.cli_kit import ykt_here
from tests.gateway_fixtures import start_gateway
from tests.issuance_kit import SHANGHAI, VALID_ID

LI = "110101199003074514"
DESKS = ("310000000080", "310000000081")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The desk works offline from a block of numbers it leased earlier."""
    monkeypatch.chdir(tmp_path)
    desk = SqliteCardRegistry("ykt-cards.db")
    desk.hold(NumberBlock(1, SHANGHAI, "310000000080", 10_000_001, 10_000_100))
    desk.close()
    return tmp_path


def test_a_desk_without_numbers_refuses_and_two_desks_share_none(capsys, gateway) -> None:  # type: ignore[no-untyped-def]
    who = ["--name", "李四", "--id-number", LI]
    rc, _, err = ykt_here(capsys, "issue", *who, "--registry", "b.db", "--out", "x.json")
    assert rc == 1 and "holds no unused card number" in err and "--lease" in err
    tokens = [gateway.register(t, "card-centre", role="issuance") for t in DESKS]
    a = ["--gateway", gateway.url, "--token", tokens[0], "--registry", "a.db"]
    b = ["--gateway", gateway.url, "--terminal-id", DESKS[1], "--registry", "b.db"]
    rc, out, _ = ykt_here(
        capsys, "issue", "--name", "张三", "--id-number", VALID_ID, *a, "--out", "a.json"
    )
    assert rc == 0 and "issued card 3100029000010000001" in out
    rc, out, _ = ykt_here(capsys, "issue", *who, *b, "--token", tokens[1], "--out", "b.json")
    assert rc == 0 and "issued card 3100029000010000101" in out  # after desk A's block
    rc, _, err = ykt_here(capsys, "issue", "--push", *b, "--token", tokens[0])
    assert rc == 1 and f"this book belongs to desk {DESKS[1]}, but the token is desk" in err
    rc, _, err = ykt_here(
        capsys,
        "issue",
        "--name",
        "张三",
        "--id-number",
        VALID_ID,
        *b,
        "--token",
        tokens[1],
        "--out",
        "c.json",
    )
    assert rc == 1 and "one person, one card" in err and "3100029000010000001" in err
    assert gateway.count("cards") == 2


def test_issue_one_card_then_refuse_the_same_person(capsys, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    rc, out, _ = ykt_here(
        capsys, "issue", "--name", "张三", "--id-number", VALID_ID, "--out", "a.json"
    )
    assert rc == 0 and "issued card 3100029000010000001 to 张三" in out
    rc, out, _ = ykt_here(capsys, "read", "--card", "a.json", "--json")
    assert json.loads(out)["holder"]["id_number"] == VALID_ID
    rc, _, err = ykt_here(
        capsys, "issue", "--name", "张三", "--id-number", VALID_ID, "--out", "b.json"
    )
    assert rc == 1 and "already holds active card 3100029000010000001" in err
    assert not (in_tmp / "b.json").exists()  # the untouched blank card file is not left over


def test_batch_issue_reports_every_row(capsys, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    (in_tmp / "people.csv").write_text(
        "name,id_number,card_kind,pin\n"
        f"张三,{VALID_ID},1,\n"
        "王五,110105194912310021,1,\n"
        f"李四,{LI},1,2468\n"
        f"张三,{VALID_ID},1,\n",
        encoding="utf-8",
    )
    rc, out, err = ykt_here(
        capsys, "issue", "--batch", "people.csv", "--out-dir", "cards", "--report", "r.json"
    )
    assert rc == 1 and "2 issued, 2 refused" in out and "issuing [" in err
    report = json.loads((in_tmp / "r.json").read_text(encoding="utf-8"))
    assert [(e["row"], e["status"]) for e in report] == [
        (2, "ok"),
        (3, "refused"),
        (4, "ok"),
        (5, "refused"),
    ]
    assert "check character" in report[1]["reason"] and "DuplicateCard" in report[3]["reason"]
    files = sorted(p.name for p in (in_tmp / "cards").iterdir())
    assert files == [f"{report[0]['card_number']}.json", f"{report[2]['card_number']}.json"]
    li = SoftEPurseCard.load(in_tmp / "cards" / files[1])
    assert li.state.pin == "2468"


def test_an_offline_desk_refuses_to_replace_a_card_with_a_balance(capsys, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    ykt_here(capsys, "issue", "--name", "张三", "--id-number", VALID_ID, "--out", "old.json")
    number = "3100029000010000001"
    SqliteCardRegistry("ykt-cards.db").report_balance(number, 1_234, datetime.now())
    rc, _, err = ykt_here(capsys, "issue", "--replace", number, "--out", "new.json")
    assert rc == 1 and "balance of 1234 fen is carried only through the gateway" in err
    assert not (in_tmp / "new.json").exists()  # no card work
    assert SqliteCardRegistry("ykt-cards.db").get(number).replaced_by is None


def test_replace_a_lost_card_carries_its_balance_through_the_gateway(  # type: ignore[no-untyped-def]
    capsys, in_tmp: Path, db
) -> None:
    gw = start_gateway(db, carry=CarryRules(settling=timedelta(0)))
    try:
        token = gw.register(DESKS[0], "card-centre", "issuance")
        desk = ["--gateway", gw.url, "--token", token, "--registry", "online.db"]
        who = ["--name", "张三", "--id-number", VALID_ID]
        assert ykt_here(capsys, "issue", *who, *desk, "--out", "old.json")[0] == 0
        old = SoftEPurseCard.load("old.json")
        session = TerminalSession(SimReader(old))
        info = session.run(flows.select())
        with GatewayClient(gw.url, gw.register("310000000090", "card-centre", "kiosk")) as kc:
            load = flows.load(
                info, bytes.fromhex("310000000090"), 1_234, session.now(), HttpLoadHost(kc)
            )
            session.run(load)
        number = "3100029000010000001"

        rc, out, err = ykt_here(
            capsys, "issue", "--replace", number, *desk, "--out", "new.json", "--json"
        )
        assert rc == 0, err
        result = json.loads(out)
        assert rc == 0 and result["carried_fen"] == 1_234 and result["balance_fen"] == 1_234
        assert result["record"]["replaces"] == number
        assert serial_of(number) in Hotlist("ykt-hotlist.db")
        rc, out, _ = ykt_here(capsys, "read", "--card", "new.json", "--json")
        assert json.loads(out)["balance_fen"] == 1_234
        # journaled at the desk and confirmed at the gateway, nothing open
        journal = Journal("desk-journal.db")
        [row] = journal.load_rows()
        assert (row.state, row["amount"], row["purpose"]) == ("settled", 1_234, "carried balance")
        with db.tx() as cur:
            cur.execute("SELECT state FROM loads WHERE reference = ?", (row.reference,))
            assert cur.fetchone()[0] == "confirmed"

        rc, _, _ = ykt_here(
            capsys, "issue", "--export", "records.json", "--since", "0", "--registry", "online.db"
        )
        records = json.loads((in_tmp / "records.json").read_text(encoding="utf-8"))
        states = {r["card_number"]: r["state"] for r in records}
        assert states == {number: "replaced", result["record"]["card_number"]: "active"}
    finally:
        gw.server.stop()


def test_subsidy_check_reports_rejections_and_writes_the_masked_listing(
    capsys, in_tmp: Path
) -> None:  # type: ignore[no-untyped-def]
    (in_tmp / "roster.csv").write_text(
        "name,id_number,card_number,item,amount_fen,period\n"
        f"张三丰,{VALID_ID},3100029000010000001,H18,20000,2026-10\n"
        f"李四,{LI},3100029000010000002,E99,100,2026-10\n",
        encoding="utf-8",
    )
    rc, out, _ = ykt_here(capsys, "subsidy", "check", "roster.csv", "--publication", "pub.csv")
    assert rc == 1 and "1 accepted (¥200.00), 1 rejected" in out
    assert "row 3: unknown subsidy item 'E99'" in out
    listing = (in_tmp / "pub.csv").read_text(encoding="utf-8")
    assert "张*丰,110105********002X,农村分散供养五保户补助资金,200.00,2026-10" in listing
    rc, out, _ = ykt_here(capsys, "subsidy", "check", "roster.csv", "--json")
    assert json.loads(out)["rejections"][0]["row"] == 3


def test_a_refusal_is_worded_by_its_code_in_the_clerks_language(capsys) -> None:  # type: ignore[no-untyped-def]
    who = ["--name", "李四", "--id-number", LI, "--registry", "b.db", "--out", "x.json"]
    try:
        rc, _, err = ykt_here(capsys, "--lang", "zh", "issue", *who)
    finally:
        set_lang("en")
    assert (rc, err.strip()) == (
        1,
        "ykt issue：未发卡：本发卡台没有可用的卡号，请联网向卡务中心申领号段"
        "（ykt issue --lease N --gateway URL）",
    )
    assert not Path("x.json").exists()
    desk = SqliteCardRegistry("b.db")
    try:
        assert desk.numbers_left(SHANGHAI) == 0
    finally:
        desk.close()
