"""Hotlist distribution to terminals (``GET /v1/hotlist``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from gateway import hotlist
from gateway.api.deps import DB, Caller
from gateway.api.routes import JsonRoutes
from gateway.edges import INT64_MAX

router = APIRouter(tags=["hotlist"])
route = JsonRoutes(router)


@route.get("/v1/hotlist", "Hotlist changes after a version")
def get_hotlist(
    terminal: Caller,
    db: DB,
    since: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(hotlist.MAX_DELTA, ge=1, le=hotlist.MAX_DELTA),
) -> Any:
    latest, changes = hotlist.delta(db, since, limit)
    more = bool(changes) and changes[-1].version < latest
    return {
        "version": latest,
        "since": since,
        "more": more,
        "changes": [c.to_json() for c in changes],
    }
