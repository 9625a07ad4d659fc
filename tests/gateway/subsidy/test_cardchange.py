"""挂失补卡: a replaced card's unpaid lines follow the holder to the new card, recorded in
the line's trail; paid lines stay where they were paid - on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from gateway import cards
from terminal.uplink.issuance import push_issuance
from tests.subsidy_kit import (
    PEOPLE,
    Centre,
    admin,
    answer,
    approve_roster,
    card_for,
    holder_row,
    import_roster,
    roster,
)


def test_unpaid_lines_follow_the_holder_to_the_replacement(gateway, clock):
    centre = Centre(gateway, clock)
    try:
        zhang = centre.issue(PEOPLE[:1])[0]
        who = holder_row(zhang)
        first = import_roster(gateway, roster(f"{who},H18,20000,2026-09"))["roster"]["id"]
        approve_roster(gateway, first)
        old_card = card_for(zhang)
        kiosk, _ = centre.kiosk(card=old_card)
        assert kiosk.pick_up(answer(0)).paid_fen == 20_000
        second = import_roster(gateway, roster(f"{who},H18,30000,2026-10"))["roster"]["id"]
        approve_roster(gateway, second)
        centre.registry.report_lost(zhang.card_number)
        centre.registry.mark_hotlisted(zhang.card_number, 1)
        centre.registry.report_balance(zhang.card_number, 20_000, datetime(2026, 10, 2))
        new = centre.registry.begin_replacement(
            zhang.card_number, bytes.fromhex("5946000000000009")
        )
        new = centre.registry.activate(new.card_number)
        push_issuance(centre.desk, centre.registry.export)
        report = admin(gateway, "GET", "/v1/admin/subsidies/report").json()
        cards = {x["period"]: (x["card_number"], x["status"]) for x in report["lines"]}
        assert cards == {
            "2026-09": (zhang.card_number, "paid"),
            "2026-10": (new.card_number, "pending"),
        }
        moved = next(x["line_id"] for x in report["lines"] if x["period"] == "2026-10")
        trail = admin(gateway, "GET", f"/v1/admin/subsidies/lines/{moved}/events").json()
        assert [(e["action"], e["actor"]) for e in trail] == [("card_changed", "desk 310000000080")]
        assert trail[0]["note"] == f"{zhang.card_number} -> {new.card_number}: 补卡 (card replaced)"
    finally:
        centre.close()


def test_unblock_restores_the_card_in_the_book_with_a_trail_entry(gateway, clock, db):
    centre = Centre(gateway, clock)
    try:
        zhang = centre.issue(PEOPLE[:1])[0]
        card = zhang.card_number
        cards.report_loss(db, card, zhang.holder.id_number, via="kiosk 310000000090")
        path = f"/v1/admin/cards/{card}"
        assert admin(gateway, "GET", path).json()["state"] == "lost"
        changes = gateway.count("hotlist_changes")
        body = {"actor": "柜员甲", "id_number": PEOPLE[1][1], "note": "卡已找回"}
        r = admin(gateway, "POST", f"{path}/unblock", json=body)
        assert r.status_code == 403 and r.json()["error"] == "not_the_holder", r.text
        assert admin(gateway, "GET", path).json()["state"] == "lost"
        assert gateway.count("hotlist_changes") == changes
        body["id_number"] = zhang.holder.id_number
        r = admin(gateway, "POST", f"{path}/unblock", json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["state"], got["lost_at_ms"], got["hotlist_version"]) == ("active", None, None)
        with db.tx() as cur:
            cur.execute(
                "SELECT action, actor, reason FROM hotlist_changes ORDER BY version DESC LIMIT 1"
            )
            assert cur.fetchone() == ("remove", "柜员甲", f"解挂 {card}: 卡已找回")
            cur.execute("SELECT live FROM card_claims WHERE card_number = ?", (card,))
            assert cur.fetchone()[0] == 1
        r = admin(gateway, "POST", f"{path}/unblock", json=body)
        assert r.status_code == 409 and r.json()["error"] == "not_lost", r.text
        # a loss reported again after 解挂 goes on the hotlist again
        cards.report_loss(db, card, zhang.holder.id_number, via="kiosk 310000000090")
        assert admin(gateway, "GET", path).json()["hotlist_version"] is not None
    finally:
        centre.close()
