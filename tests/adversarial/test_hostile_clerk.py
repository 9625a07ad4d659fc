"""A hostile township clerk: skips the 公示, sends hostile roster files, slips in a
household twice or a person on two exclusive items. Each is refused with its reason and
nothing is stored, approved or paid."""

from __future__ import annotations

import io
import threading
from datetime import date, timedelta
from typing import Any

import openpyxl
import pytest

from tests.gateway_fixtures import race_held
from tests.subsidy_kit import (
    PEOPLE,
    Centre,
    admin,
    answer,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    publish_roster,
    roster,
)

CN_HEADER = "姓名,身份证号码,一卡通卡号,补贴项目,金额(元),发放期间"


def who(centre: Centre, i: int = 0) -> str:
    return holder_row(centre.records[i])


def post(gateway: Any, body: bytes) -> Any:
    return admin(
        gateway,
        "POST",
        "/v1/admin/subsidies/rosters",
        params={"declared_by": "clerk"},
        content=body,
    )


def nothing_stored(gateway: Any) -> None:
    assert gateway.count("subsidy_rosters") == 0 and gateway.count("subsidy_lines") == 0
    assert gateway.count("subsidy_events") == 0


def test_approving_without_publication_is_refused_and_pays_nothing(gateway, centre):
    card = card_for(centre.records[0], balance=0)
    kiosk, _ = centre.kiosk(card=card)
    rid = import_roster(gateway, roster(f"{who(centre)},H18,20000,2026-10"))["roster"]["id"]
    base = f"/v1/admin/subsidies/rosters/{rid}"
    assert admin(gateway, "POST", f"{base}/review", json={"actor": "station"}).status_code == 200
    r = admin(gateway, "POST", f"{base}/approve", json={"actor": "dept"})
    assert r.status_code == 409 and r.json()["error"] == "not_published", r.text
    assert "never published (公示)" in r.json()["reason"]
    # published, but the display period still runs: refused too
    today = date.today()
    span = {"starts_on": str(today - timedelta(days=2)), "ends_on": str(today + timedelta(days=5))}
    r = admin(gateway, "POST", f"{base}/publication", json={"actor": "clerk", **span})
    assert r.status_code == 201, r.text
    admin(gateway, "POST", f"{base}/signoff", json={"actor": "clerk", "signatures": 40})
    r = admin(gateway, "POST", f"{base}/approve", json={"actor": "dept"})
    assert r.status_code == 409 and r.json()["error"] == "display_period", r.text
    assert f"on display until {today + timedelta(days=5)}" in r.json()["reason"]
    doc = admin(gateway, "GET", base).json()
    assert doc["roster"]["state"] == "reviewed" and doc["roster"]["approved_by"] is None
    assert "approved" not in [e["action"] for e in doc["events"]]
    got = kiosk.pick_up(answer(0))
    assert got.paid == [] and card.balance == 0 and gateway.count("loads") == 0


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("1e3", "line 3: amount '1e3' is not a plain amount in yuan"),
        ("580.001", "line 3: amount '580.001' has more than two decimals"),
        ("-580.00", "line 3: amount '-580.00' is negative"),
        ("５８０.００", "line 3: amount '５８０.００' has full-width"),
    ],
)
def test_hostile_amounts_refuse_the_whole_file(gateway, centre, amount, reason):
    body = f"{CN_HEADER}\n{who(centre)},H18,200.00,2026-10\n{who(centre, 1)},H18,{amount},2026-10\n"
    r = post(gateway, body.encode())
    assert r.status_code == 422 and r.json()["error"] == "bad_roster", r.text
    assert r.json()["reason"].startswith(reason)
    nothing_stored(gateway)


def test_mixed_encodings_and_huge_files_are_refused(gateway, centre):
    gbk = f"{CN_HEADER}\n{who(centre)},H18,200.00,2026-10\n".encode("gbk")
    mixed = gbk + f"{who(centre, 1)},H18,200.00,2026-10\n".encode()
    r = post(gateway, mixed)
    assert r.status_code == 422 and r.json()["reason"].startswith("line 3: UTF-8 text in a GBK"), (
        r.text
    )
    huge = (f"{CN_HEADER}\n" + f"{who(centre)},H18,1.00,2026-10\n" * 60_000).encode()
    r = post(gateway, huge)
    assert r.status_code == 422 and "more than 50000 rows" in r.json()["reason"], r.text
    nothing_stored(gateway)


def test_an_xlsx_with_a_formula_cell_is_refused(gateway, centre):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(CN_HEADER.split(","))
    r0 = centre.records[0]
    sheet.append([r0.holder.name, r0.holder.id_number, r0.card_number, "H18", 200, "2026-10"])
    sheet.append(['=HYPERLINK("http://evil")', PEOPLE[1][1], "1" * 19, "H18", 1, "2026-10"])
    out = io.BytesIO()
    book.save(out)
    r = post(gateway, out.getvalue())
    assert r.status_code == 422 and r.json()["reason"].startswith("line 3: cell '=HYPERLINK"), (
        r.text
    )
    nothing_stored(gateway)


def test_exclusive_items_and_a_second_household_line_are_refused_across_rosters(gateway, centre):
    first = import_roster(gateway, roster(f"{who(centre)},H20,30000,2026-10"))
    assert first["report"]["accepted"] == 1
    again = import_roster(gateway, roster(f"{who(centre)},H21,50000,2026-10"))
    assert again["roster"] is None
    (why,) = again["report"]["rejections"][0]["reasons"]
    assert why.startswith("excluded by roster #1 row 2 (H20): H20 and H21 are never paid")
    # a household's production subsidy is paid to its head, once per period: a second
    # member listing the same household is refused
    head = centre.records[0]
    grain = roster(f"{who(centre)},H02,12000,2026")
    assert import_roster(gateway, grain)["report"]["accepted"] == 1
    hdr = "name,id_number,card_number,item,amount_fen,period,household_name,household_id"
    member = (
        f"{hdr}\n李四,{PEOPLE[1][1]},{head.card_number},H02,12000,2026,"
        f"{head.holder.name},{head.holder.id_number}\n"
    )
    second = import_roster(gateway, member.encode())
    assert second["roster"] is None
    assert second["report"]["rejections"][0]["reasons"] == [
        "already declared in roster #2 row 2 (same household, item and period): "
        "a subsidy line is paid once"
    ]
    assert gateway.count("subsidy_lines") == 2


def test_a_line_redirected_to_someone_elses_card_is_refused(gateway, centre):
    rid = import_roster(gateway, roster(f"{who(centre)},H18,20000,2026-10"))["roster"]["id"]
    (line,) = admin(gateway, "GET", "/v1/admin/subsidies/report").json()["lines"]
    other = centre.records[1].card_number
    body = {"actor": "clerk", "card_number": other, "note": "换卡"}
    r = admin(gateway, "POST", f"/v1/admin/subsidies/lines/{line['line_id']}/card", json=body)
    assert (r.status_code, r.json()["error"]) == (403, "not_the_payee"), r.text
    assert "belongs to another ID number than line" in r.json()["reason"]
    after = admin(gateway, "GET", "/v1/admin/subsidies/report", params={"roster_id": rid}).json()
    assert after["lines"][0]["card_number"] == centre.records[0].card_number
    assert gateway.count("subsidy_line_events") == 0


def test_an_approval_and_a_rejection_at_once_leave_one_answer_true(gateway, centre):
    """The approver and another officer rejecting act on a reviewed roster at the same
    moment (PostgreSQL: both held here behind a lock on the roster). Both were answered 200:
    the rejection overwrote the approval (the lines withdrawn after the approver was told
    "approved"), or the approval, finding the roster rejected, still recorded "approved" in
    its trail. One step must win and the other be refused; the trail holds the winner only."""
    rid = import_roster(gateway, roster(f"{who(centre)},H18,20000,2026-10"))["roster"]["id"]
    publish_roster(gateway, rid)
    base = f"/v1/admin/subsidies/rosters/{rid}"
    answers: dict[str, Any] = {}
    steps = {
        "approve": {"actor": "approver"},
        "reject": {"actor": "officer", "reason": "income above the line"},
    }

    at_once(gateway, rid, {step: (f"{base}/{step}", body) for step, body in steps.items()}, answers)
    codes = {step: r.status_code for step, r in answers.items()}
    assert sorted(codes.values()) == [200, 409], {k: v.text for k, v in answers.items()}
    won = next(step for step, code in codes.items() if code == 200)
    lost = answers["reject" if won == "approve" else "approve"].json()
    assert lost["error"] == "wrong_state" and f"roster #{rid} is " in lost["reason"], lost
    doc = admin(gateway, "GET", base).json()
    state = {"approve": "approved", "reject": "rejected"}[won]
    assert doc["roster"]["state"] == answers[won].json()["state"] == state
    actions = [e["action"] for e in doc["events"]]
    assert state in actions and ({"approved", "rejected"} - {state}).isdisjoint(actions)
    with gateway.db.tx() as cur:
        cur.execute("SELECT live FROM subsidy_lines WHERE roster_id = ?", (rid,))
        assert [int(r[0]) for r in cur.fetchall()] == [1 if won == "approve" else 0]


def at_once(
    gateway: Any, rid: int, steps: dict[str, tuple[str, dict[str, Any]]], answers: dict[str, Any]
) -> None:
    """POST every step of ``steps`` (name: path, body) at once, their answers into
    ``answers``; on PostgreSQL all held inside the gateway behind a lock on roster ``rid``
    (each step waits on it) and then released together."""

    def act(step: str) -> None:
        path, body = steps[step]
        answers[step] = admin(gateway, "POST", path, json=body)

    threads = [threading.Thread(target=act, args=(step,)) for step in steps]
    race_held(
        gateway,
        threads,
        lambda cur: cur.execute("SELECT 1 FROM subsidy_rosters WHERE id = ? FOR UPDATE", (rid,)),
        waiting=len(steps),
        what="the steps at the roster",
    )


def test_an_objection_raised_as_the_roster_is_approved_is_never_left_open(gateway, centre):
    """A resident's objection is recorded at the moment the approver approves (PostgreSQL:
    both held inside the gateway at the roster). Both were answered 200: the approval had
    counted no open objection, the objection found the roster still reviewed, and the
    roster was approved with an objection nobody can resolve any more (resolving needs a
    reviewed roster). One of the two must be refused: the roster is approved with no open
    objection, or stays reviewed with the objection open."""
    rid = import_roster(gateway, roster(f"{who(centre)},H18,20000,2026-10"))["roster"]["id"]
    publish_roster(gateway, rid)
    base = f"/v1/admin/subsidies/rosters/{rid}"
    answers: dict[str, Any] = {}
    objection = {"actor": "villager", "row": 2, "reason": "他家已经搬走了"}
    steps = {"approve": (f"{base}/approve", {"actor": "approver"}),
             "object": (f"{base}/objections", objection)}  # fmt: skip
    at_once(gateway, rid, steps, answers)
    codes = {step: r.status_code for step, r in answers.items()}
    doc = admin(gateway, "GET", base).json()
    open_ones = [o for o in doc["objections"] if o["outcome"] is None]
    actions = [e["action"] for e in doc["events"]]
    if codes["approve"] == 200:
        assert codes["object"] == 409, {k: v.text for k, v in answers.items()}
        lost = answers["object"].json()
        assert lost["error"] == "not_on_display", lost
        assert f"roster #{rid} is approved" in lost["reason"], lost
        assert doc["roster"]["state"] == "approved" and open_ones == []
        assert gateway.count("subsidy_objections") == 0 and "objection" not in actions
    else:
        assert codes == {"approve": 409, "object": 201}, {k: v.text for k, v in answers.items()}
        lost = answers["approve"].json()
        assert lost["error"] == "open_objections" and "1 open objection(s)" in lost["reason"]
        assert doc["roster"]["state"] == "reviewed" and len(open_ones) == 1
        assert "approved" not in actions
        # the objection can still be resolved, and the roster then approved
        oid = open_ones[0]["id"]
        r = admin(
            gateway,
            "POST",
            f"/v1/admin/subsidies/objections/{oid}/resolve",
            json={"actor": "officer", "outcome": "dismissed", "note": "核实仍在本村居住"},
        )
        assert r.status_code == 200, r.text


def test_two_sends_to_finance_at_once_are_one_send(gateway, centre):
    """Two finance officers send one approved roster at the same moment (PostgreSQL: both
    held inside the gateway at the roster). Both were answered 200 and the trail said the
    roster was sent twice, the second officer's name in the trail but not on the roster.
    One send is answered; the other is refused, and the trail holds one send."""
    rid = import_roster(gateway, roster(f"{who(centre)},H18,20000,2026-10"))["roster"]["id"]
    approve_roster(gateway, rid)
    base = f"/v1/admin/subsidies/rosters/{rid}"
    answers: dict[str, Any] = {}
    steps = {who_: (f"{base}/send", {"actor": who_}) for who_ in ("finance-a", "finance-b")}
    at_once(gateway, rid, steps, answers)
    codes = {step: r.status_code for step, r in answers.items()}
    assert sorted(codes.values()) == [200, 409], {k: v.text for k, v in answers.items()}
    won = next(step for step, code in codes.items() if code == 200)
    lost = answers["finance-b" if won == "finance-a" else "finance-a"].json()
    assert lost["error"] == "already_sent", lost
    assert f"roster #{rid} was sent by {won}" in lost["reason"], lost
    doc = admin(gateway, "GET", base).json()
    assert doc["roster"]["sent_by"] == answers[won].json()["sent_by"] == won
    sends = [e for e in doc["events"] if e["action"] == "sent_to_finance"]
    assert [e["actor"] for e in sends] == [won]
