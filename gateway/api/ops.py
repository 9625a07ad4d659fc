"""Operations: liveness with the outbox depth, clearing's refusals and what an operator must
look at; Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gateway.api.deps import DB, Counters, Forwarders
from gateway.api.routes import JsonRoutes
from gateway.carried_late import late_count
from gateway.conflicts import held_count
from gateway.metrics import render

router = APIRouter(tags=["ops"])
route = JsonRoutes(router)


@route.get("/health", "Liveness and storage check")
def health(db: DB, forwarders: Forwarders) -> Any:
    with db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM outbox WHERE posted_at IS NULL")
        depth = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM outbox WHERE outcome = 'rejected'")
        refused = cur.fetchone()[0]
        conflicts = held_count(cur)
        late = late_count(cur)
    return {
        "status": "ok",
        "storage": db.dialect,
        "outbox_depth": depth,
        "conflicts_held": conflicts,
        "late_after_carry": late,  # replaced cards' purchases uploaded after the carry
        "clearing_rejected": refused,  # records clearing refused (reconciliation lists them)
        "forwarders": len(forwarders),
    }


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(db: DB, counters: Counters, forwarders: Forwarders) -> PlainTextResponse:
    failures = sum(f.stats.failures for f in forwarders)
    return PlainTextResponse(render(counters, db, failures), media_type="text/plain; version=0.0.4")
