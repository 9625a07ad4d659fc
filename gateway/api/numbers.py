"""Card numbers: desks lease blocks of them and claim one for a holder before writing a card;
the card centre lists and releases stale claims (admin token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import cards, numbers
from gateway.api.deps import DB, Desk, Settings
from gateway.api.routes import JsonRoutes
from gateway.edges import Text
from gateway.schemas import ClaimBody, LeaseBody, ReleaseClaimBody

router = APIRouter(tags=["numbers"])
route = JsonRoutes(router)
admin_route = JsonRoutes(router, admin_only=True)


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


@admin_route.get(
    "/v1/admin/numbers/claims/stale",
    "Claims with no card pushed after the configured age (a desk that went away)",
)
def stale(db: DB, settings: Settings) -> Any:
    return {
        "age_ms": settings.stale_claim_ms,
        "claims": numbers.stale_claims(db, settings.stale_claim_ms),
    }


@admin_route.post(
    "/v1/admin/numbers/claims/{card_number}/release",
    "Release a stale claim so the holder can be issued at another desk (audited)",
    responses={
        404: {"description": "unknown_claim"},
        409: {
            "description": "card_pushed (the card exists), claim_too_young, claim_not_live or "
            "claim_released"
        },
    },
)
def release(card_number: Text, body: ReleaseClaimBody, db: DB, settings: Settings) -> Any:
    return numbers.release(
        db, cards.card_number_of(card_number), body.actor, body.reason, settings.stale_claim_ms
    )


@admin_route.get("/v1/admin/numbers/releases", "Released claims: who, when and why")
def releases(db: DB) -> Any:
    return {"releases": numbers.releases(db)}
