"""The gateway's HTTP API (FastAPI): batch ingest, hotlist, online load, card book, subsidies,
admin, health, metrics.

``create_app`` only assembles: it puts the database, an optional host security module
(online loads), the settings and the counters on ``app.state`` (routes reach them through
``gateway.api.deps``), runs the forwarders while the app lives (when a clearing URL is
set), puts ``BodyLimit`` in front and mounts one router per area. Refusals are
``{"error": code, "reason": text}`` (``gateway.api.http``); OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from gateway.api import (
    admin,
    campus,
    cards,
    deps,
    hotlist,
    ingest,
    loads,
    numbers,
    ops,
    qr_params,
    subsidies,
)
from gateway.api.http import install_error_handlers, refusal
from gateway.edges import BodyLimit
from gateway.forwarder import Forwarder
from gateway.hsm import HostSecurityModule
from gateway.metrics import IngestCounters
from gateway.settings import GatewaySettings
from gateway.storage import Database
from gateway.subsidy.catalogue import DEMO_CATALOGUE, load_catalogue

__all__ = ["GatewaySettings", "create_app"]
ROUTERS = (ingest, hotlist, loads, cards, numbers, subsidies, admin, ops, campus, qr_params)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Forward stored transactions to clearing while the app runs (when it has a URL)."""
    settings: GatewaySettings = app.state.settings
    forwarders: list[Forwarder] = app.state.forwarders
    if settings.clearing_url:
        for _ in range(settings.forwarders):
            f = Forwarder(
                app.state.db,
                settings.clearing_url,
                gateway_id=settings.gateway_id,
                batch_size=settings.forward_batch,
                lease_ms=settings.lease_ms,
                poll_interval=settings.poll_interval,
            )
            f.start()
            forwarders.append(f)
    yield
    for f in forwarders:
        await run_in_threadpool(f.stop)


def create_app(
    db: Database, *, hsm: HostSecurityModule | None = None, settings: GatewaySettings | None = None
) -> FastAPI:
    settings = settings or GatewaySettings()
    app = FastAPI(
        title="yikatong gateway",
        version="1",
        description="Terminals upload settled e-purse transactions in batches; the gateway "
        "stores them once, forwards them to clearing, distributes the hotlist and "
        "authorises online loads for kiosks.",
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.hsm = hsm
    app.state.settings = settings
    app.state.counters = IngestCounters()
    app.state.forwarders = []
    app.state.catalogue = load_catalogue(settings.subsidy_catalogue or DEMO_CATALOGUE)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        limit_for=settings.body_limit,
        gate=partial(deps.gate, app),
        refuse=partial(refusal, app),
    )
    for area in ROUTERS:
        app.include_router(area.router)
    return app
