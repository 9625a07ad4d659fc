"""专项治理: a roster with each case planted (what import refuses is planted in the database
directly); the audit finds each one and nothing else, stores each once, findings go to
整改 and are closed with a note; reports by item, township, department and month - on
SQLite and PostgreSQL."""

from __future__ import annotations

import io
from typing import Any

import openpyxl

from gateway import cards
from terminal.roles.registry import serial_of
from tests.subsidy_kit import (
    Centre,
    admin,
    bank_batch,
    bank_result,
    id_number,
    import_roster,
    payment_file,
    post_result,
    send_roster,
)

PEOPLE = [("张三", id_number(1)), ("李四", id_number(2)), ("王小五", id_number(3)),
          ("赵六", id_number(4))]  # fmt: skip
QIAN, SUN, ZHOU, WU = (id_number(n) for n in (5, 6, 7, 8))
STAFF_WANG, STAFF_ZHENG, STAFF_FENG = (id_number(n) for n in (20, 21, 22))


def _plant(db: Any, roster_id: int, row: int, name: str, who: str, card: str, item: str,
           amount: int, period: str, **extra: str) -> int:  # fmt: skip
    """A line inserted as is: the checks of import are not run."""
    cols = {"payee": "person", "member_name": "", "member_id": "", "household_id": "", **extra}
    with db.tx() as cur:
        cur.execute(
            "INSERT INTO subsidy_lines (roster_id, row_no, name, id_number, card_number,"
            " card_serial, item, item_name, category, amount_fen, period, payee, member_name,"
            " member_id, household_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            (roster_id, row, name, who, card, serial_of(card).hex().upper(), item, item,
             "planted", amount, period, cols["payee"], cols["member_name"], cols["member_id"],
             cols["household_id"]),
        )  # fmt: skip
        return int(cur.fetchone()[0])


def _second_card(db: Any, card_number: str, new_number: str) -> None:
    """Another active card for the same holder, as a desk that broke one person one card."""
    with db.tx() as cur:
        cur.execute(
            "INSERT INTO cards (card_number, serial, issuer_id, chip_id, name, id_type, id_number,"
            " card_kind, card_type, desk_state, carry_fen, desk_id, desk_revision, record,"
            " updated_at) SELECT ?, ?, issuer_id, NULL, name, id_type, id_number, card_kind,"
            " card_type, desk_state, carry_fen, desk_id, desk_revision, record, updated_at"
            " FROM cards WHERE card_number = ?",
            (new_number, serial_of(new_number).hex().upper(), card_number),
        )


def test_the_audit_finds_each_planted_case_and_nothing_else(gateway, clock, db):
    centre = Centre(gateway, clock)
    try:
        zhang, li, wang, zhao = centre.issue(PEOPLE)
        head = "name,id_number,card_number,item,amount_fen,period,village,township,department"
        rows = [
            f"张三,{zhang.holder.id_number},{zhang.card_number},H21,58050,2026-10,,城关镇,民政局",
            f"李四,{li.holder.id_number},{li.card_number},H18,45000,2026-10,,城关镇,民政局",
            f"王小五,{wang.holder.id_number},{wang.card_number},H18,30000,2026-10,东街社区,"
            "城关镇,民政局",
            f"赵六,{zhao.holder.id_number},{zhao.card_number},H18,20000,2026-10,,朱仙镇,民政局",
        ]
        doc = import_roster(gateway, ("\n".join([head, *rows]) + "\n").encode())
        rid = doc["roster"]["id"]
        assert doc["report"]["rejected"] == 0, doc
        send_roster(gateway, rid)
        ref = bank_batch(gateway)["batch"]
        # 赵六's card is lost after the batch went out; the bank credits it anyway
        cards.report_loss(db, zhao.card_number, zhao.holder.id_number, via="test")
        assert (
            post_result(gateway, bank_result(payment_file(gateway, ref).decode())).status_code
            == 200
        )
        lines = {x["period"] + x["card_number"]: x["line_id"] for x in
                 admin(gateway, "GET", "/v1/admin/subsidies/report").json()["lines"]}  # fmt: skip
        li_line = lines["2026-10" + li.card_number]
        wang_line = lines["2026-10" + wang.card_number]
        zhao_line = lines["2026-10" + zhao.card_number]
        card = zhang.card_number
        # what import refuses, planted
        _plant(db, rid, 101, "张三", zhang.holder.id_number, card, "H20", 50000, "2026-10")
        member = {"payee": "household", "member_name": "赵六", "member_id": zhao.holder.id_number}
        qian = _plant(db, rid, 102, "钱七", QIAN, card, "H02", 12000, "2026", **member,
                      household_id=QIAN)  # fmt: skip
        _plant(db, rid, 103, "孙八", SUN, card, "H02", 12000, "2026", **member, household_id=SUN)
        zhou = _plant(db, rid, 104, "周九", ZHOU, card, "H03", 9000, "2026", payee="household",
                      household_id=WU)  # fmt: skip
        wu = _plant(db, rid, 105, "吴十", WU, card, "H03", 9000, "2026", payee="household",
                    household_id=WU)  # fmt: skip
        cap = _plant(db, rid, 106, "赵六", zhao.holder.id_number, card, "H20", 200000, "2026-11")
        _second_card(db, li.card_number, li.card_number[:-4] + "9999")

        body = {
            "actor": "审计组",
            "deceased": [li.holder.id_number],
            "staff": [
                {"name": "王某", "id_number": STAFF_WANG, "village": "东街社区"},
                {"name": "郑十一", "id_number": STAFF_ZHENG, "relatives": [QIAN]},
                {"name": "冯十二", "id_number": STAFF_FENG, "household_id": WU},
            ],
        }
        r = admin(gateway, "POST", "/v1/admin/subsidies/audit", json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        z = zhang.holder.id_number
        expected = {
            ("exclusive_items", f"{z}|2026-10|H20+H21"),
            ("twice_in_period", f"person {zhao.holder.id_number}|H02|2026"),
            ("twice_in_period", f"household {WU}|H03|2026"),
            ("several_cards", li.holder.id_number),
            ("deceased_paid", f"line {li_line}|{li.holder.id_number}"),
            ("favouritism", f"line {wang_line}|{STAFF_WANG}"),
            ("favouritism", f"line {qian}|{STAFF_ZHENG}"),
            ("favouritism", f"line {zhou}|{STAFF_FENG}"),
            ("favouritism", f"line {wu}|{STAFF_FENG}"),
            ("above_cap", f"line {cap}"),
            ("paid_to_lost_card", f"line {zhao_line}"),
        }
        assert {(f["kind"], f["subject"]) for f in got["new"]} == expected
        assert got["found"] == len(expected) == gateway.count("subsidy_findings")
        by_kind = {f["subject"]: f for f in got["new"]}
        assert "same surname 王 in 东街社区" in by_kind[f"line {wang_line}|{STAFF_WANG}"]["what"]
        assert "declared relative" in by_kind[f"line {qian}|{STAFF_ZHENG}"]["what"]
        assert "same household" in by_kind[f"line {wu}|{STAFF_FENG}"]["what"]
        assert "paid" in by_kind[f"line {li_line}|{li.holder.id_number}"]["what"]

        # each finding is stored once: a second run finds the same, adds nothing
        again = admin(gateway, "POST", "/v1/admin/subsidies/audit", json=body).json()
        assert (again["found"], again["new"]) == (len(expected), [])
        assert gateway.count("subsidy_findings") == len(expected)

        # 整改 and closing, with who and when
        fid = by_kind[f"line {cap}"]["id"]
        base = f"/v1/admin/subsidies/findings/{fid}"
        r = admin(gateway, "POST", f"{base}/close", json={"actor": "审计组", "note": " "})
        assert r.status_code == 422 and r.json()["error"] == "note_required", r.text
        r = admin(gateway, "POST", f"{base}/rectify", json={"actor": "城关镇财政所"})
        assert r.status_code == 200 and r.json()["state"] == "rectifying", r.text
        note = "多报部分已追回, 金额更正为1000元"
        r = admin(gateway, "POST", f"{base}/close", json={"actor": "审计组", "note": note})
        f = r.json()
        assert (f["state"], f["closed_by"], f["note"]) == ("closed", "审计组", note)
        assert f["rectify_by"] == "城关镇财政所" and f["closed_at_ms"] >= f["rectify_at_ms"]
        r = admin(gateway, "POST", f"{base}/rectify", json={"actor": "x"})
        assert r.status_code == 409 and r.json()["error"] == "finding_closed", r.text
        open_now = admin(gateway, "GET", "/v1/admin/subsidies/findings?state=open").json()
        assert len(open_now) == len(expected) - 1

        # reports
        by_town = admin(gateway, "GET", "/v1/admin/subsidies/audit/report?by=township").json()
        town = {g["group"]: g for g in by_town}
        assert (town["朱仙镇"]["lines"], town["朱仙镇"]["paid_fen"]) == (1, 20000)
        assert town["朱仙镇"]["open_findings"] == 1  # paid to a lost card
        assert town["城关镇"]["paid_fen"] == 58050 + 45000 + 30000
        csv_text = admin(gateway, "GET", "/v1/admin/subsidies/audit/report?by=item&format=csv").text
        assert csv_text.splitlines()[0] == "分组,笔数,金额(分),已发放(分),未发放(分),未结问题"
        assert "H18 农村分散供养五保户补助资金,3,95000,95000,0,3" in csv_text.splitlines()
        raw = admin(gateway, "GET", "/v1/admin/subsidies/audit/report?by=month&format=xlsx")
        sheet = openpyxl.load_workbook(io.BytesIO(raw.content)).active
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        assert values[1] == ["分组", "笔数", "金额(分)", "已发放(分)", "未发放(分)", "未结问题"]
        assert sum(int(v[1]) for v in values[2:]) == 4 + 6
        dept = admin(gateway, "GET", "/v1/admin/subsidies/audit/report?by=department").json()
        assert {g["group"] for g in dept} == {"民政局", "-"}
    finally:
        centre.close()
