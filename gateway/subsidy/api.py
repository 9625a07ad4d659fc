"""HTTP endpoints for subsidies: roster import and approval (admin), pickup (kiosks).

Admin endpoints take the gateway's ``X-Admin-Token`` and name the person acting in the
body (``actor``) or query (``declared_by``): the token says the caller may administer,
the name goes into the audit trail and the separation-of-duties rule (store.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from gateway.app import LoadRequestBody, ProveBody, VoidBody
from gateway.auth import require_role
from gateway.cards import registry_lookup
from gateway.cards_api import Hooks
from gateway.edges import DbId, Text
from gateway.errors import GatewayError, unprocessable
from gateway.hsm import HostSecurityModule
from gateway.loads import LoadLimits
from gateway.subsidy import pickup, store
from gateway.subsidy.catalogue import DEMO_CATALOGUE, load_catalogue
from gateway.subsidy.publication import publication_csv, publication_rows
from gateway.subsidy.roster import CARD_NUMBER_DIGITS
from terminal.text import TextError, digits

MAX_ROSTER_BYTES = 10 * 1024 * 1024


class ActBody(BaseModel):
    actor: Text = Field(description="who reviews or approves (name or staff id)")
    note: Text = Field(default="", max_length=1000)


class RejectBody(BaseModel):
    actor: Text
    reason: Text = Field(max_length=1000)


class PickupBody(BaseModel):
    load: LoadRequestBody = Field(description="the card's INITIALIZE FOR LOAD answer")
    lines: list[DbId] = Field(description="roster line ids to pay; they add up to the amount")


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def subsidy_router(
    h: Hooks,
    need_hsm: Callable[[], HostSecurityModule],
    load_limits: LoadLimits,
    *,
    catalogue_path: str | Path | None = None,
    check_cards: bool = True,
) -> APIRouter:
    catalogue = load_catalogue(catalogue_path or DEMO_CATALOGUE)
    r = APIRouter(tags=["subsidies"])

    # -- admin: rosters and approval ------------------------------------------------------
    @r.post(
        "/v1/admin/subsidies/rosters",
        summary="Import a roster CSV (body: the file); answers the validation report",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def import_roster(
        request: Request,
        declared_by: Annotated[Text, Query(description="who declares this roster")],
        title: Text = "",
        source: Annotated[Text, Query(description="the file name, for the record")] = "",
        x_admin_token: str | None = Header(None),
    ) -> Response:
        h.require_admin(x_admin_token)
        raw = await request.body()
        if len(raw) > MAX_ROSTER_BYTES:
            raise GatewayError(
                413, "too_large", f"a roster file has at most {MAX_ROSTER_BYTES} bytes"
            )

        def work() -> store.ImportResult:
            return store.import_roster(
                h.db,
                raw,
                catalogue,
                declared_by=declared_by,
                title=title,
                source=source,
                cards=registry_lookup(h.db) if check_cards else None,
            )

        result = await run_in_threadpool(work)
        return _json(result.to_json(), 201 if result.roster else 200)

    @r.get("/v1/admin/subsidies/rosters", summary="Every roster and its state")
    def rosters(x_admin_token: str | None = Header(None)) -> Response:
        h.require_admin(x_admin_token)
        return _json([x.to_json() for x in store.list_rosters(h.db)])

    @r.get("/v1/admin/subsidies/rosters/{roster_id}", summary="A roster, its trail, its rejections")
    def roster(roster_id: DbId, x_admin_token: str | None = Header(None)) -> Response:
        h.require_admin(x_admin_token)
        return _json(
            {
                "roster": store.get_roster(h.db, roster_id).to_json(),
                "events": store.events(h.db, roster_id),
                "import_report": store.stored_report(h.db, roster_id),
            }
        )

    @r.post("/v1/admin/subsidies/rosters/{roster_id}/review", summary="declared → reviewed")
    def review(
        roster_id: DbId, body: ActBody, x_admin_token: str | None = Header(None)
    ) -> Response:
        h.require_admin(x_admin_token)
        return _json(store.review(h.db, roster_id, body.actor, body.note).to_json())

    @r.post("/v1/admin/subsidies/rosters/{roster_id}/approve", summary="reviewed → approved")
    def approve(
        roster_id: DbId, body: ActBody, x_admin_token: str | None = Header(None)
    ) -> Response:
        h.require_admin(x_admin_token)
        return _json(store.approve(h.db, roster_id, body.actor, body.note).to_json())

    @r.post("/v1/admin/subsidies/rosters/{roster_id}/reject", summary="Reject; lines withdrawn")
    def reject(
        roster_id: DbId, body: RejectBody, x_admin_token: str | None = Header(None)
    ) -> Response:
        h.require_admin(x_admin_token)
        return _json(store.reject(h.db, roster_id, body.actor, body.reason).to_json())

    @r.get(
        "/v1/admin/subsidies/rosters/{roster_id}/publication",
        summary="The 公示 listing: names and ID numbers masked, no card numbers",
    )
    def publication(
        roster_id: DbId, format: Text = "json", x_admin_token: str | None = Header(None)
    ) -> Response:
        h.require_admin(x_admin_token)
        report = store.roster_lines(h.db, roster_id)
        if format == "csv":
            return PlainTextResponse(publication_csv(report), media_type="text/csv")
        return _json(publication_rows(report))

    @r.get("/v1/admin/subsidies/report", summary="What was paid and what is pending")
    def report(roster_id: DbId | None = None, x_admin_token: str | None = Header(None)) -> Response:
        h.require_admin(x_admin_token)
        if roster_id is not None:
            store.get_roster(h.db, roster_id)
        return _json(pickup.payment_report(h.db, roster_id))

    # -- kiosks: pickup -------------------------------------------------------------------
    @r.get("/v1/subsidies/cards/{card_number}", summary="A card's subsidy lines, by status")
    def for_card(card_number: Text, authorization: str | None = Header(None)) -> Response:
        require_role(h.terminal_of(authorization), "kiosk")
        try:
            number = digits(card_number, "card number", length=CARD_NUMBER_DIGITS)
        except TextError as exc:
            raise unprocessable("bad_card_number", str(exc)) from None
        return _json(pickup.for_card(h.db, number))

    @r.post("/v1/subsidies/pickups", summary="Authorise a load that pays approved lines")
    def pick_up(body: PickupBody, authorization: str | None = Header(None)) -> Response:
        terminal = h.terminal_of(authorization)
        load, lines = pickup.authorize_pickup(
            h.db, need_hsm(), terminal, body.load.to_request(), body.lines, limits=load_limits
        )
        return _json({"load": load.to_json(), "lines": [s.to_json(full=False) for s in lines]})

    @r.post("/v1/subsidies/loads/{reference}/prove", summary="Settle a held pickup by PROVE")
    def prove(
        reference: Text, body: ProveBody, authorization: str | None = Header(None)
    ) -> Response:
        terminal = h.terminal_of(authorization)
        load = pickup.prove_held(
            h.db, need_hsm(), terminal, reference, bytes.fromhex(body.mac), bytes.fromhex(body.tac)
        )
        return _json(load.to_json())

    @r.post(
        "/v1/subsidies/loads/{reference}/void-challenge",
        summary="A void challenge for a held pickup (the kiosk that holds it only)",
    )
    def void_challenge(reference: str, authorization: str | None = Header(None)) -> Response:
        terminal = h.terminal_of(authorization)
        return _json(pickup.void_challenge_held(h.db, terminal, reference).to_json())

    @r.post(
        "/v1/subsidies/loads/{reference}/void",
        summary="Void a held pickup on the card's answer to its challenge (holding kiosk only)",
    )
    def void(reference: str, body: VoidBody, authorization: str | None = Header(None)) -> Response:
        terminal = h.terminal_of(authorization)
        load = pickup.void_held(h.db, need_hsm(), terminal, reference, body.evidence.to_request())
        return _json(load.to_json())

    return r
