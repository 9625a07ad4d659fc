"""Hotlist distribution to terminals (``GET /v1/hotlist``)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gateway import hotlist
from gateway.api.deps import DB, Caller
from gateway.api.http import json_response
from gateway.edges import INT64_MAX

router = APIRouter(tags=["hotlist"])


@router.get("/v1/hotlist", summary="Hotlist changes after a version")
def get_hotlist(
    terminal: Caller,
    db: DB,
    since: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(hotlist.MAX_DELTA, ge=1, le=hotlist.MAX_DELTA),
) -> Response:
    latest, changes = hotlist.delta(db, since, limit)
    more = bool(changes) and changes[-1].version < latest
    return json_response(
        {
            "version": latest,
            "since": since,
            "more": more,
            "changes": [c.to_json() for c in changes],
        }
    )
