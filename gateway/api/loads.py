"""Online loads for kiosks and desks: authorise (MAC1 → MAC2), confirm, prove, void."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import cards, loads
from gateway.api.deps import DB, HSM, Caller, Loader, Settings
from gateway.api.routes import JsonRoutes, held_load_routes
from gateway.edges import Text
from gateway.errors import NotFound
from gateway.schemas import ConfirmBody, LoadRequestBody
from terminal.roles.registry import CARRY_PURPOSE

router = APIRouter(tags=["loads"])
route = JsonRoutes(router)


@route.post("/v1/loads", "Authorise an online load: check MAC1, return MAC2")
def authorize_load(
    body: LoadRequestBody, terminal: Loader, hsm: HSM, db: DB, settings: Settings
) -> Any:
    reserve = None
    if terminal.role == loads.DESK and body.purpose == CARRY_PURPOSE:
        reserve = cards.carry_reserve(terminal, hsm, settings.carry)
    load = loads.authorize(
        db,
        hsm,
        terminal,
        body.to_request(),
        limits=settings.load_limits,
        purpose=body.purpose,
        reserve=reserve,
    )
    return load.to_json()


@route.post("/v1/loads/{reference}/confirm", "Confirm a load with the card's TAC")
def confirm_load(reference: Text, body: ConfirmBody, terminal: Caller, db: DB, hsm: HSM) -> Any:
    return loads.confirm(db, hsm, terminal, reference, bytes.fromhex(body.tac)).to_json()


held_load_routes(
    router,
    "/v1/loads",
    prove=loads.prove,
    void_challenge=loads.void_challenge,
    void=loads.void,
    summaries=(
        "Settle a load from GET TRANSACTION PROVE",
        "A single-use challenge for voiding a load: run INITIALIZE FOR LOAD with it",
        "Void a load on the card's answer to its void challenge (it never credited)",
    ),
)


@route.get("/v1/loads/{reference}", "One load of this terminal")
def get_load(reference: Text, terminal: Caller, db: DB) -> Any:
    load = loads.get_load(db, reference)
    if load is None or load.terminal_id != terminal.terminal_id:
        raise NotFound("unknown_load", f"no load {reference} for this terminal")
    return load.to_json()


@route.get("/v1/loads", "This terminal's loads, optionally by state")
def my_loads(terminal: Caller, db: DB, state: Text | None = None) -> Any:
    return [
        x.to_json() for x in loads.list_loads(db, terminal_id=terminal.terminal_id, state=state)
    ]
