"""Ride-code parameter files: admins upload them, validators fetch the newer ones."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from gateway import qr_params
from gateway.api.deps import DB, Caller
from gateway.api.routes import JsonRoutes
from gateway.edges import INT64_MAX, Text
from gateway.schemas import QrParamsBody

router = APIRouter(tags=["qr"])
route = JsonRoutes(router)
admin_route = JsonRoutes(router, admin_only=True)


@admin_route.put(
    "/v1/admin/qr-params/{kind}",
    "Upload a new version of the root keys or the issuer whitelist",
    status=201,
)
def put_params(kind: Text, body: QrParamsBody, db: DB) -> Any:
    version, entries = qr_params.upload(db, kind, body.text, actor="admin")
    return {"kind": kind, "version": version, "entries": entries}


@route.get("/v1/qr-params", "The parameter files newer than a version")
def get_params(terminal: Caller, db: DB, since: int = Query(0, ge=0, le=INT64_MAX)) -> Any:
    latest, files = qr_params.newer(db, since)
    return {"version": latest, "since": since, "files": {k: f.to_json() for k, f in files.items()}}
