"""The card book: desks push issuance records, kiosks report losses, desks ask for a lost
card's balance to carry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import cards
from gateway.api.deps import DB, Desk, Loader, OptionalHSM, Settings
from gateway.api.routes import JsonRoutes
from gateway.errors import NotFound
from gateway.schemas import LossBody, RecordsBody, UnblockBody
from gateway.subsidy.store import check_actor

router = APIRouter(tags=["cards"])
route = JsonRoutes(router)
admin_route = JsonRoutes(router, admin_only=True)


@route.post("/v1/issuance/records", "A desk pushes its issuance records")
def push_records(body: RecordsBody, desk: Desk, db: DB) -> Any:
    answers = cards.ingest(db, desk.terminal_id, body.records, book_of=body.desk_id)
    counts: dict[str, int] = {}
    for a in answers:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    return {
        "desk_id": desk.terminal_id,
        "counts": counts,
        "answers": answers,
        "cursor": cards.desk_cursor(db, desk.terminal_id),
    }


@route.get("/v1/issuance/cursor", "The newest revision this desk has delivered")
def cursor(desk: Desk, db: DB) -> Any:
    return {"desk_id": desk.terminal_id, "revision": cards.desk_cursor(db, desk.terminal_id)}


@route.get(
    "/v1/cards/{card_number}/balance",
    "A lost card's balance to carry, proven from verified records (or 409 why not)",
    responses={
        404: {"description": "the card is not in the card book"},
        409: {
            "description": "card_in_use (not reported lost), balance_settling (lost too"
            " recently), or balance_unproven (the records do not prove a balance; the"
            " reason lists each problem)"
        },
    },
)
def balance(card_number: str, desk: Desk, db: DB, settings: Settings, hsm: OptionalHSM) -> Any:
    return cards.proven_balance(db, card_number, hsm=hsm, rules=settings.carry)


@route.post("/v1/cards/loss", "Report a card lost (挂失); it goes on the hotlist")
def report_loss(body: LossBody, terminal: Loader, db: DB) -> Any:
    card = cards.report_loss(
        db, body.card_number, body.id_number, via=f"{terminal.role} {terminal.terminal_id}"
    )
    return card.to_json()


@admin_route.get("/v1/admin/cards/{card_number}", "One card of the book")
def get_card(card_number: str, db: DB) -> Any:
    card = cards.get_card(db, cards.card_number_of(card_number))
    if card is None:
        raise NotFound("unknown_card", f"card {card_number} is not in the card book")
    return card.to_json()


@admin_route.post(
    "/v1/admin/cards/{card_number}/unblock",
    "解挂: a card reported lost at the gateway is active again and leaves the hotlist",
)
def unblock(card_number: str, body: UnblockBody, db: DB) -> Any:
    actor = check_actor(body.actor)
    card = cards.unblock(db, card_number, body.id_number, actor=actor, note=body.note)
    return card.to_json()
