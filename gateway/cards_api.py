"""HTTP endpoints of the card book: desks push issuance records, kiosks report losses.

Mounted by ``gateway.app.create_app``; ``Hooks`` hands over the app's authentication.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Header
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway import auth, cards
from gateway.edges import JsonValue, Text
from gateway.errors import not_found
from gateway.hsm import HostSecurityModule
from gateway.storage import Database


@dataclass(frozen=True)
class Hooks:
    """What the routers borrow from the app: its database, its authentication, its HSM (to
    verify purchase TACs) and its rules for replacement balances."""

    db: Database
    terminal_of: Callable[[str | None], auth.Terminal]
    require_admin: Callable[[str | None], None]
    hsm: HostSecurityModule | None = None
    carry: cards.CarryRules = field(default_factory=cards.CarryRules)


class RecordsBody(BaseModel):
    records: list[dict[str, JsonValue]] = Field(description="CardRegistry.export() records")


class LossBody(BaseModel):
    card_number: Text = Field(description="the 19 printed digits")
    id_number: Text = Field(description="the holder's ID number, as on the card's record")


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def cards_router(h: Hooks) -> APIRouter:
    r = APIRouter(tags=["cards"])

    @r.post("/v1/issuance/records", summary="A desk pushes its issuance records")
    def push_records(body: RecordsBody, authorization: str | None = Header(None)) -> Response:
        desk = h.terminal_of(authorization)
        auth.require_role(desk, "issuance")
        answers = cards.ingest(h.db, desk.terminal_id, body.records)
        counts: dict[str, int] = {}
        for a in answers:
            counts[a["status"]] = counts.get(a["status"], 0) + 1
        return _json(
            {
                "desk_id": desk.terminal_id,
                "counts": counts,
                "answers": answers,
                "cursor": cards.desk_cursor(h.db, desk.terminal_id),
            }
        )

    @r.get("/v1/issuance/cursor", summary="The newest revision this desk has delivered")
    def cursor(authorization: str | None = Header(None)) -> Response:
        desk = h.terminal_of(authorization)
        auth.require_role(desk, "issuance")
        return _json(
            {"desk_id": desk.terminal_id, "revision": cards.desk_cursor(h.db, desk.terminal_id)}
        )

    @r.get(
        "/v1/cards/{card_number}/balance",
        summary="A lost card's balance to carry, proven from verified records (or 409 why not)",
        responses={
            404: {"description": "the card is not in the card book"},
            409: {
                "description": "card_in_use (not reported lost), balance_settling (lost too"
                " recently), or balance_unproven (the records do not prove a balance; the"
                " reason lists each problem)"
            },
        },
    )
    def balance(card_number: str, authorization: str | None = Header(None)) -> Response:
        auth.require_role(h.terminal_of(authorization), "issuance")
        return _json(cards.proven_balance(h.db, card_number, hsm=h.hsm, rules=h.carry))

    @r.post("/v1/cards/loss", summary="Report a card lost (挂失); it goes on the hotlist")
    def report_loss(body: LossBody, authorization: str | None = Header(None)) -> Response:
        terminal = h.terminal_of(authorization)
        auth.require_role(terminal, "kiosk", "issuance")
        card = cards.report_loss(
            h.db, body.card_number, body.id_number, via=f"{terminal.role} {terminal.terminal_id}"
        )
        return _json(card.to_json())

    @r.get("/v1/admin/cards/{card_number}", summary="One card of the book")
    def get_card(card_number: str, x_admin_token: str | None = Header(None)) -> Response:
        h.require_admin(x_admin_token)
        card = cards.get_card(h.db, cards.card_number_of(card_number))
        if card is None:
            raise not_found("unknown_card", f"card {card_number} is not in the card book")
        return _json(card.to_json())

    return r
