"""Administration: terminals, hotlist changes, reconciliation with clearing (admin token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import auth, carried_late, conflicts, hotlist
from gateway.api.deps import DB, Settings
from gateway.api.routes import JsonRoutes
from gateway.edges import Text
from gateway.errors import Unavailable
from gateway.reconcile import quarantined_rides
from gateway.reconcile import reconcile as run_reconcile
from gateway.schemas import HotlistBody, TerminalBody

router = APIRouter(tags=["admin"])
route = JsonRoutes(router, admin_only=True)


@route.post("/v1/admin/terminals", "Register a terminal; returns its token once", status=201)
def add_terminal(body: TerminalBody, db: DB) -> Any:
    token = auth.register_terminal(
        db, body.terminal_id, body.operator_id, role=body.role, name=body.name
    )
    return {"terminal_id": body.terminal_id.upper(), "token": token}


@route.post("/v1/admin/terminals/{terminal_id}/revoke", "Revoke a terminal")
def revoke(terminal_id: Text, db: DB) -> Any:
    auth.revoke_terminal(db, terminal_id)
    return {"terminal_id": terminal_id.upper(), "revoked": True}


@route.post("/v1/admin/hotlist", "List (add, 挂失) or unlist (remove, 解挂) a card")
def change_hotlist(body: HotlistBody, db: DB) -> Any:
    version = hotlist.change(
        db, body.action, body.issuer_id, body.card_serial, reason=body.reason, actor="admin"
    )
    return {"version": version, "changed": version is not None}


@route.get("/v1/admin/reconciliation", "Compare what was posted with clearing's books")
def reconcile(db: DB, settings: Settings, day: Text | None = None) -> Any:
    if not settings.clearing_url:
        raise Unavailable("no_clearing", "this gateway has no clearing URL")
    return run_reconcile(db, settings.clearing_url, settings.gateway_id, day)


@route.get("/v1/admin/quarantine", "Rides stored twice for one code, taken out")
def quarantine(db: DB) -> Any:
    return {"rides": quarantined_rides(db)}


@route.get("/v1/admin/conflicts", "Records held aside: other content under a held identity")
def held_conflicts(db: DB, terminal_id: Text | None = None) -> Any:
    return {"conflicts": conflicts.held(db, terminal_id=terminal_id)}


@route.get(
    "/v1/admin/late-after-carry",
    "Purchases of replaced cards uploaded after their balance was carried, by lost card",
)
def late_after_carry(db: DB, card: Text | None = None) -> Any:
    return carried_late.late_after_carry(db, card=card)
