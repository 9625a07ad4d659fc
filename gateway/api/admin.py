"""Administration: terminals, hotlist changes, reconciliation with clearing (admin token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from gateway import auth, hotlist
from gateway.api.deps import DB, Settings, admin
from gateway.api.http import json_response
from gateway.edges import Text
from gateway.errors import Unavailable
from gateway.reconcile import quarantined_rides
from gateway.reconcile import reconcile as run_reconcile
from gateway.schemas import HotlistBody, TerminalBody

router = APIRouter(tags=["admin"], dependencies=[Depends(admin)])


@router.post("/v1/admin/terminals", summary="Register a terminal; returns its token once")
def add_terminal(body: TerminalBody, db: DB) -> Response:
    token = auth.register_terminal(
        db, body.terminal_id, body.operator_id, role=body.role, name=body.name
    )
    return json_response({"terminal_id": body.terminal_id.upper(), "token": token}, 201)


@router.post("/v1/admin/terminals/{terminal_id}/revoke", summary="Revoke a terminal")
def revoke(terminal_id: Text, db: DB) -> Response:
    auth.revoke_terminal(db, terminal_id)
    return json_response({"terminal_id": terminal_id.upper(), "revoked": True})


@router.post("/v1/admin/hotlist", summary="List (add, 挂失) or unlist (remove, 解挂) a card")
def change_hotlist(body: HotlistBody, db: DB) -> Response:
    version = hotlist.change(
        db, body.action, body.issuer_id, body.card_serial, reason=body.reason, actor="admin"
    )
    return json_response({"version": version, "changed": version is not None})


@router.get("/v1/admin/reconciliation", summary="Compare what was posted with clearing's books")
def reconcile(db: DB, settings: Settings, day: Text | None = None) -> Response:
    if not settings.clearing_url:
        raise Unavailable("no_clearing", "this gateway has no clearing URL")
    return json_response(run_reconcile(db, settings.clearing_url, settings.gateway_id, day))


@router.get("/v1/admin/quarantine", summary="Rides stored twice for one code, taken out")
def quarantine(db: DB) -> Response:
    return json_response({"rides": quarantined_rides(db)})
