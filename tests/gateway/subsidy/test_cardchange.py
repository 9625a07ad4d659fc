"""挂失补卡: a replaced card's unpaid lines follow the holder to the new card, recorded in
the line's trail; paid lines stay where they were paid - on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from terminal.uplink.issuance import push_issuance
from tests.subsidy_kit import (
    PEOPLE,
    Centre,
    admin,
    approve_roster,
    card_for,
    import_roster,
    roster,
)


def test_unpaid_lines_follow_the_holder_to_the_replacement(gateway, clock):
    centre = Centre(gateway, clock)
    try:
        zhang = centre.issue(PEOPLE[:1])[0]
        who = f"{zhang.holder.name},{zhang.holder.id_number},{zhang.card_number}"
        first = import_roster(gateway, roster(f"{who},H18,20000,2026-09"))["roster"]["id"]
        approve_roster(gateway, first)
        old_card = card_for(zhang)
        kiosk, _ = centre.kiosk(card=old_card)
        assert kiosk.pick_up().paid_fen == 20_000
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
