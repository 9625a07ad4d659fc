"""Rosters at the gateway: import with a per-row report, duplicates across rosters, the
approval workflow with separation of duties and its audit trail, the 公示 listing, and
the admin HTTP API - on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import httpx
import pytest

from gateway.errors import Conflict, Forbidden, Invalid, Refused
from gateway.subsidy import store
from gateway.subsidy.catalogue import load_catalogue
from tests.subsidy_kit import (
    PEOPLE,
    Centre,
    admin,
    approve_roster,
    holder_row,
    id_number,
    import_roster,
    roster,
)

CATALOGUE = load_catalogue()


def rows(centre: Centre) -> list[str]:
    """One 'name,id,card' prefix per booked person."""
    return [holder_row(r) for r in centre.records]


def test_import_reports_every_rejected_row_with_its_reason(gateway, centre):
    zhang, li, wang = rows(centre)
    body = roster(
        f"{zhang},H18,20000,2026-10",
        f"张三,110105194912310021,{centre.records[0].card_number},H18,100,2026-10",  # bad check
        f"{li},E99,100,2026-10",  # unknown item
        f"{li},H18,0,2026-10",  # zero amount
        f"{zhang},H18,300,2026-10",  # duplicate of row 2
        f"{wang},H17,15000,2026-11",
        f"{wang.replace(wang.split(',')[1], PEOPLE[0][1])},H02,100,2026",  # someone else's card
        f"钱七,{id_number(9)},3100029000099999999,H18,100,2026-10",  # card not in the book
    )
    doc = import_roster(gateway, body)
    report = doc["report"]
    assert (report["rows"], report["accepted"], report["rejected"]) == (8, 2, 6)
    reasons = {r["row"]: r["reasons"] for r in report["rejections"]}
    assert "ID number: check character is 1, should be X" in reasons[3]
    assert reasons[4] == ["unknown subsidy item 'E99'"]
    assert reasons[5] == ["amount is zero"]
    assert reasons[6] == ["duplicate of row 2 (same ID number, item and period)"]
    assert any("belongs to another ID number" in r for r in reasons[8])
    assert reasons[9] == ["card 3100029000099999999 is not in the card registry"]
    rid = doc["roster"]["id"]
    assert doc["roster"]["state"] == "declared" and doc["roster"]["total_fen"] == 35_000
    assert gateway.count("subsidy_lines") == 2
    got = admin(gateway, "GET", f"/v1/admin/subsidies/rosters/{rid}").json()
    assert [e["action"] for e in got["events"]] == ["declared"]
    assert got["events"][0]["actor"] == "declarer" and got["events"][0]["at_ms"] > 0
    assert [r["row"] for r in got["import_report"]["rejections"]] == [3, 4, 5, 6, 8, 9]


def test_a_line_is_never_declared_twice_across_rosters(gateway, centre):
    zhang, li, _ = rows(centre)
    first = import_roster(gateway, roster(f"{zhang},H18,20000,2026-10"))
    second = import_roster(
        gateway, roster(f"{li},H18,20000,2026-10", f"{zhang},H18,20000,2026-10"), by="other"
    )
    (rejection,) = second["report"]["rejections"]
    assert rejection["row"] == 3
    assert rejection["reasons"] == [
        f"already declared in roster #{first['roster']['id']} row 2 (same ID number, item and "
        "period): a subsidy line is paid once"
    ]
    # the same file again: nothing valid, so no roster is stored
    again = import_roster(gateway, roster(f"{zhang},H18,20000,2026-10"))
    assert again["roster"] is None and again["report"]["rejected"] == 1
    assert gateway.count("subsidy_rosters") == 2 and gateway.count("subsidy_lines") == 2
    # and the database itself refuses a second live line, whatever the code above did
    with pytest.raises(Exception, match=r"(?i)unique"), gateway.db.tx() as cur:
        cur.execute(
            "INSERT INTO subsidy_lines (roster_id, row_no, name, id_number, card_number,"
            " card_serial, item, item_name, category, amount_fen, period)"
            " SELECT roster_id, 99, name, id_number, card_number, card_serial, item, item_name,"
            " category, amount_fen, period FROM subsidy_lines WHERE row_no = 2 AND item = 'H18'"
            " AND name = '张三'"
        )


def test_approval_goes_declared_reviewed_approved_by_three_people(gateway, centre):
    zhang, _, _ = rows(centre)
    rid = import_roster(gateway, roster(f"{zhang},H18,20000,2026-10"), by="王会计")["roster"]["id"]
    db = gateway.db
    with pytest.raises(Conflict, match="must be reviewed first"):
        store.approve(db, rid, "李科长")
    with pytest.raises(Forbidden, match="may not also review"):
        store.review(db, rid, "王会计")
    store.review(db, rid, "赵审核", "checked against the 2026-10 register")
    for who in ("王会计", "赵审核"):
        with pytest.raises(Refused, match="may not also approve"):
            store.approve(db, rid, who)
    with pytest.raises(Refused, match="named"):
        store.approve(db, rid, "  ")
    with pytest.raises(Conflict, match="never published"):
        store.approve(db, rid, "李科长")
    start = date(2026, 10, 1)
    with pytest.raises(Invalid, match="at least 7 days"):
        store.publish(db, rid, "钱站长", start, start + timedelta(days=5))
    pub = store.publish(db, rid, "钱站长", start, start + timedelta(days=6), "村委会")
    assert pub.ends_on == date(2026, 10, 7) and pub.published_by == "钱站长"
    with pytest.raises(Conflict, match="on display until 2026-10-07"):
        store.approve(db, rid, "李科长", today=date(2026, 10, 7))
    objection = store.object_to(db, rid, 2, "村民甲", "他家有财政供养人员")
    with pytest.raises(Conflict, match="1 open objection"):
        store.approve(db, rid, "李科长", today=date(2026, 10, 8))
    store.resolve_objection(db, objection["id"], "赵审核", "dismissed", "核实不属实")
    with pytest.raises(Conflict, match="no sign-off"):
        store.approve(db, rid, "李科长", today=date(2026, 10, 8))
    signed = store.sign_off(db, rid, "钱站长", 37, "签字表存档")
    assert signed.signatures == 37 and signed.signed_by == "钱站长" and signed.signed_at
    approved = store.approve(db, rid, "李科长", today=date(2026, 10, 8))
    assert approved.state == "approved" and approved.approved_by == "李科长"
    with pytest.raises(Conflict, match="objections and sign-off belong"):
        store.object_to(db, rid, 2, "村民乙", "late")
    sent = store.send_to_finance(db, rid, "孙财政")
    assert sent.sent_by == "孙财政" and sent.sent_at
    with pytest.raises(Conflict, match="was sent by"):
        store.send_to_finance(db, rid, "孙财政")
    with pytest.raises(Refused, match="cannot be rejected"):
        store.reject(db, rid, "李科长", "too late")
    with pytest.raises(Refused, match="only a declared one"):
        store.review(db, rid, "孙")
    trail = store.events(db, rid)
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("declared", "王会计"),
        ("reviewed", "赵审核"),
        ("published", "钱站长"),
        ("objection", "村民甲"),
        ("objection_dismissed", "赵审核"),
        ("signed_off", "钱站长"),
        ("approved", "李科长"),
        ("sent_to_finance", "孙财政"),
    ]
    assert trail[1]["note"] == "checked against the 2026-10 register"
    assert all(a["at_ms"] <= b["at_ms"] for a, b in itertools.pairwise(trail))


def test_an_upheld_objection_withdraws_its_line(gateway, centre):
    zhang, li, _ = rows(centre)
    body = roster(f"{zhang},H18,20000,2026-10", f"{li},H18,30000,2026-10")
    rid = import_roster(gateway, body)["roster"]["id"]
    db = gateway.db
    store.review(db, rid, "赵审核")
    store.publish(db, rid, "钱站长", date(2026, 10, 1), date(2026, 10, 7))
    o = store.object_to(db, rid, 3, "村民甲", "已迁出本村")
    done = store.resolve_objection(db, o["id"], "赵审核", "upheld", "核实已迁出")
    assert done["outcome"] == "upheld" and done["resolved_by"] == "赵审核"
    r = store.get_roster(db, rid)
    assert (r.line_count, r.total_fen) == (1, 20_000)
    assert [line.row for line in store.roster_lines(db, rid).lines] == [2]
    with pytest.raises(Conflict, match="already upheld"):
        store.resolve_objection(db, o["id"], "赵审核", "dismissed", "x")


def test_a_rejected_roster_withdraws_its_lines_so_a_corrected_one_can_declare_them(gateway, centre):
    zhang, _, _ = rows(centre)
    rid = import_roster(gateway, roster(f"{zhang},H18,20000,2026-10"))["roster"]["id"]
    r = admin(
        gateway,
        "POST",
        f"/v1/admin/subsidies/rosters/{rid}/reject",
        json={"actor": "x", "reason": ""},
    )
    assert r.status_code == 422
    r = admin(
        gateway,
        "POST",
        f"/v1/admin/subsidies/rosters/{rid}/reject",
        json={"actor": "reviewer", "reason": "amount is for 2026-09"},
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    fixed = import_roster(gateway, roster(f"{zhang},H18,18000,2026-10"))
    assert fixed["roster"] is not None and fixed["report"]["rejected"] == 0
    r = admin(gateway, "POST", f"/v1/admin/subsidies/rosters/{rid}/review", json={"actor": "y"})
    assert r.status_code == 409 and r.json()["error"] == "wrong_state"


def test_admin_api_needs_the_token_and_bad_files_are_refused_whole(gateway, centre):
    zhang, _, _ = rows(centre)
    r = httpx.post(
        gateway.url + "/v1/admin/subsidies/rosters",
        params={"declared_by": "x"},
        content=roster(f"{zhang},H18,20000,2026-10"),
    )
    assert r.status_code == 401
    r = admin(
        gateway,
        "POST",
        "/v1/admin/subsidies/rosters",
        params={"declared_by": "x"},
        content=b"name,amount\n",
    )
    assert r.status_code == 422 and "line 1: unknown column 'amount'" in r.json()["reason"]
    r = admin(
        gateway,
        "POST",
        "/v1/admin/subsidies/rosters",
        params={"declared_by": ""},
        content=roster(f"{zhang},H18,20000,2026-10"),
    )
    assert r.status_code == 422 and r.json()["error"] == "bad_actor"
    r = admin(gateway, "POST", "/v1/admin/subsidies/rosters/99/review", json={"actor": "y"})
    assert r.status_code == 404
    assert gateway.count("subsidy_rosters") == 0 and gateway.count("subsidy_events") == 0


def test_publication_masks_names_and_id_numbers(gateway, centre):
    zhang, _, wang = rows(centre)
    rid = import_roster(gateway, roster(f"{zhang},H18,20000,2026-10", f"{wang},H17,15000,2026-10"))[
        "roster"
    ]["id"]
    approve_roster(gateway, rid)
    listing = admin(gateway, "GET", f"/v1/admin/subsidies/rosters/{rid}/publication").json()
    assert [(x["name"], x["id_number"], x["amount_fen"]) for x in listing] == [
        ("张*", PEOPLE[0][1][:6] + "********" + PEOPLE[0][1][-4:], 20_000),
        ("王*五", PEOPLE[2][1][:6] + "********" + PEOPLE[2][1][-4:], 15_000),
    ]
    text = admin(
        gateway, "GET", f"/v1/admin/subsidies/rosters/{rid}/publication", params={"format": "csv"}
    ).text
    assert (
        text.splitlines()[1] == f"1,2,,,张*,{PEOPLE[0][1][:6]}********{PEOPLE[0][1][-4:]},"
        "农村分散供养五保户补助资金,200.00,2026-10"
    )
    assert centre.records[0].card_number not in text and PEOPLE[0][1] not in text
