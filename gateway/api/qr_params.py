"""Ride-code parameter files: admins upload them, validators fetch the newer ones."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from gateway import qr_params
from gateway.api.deps import DB, Caller, admin
from gateway.api.http import json_response
from gateway.edges import INT64_MAX, Text
from gateway.schemas import QrParamsBody

router = APIRouter(tags=["qr"])


@router.put(
    "/v1/admin/qr-params/{kind}",
    summary="Upload a new version of the root keys or the issuer whitelist",
    dependencies=[Depends(admin)],
)
def put_params(kind: Text, body: QrParamsBody, db: DB) -> Response:
    version, entries = qr_params.upload(db, kind, body.text, actor="admin")
    return json_response({"kind": kind, "version": version, "entries": entries}, 201)


@router.get("/v1/qr-params", summary="The parameter files newer than a version")
def get_params(terminal: Caller, db: DB, since: int = Query(0, ge=0, le=INT64_MAX)) -> Response:
    latest, files = qr_params.newer(db, since)
    return json_response(
        {"version": latest, "since": since, "files": {k: f.to_json() for k, f in files.items()}}
    )
