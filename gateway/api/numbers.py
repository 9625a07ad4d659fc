"""Card numbers: desks lease blocks of them and claim one for a holder before writing a card."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import cards, numbers
from gateway.api.deps import DB, Desk
from gateway.api.routes import JsonRoutes
from gateway.schemas import ClaimBody, LeaseBody

router = APIRouter(tags=["numbers"])
route = JsonRoutes(router)


@route.post(
    "/v1/numbers/blocks",
    "Lease this desk a new block of an issuer's card numbers",
    status=201,
    responses={403: {"description": "not_this_desk: the body names another desk"}},
)
def lease(body: LeaseBody, desk: Desk, db: DB) -> Any:
    numbers.check_desk(desk.terminal_id, body.desk_id)
    return numbers.lease(db, desk.terminal_id, body.issuer_id, body.count)


@route.post(
    "/v1/numbers/claims",
    "Claim a leased number for a holder before the card is written (person check)",
    responses={
        403: {"description": "outside_lease: the number is not in a block of this desk"},
        409: {
            "description": "number_used, same_person (another live card of the kind) or "
            "card_lost (replace the lost card instead)"
        },
    },
)
def claim(body: ClaimBody, desk: Desk, db: DB) -> Any:
    replaces = cards.card_number_of(body.replaces) if body.replaces else None
    return numbers.claim(
        db,
        desk.terminal_id,
        cards.card_number_of(body.card_number),
        body.issuer_id,
        body.id_number,
        body.card_kind,
        replaces,
    )
