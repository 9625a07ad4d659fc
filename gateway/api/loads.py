"""Online loads for kiosks and desks: authorise (MAC1 → MAC2), confirm, prove, void."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway import loads
from gateway.api.deps import DB, HSM, Caller, Loader, Settings
from gateway.api.http import json_response
from gateway.edges import Text
from gateway.errors import NotFound
from gateway.schemas import ConfirmBody, LoadRequestBody, ProveBody, VoidBody

router = APIRouter(tags=["loads"])


@router.post("/v1/loads", summary="Authorise an online load: check MAC1, return MAC2")
def authorize_load(
    body: LoadRequestBody, terminal: Loader, hsm: HSM, db: DB, settings: Settings
) -> Response:
    load = loads.authorize(
        db, hsm, terminal, body.to_request(), limits=settings.load_limits, purpose=body.purpose
    )
    return json_response(load.to_json())


@router.post("/v1/loads/{reference}/confirm", summary="Confirm a load with the card's TAC")
def confirm_load(
    reference: Text, body: ConfirmBody, terminal: Caller, db: DB, hsm: HSM
) -> Response:
    load = loads.confirm(db, hsm, terminal, reference, bytes.fromhex(body.tac))
    return json_response(load.to_json())


@router.post("/v1/loads/{reference}/prove", summary="Settle a load from GET TRANSACTION PROVE")
def prove_load(reference: Text, body: ProveBody, terminal: Caller, db: DB, hsm: HSM) -> Response:
    load = loads.prove(
        db, hsm, terminal, reference, bytes.fromhex(body.mac), bytes.fromhex(body.tac)
    )
    return json_response(load.to_json())


@router.post(
    "/v1/loads/{reference}/void-challenge",
    summary="A single-use challenge for voiding a load: run INITIALIZE FOR LOAD with it",
)
def void_challenge(reference: str, terminal: Caller, db: DB) -> Response:
    return json_response(loads.void_challenge(db, terminal, reference).to_json())


@router.post(
    "/v1/loads/{reference}/void",
    summary="Void a load on the card's answer to its void challenge (it never credited)",
)
def void_load(reference: Text, body: VoidBody, terminal: Caller, db: DB, hsm: HSM) -> Response:
    load = loads.void(db, hsm, terminal, reference, body.evidence.to_request())
    return json_response(load.to_json())


@router.get("/v1/loads/{reference}", summary="One load of this terminal")
def get_load(reference: Text, terminal: Caller, db: DB) -> Response:
    load = loads.get_load(db, reference)
    if load is None or load.terminal_id != terminal.terminal_id:
        raise NotFound("unknown_load", f"no load {reference} for this terminal")
    return json_response(load.to_json())


@router.get("/v1/loads", summary="This terminal's loads, optionally by state")
def my_loads(terminal: Caller, db: DB, state: Text | None = None) -> Response:
    items = loads.list_loads(db, terminal_id=terminal.terminal_id, state=state)
    return json_response([x.to_json() for x in items])
