"""The gateway's HTTP API (FastAPI): batch ingest, hotlist, online load, admin, health, metrics.

``create_app`` wires a database, an optional host security module (online loads) and an
optional clearing URL (the forwarder runs in the background when one is given).
Refusals are ``{"error": code, "reason": text}`` with a 4xx status; OpenAPI docs are at
``/docs``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from fastapi import FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers

from gateway import auth, cards, hotlist, ingest, loads
from gateway.edges import INT64_MAX, BodyLimit, JsonValue, Text
from gateway.errors import GatewayError, not_found, unprocessable
from gateway.forwarder import Forwarder
from gateway.hsm import HostSecurityModule
from gateway.metrics import IngestCounters, render
from gateway.storage import Database
from terminal.epurse.model import LoadRequest

HEX4 = r"^[0-9A-Fa-f]{8}$"
DEFAULT_BODY_LIMIT = 64 * 1024
BODY_LIMITS = {  # path prefix -> bytes; every other route takes DEFAULT_BODY_LIMIT
    "/v1/batches": ingest.MAX_BODY_BYTES,
    "/v1/issuance/records": 4 * 1024 * 1024,
    "/v1/admin/subsidies/rosters": 10 * 1024 * 1024,
}


@dataclass
class GatewaySettings:
    gateway_id: str = "gateway"
    admin_token: str | None = None
    clearing_url: str | None = None
    forwarders: int = 1
    forward_batch: int = 500
    lease_ms: int = 30_000
    poll_interval: float = 0.5
    max_batch_records: int = ingest.MAX_BATCH_RECORDS
    load_limits: loads.LoadLimits = field(default_factory=loads.LoadLimits)
    subsidy_catalogue: str | None = None  # TOML/JSON catalogue file; None: the demo one
    subsidy_check_cards: bool = True  # roster cards must be active in the card book
    carry: cards.CarryRules = field(default_factory=cards.CarryRules)  # replacement balances
    body_limits: dict[str, int] = field(default_factory=lambda: dict(BODY_LIMITS))
    default_body_limit: int = DEFAULT_BODY_LIMIT


# -- request and response models (OpenAPI) ----------------------------------------------------
class UploadRecord(BaseModel):
    """One journal row as a terminal uploads it (``JournalRow.upload_record()``)."""

    model_config = ConfigDict(extra="forbid")  # ingest refuses unknown fields

    terminal_id: str = Field(pattern=r"^[0-9A-Fa-f]{12}$")
    terminal_seq: int = Field(ge=0, le=0xFFFFFFFF)
    issuer_id: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")
    card_serial: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")
    txn_type: int = Field(
        ge=0, le=0xFF, description="05 ED purchase, 06 EP purchase, 09 CAPP purchase"
    )
    amount: int = Field(ge=0, le=ingest.MAX_AMOUNT, description="fen")
    balance_before: int = Field(ge=0, le=ingest.MAX_BALANCE, description="fen")
    card_atc: int = Field(ge=0, le=0xFFFF)
    key_version: int = Field(ge=0, le=0xFF)
    algorithm: int = Field(ge=0, le=0xFF)
    txn_time: Text = Field(description="card local time, ISO 8601 without zone")
    state: Text = Field(description="settled or suspect")
    tac: str | None = Field(pattern=HEX4)
    mac2: str | None = Field(pattern=HEX4)
    mac2_verified: bool | None
    resolution: Text | None
    context: dict[str, JsonValue]


class UploadBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: Text = Field(description="the uploader's id for this body; re-sent as is on retry")
    terminal_id: Text = Field(description="must be the authenticated terminal")
    records: list[UploadRecord]


class Ack(BaseModel):
    terminal_seq: int
    status: str = Field(description="stored, duplicate, or conflict (kept aside, not stored)")


class BatchAck(BaseModel):
    batch_id: str
    terminal_id: str
    replay: bool
    counts: dict[str, int]
    acks: list[Ack]


class LoadRequestBody(BaseModel):
    """The card's INITIALIZE FOR LOAD answer and what the kiosk asked it."""

    issuer_id: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")
    card_serial: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")
    terminal_id: str = Field(pattern=r"^[0-9A-Fa-f]{12}$")
    amount: int = Field(gt=0, le=INT64_MAX, description="fen")
    balance_before: int = Field(ge=0, le=INT64_MAX, description="fen")
    online_atc: int = Field(ge=0, le=0xFFFF)
    key_version: int = Field(ge=0, le=0xFF)
    algorithm: int = Field(ge=0, le=0xFF)
    card_random: str = Field(pattern=HEX4)
    mac1: str = Field(pattern=HEX4)
    when: datetime
    purpose: Text = Field(default="", max_length=200, description="e.g. a subsidy roster line")

    def to_request(self) -> LoadRequest:
        return loads.load_request(self, self.when)


class ConfirmBody(BaseModel):
    tac: str = Field(pattern=HEX4)


class ProveBody(BaseModel):
    mac: str = Field(pattern=HEX4)
    tac: str = Field(pattern=HEX4)


class VoidBody(BaseModel):
    evidence: LoadRequestBody = Field(
        description="INITIALIZE FOR LOAD run with the void challenge's terminal id and amount"
    )


class TerminalBody(BaseModel):
    terminal_id: Text
    operator_id: Text
    role: Text = "pos"
    name: Text = Field(default="", max_length=200)


class HotlistBody(BaseModel):
    action: Text = Field(description="add (挂失) or remove (解挂)")
    issuer_id: Text = Field(description="16 hex digits")
    card_serial: Text = Field(description="16 hex digits (application serial)")
    reason: Text = Field(default="", max_length=200)


def verify_admin_token(given: str | None, expected: str) -> None:
    """Compare an ``X-Admin-Token`` header in constant time; 401 GatewayError when wrong.

    Headers arrive decoded as Latin-1, so any byte string compares (as bytes, never as
    ``str``, which ``compare_digest`` refuses for non-ASCII)."""
    if not given:
        raise GatewayError(401, "unauthenticated", "admin token missing or wrong")
    raw = given.encode("latin-1", "replace")
    if not secrets.compare_digest(raw, expected.encode("utf-8")):
        raise GatewayError(401, "unauthenticated", "admin token missing or wrong")


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` put in place: a raw-body route declares it in
    ``openapi_extra``, where ``#/$defs/...`` would point at the OpenAPI document's root."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def create_app(
    db: Database, *, hsm: HostSecurityModule | None = None, settings: GatewaySettings | None = None
) -> FastAPI:
    settings = settings or GatewaySettings()
    counters = IngestCounters()
    forwarders: list[Forwarder] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.clearing_url:
            for _ in range(settings.forwarders):
                f = Forwarder(
                    db,
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

    app = FastAPI(
        title="yikatong gateway",
        version="1",
        description="Terminals upload settled e-purse transactions in batches; the gateway "
        "stores them once, forwards them to clearing, distributes the hotlist and "
        "authorises online loads for kiosks.",
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.counters = counters
    app.state.forwarders = forwarders
    app.state.settings = settings

    def _refused_json(path: str, exc: GatewayError) -> Response:
        if path == "/v1/batches":
            counters.refused()
        return _json({"error": exc.code, "reason": exc.reason}, exc.status)

    @app.exception_handler(GatewayError)
    async def _refused(request: Request, exc: GatewayError) -> Response:
        return _refused_json(request.url.path, exc)

    @app.exception_handler(sqlite3.IntegrityError)
    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _raced(request: Request, exc: Exception) -> Response:
        # two requests raced for the same unique key; the first won, this one may retry
        return _json(
            {
                "error": "concurrent_update",
                "reason": "a concurrent request for the same record won; retry to see its outcome",
            },
            409,
        )

    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(psycopg.errors.DataError)
    async def _unstorable(request: Request, exc: Exception) -> Response:
        # last resort: text or a number the storage cannot hold got past validation
        return _refused_json(
            request.url.path,
            unprocessable("unstorable", "a field holds text or a number the gateway cannot store"),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = f"{where}: {first.get('msg', 'invalid request')}"
        return _json({"error": "invalid_request", "reason": reason}, 422)

    def terminal_of(authorization: str | None) -> auth.Terminal:
        return auth.authenticate(db, authorization)

    def require_admin(token: str | None) -> None:
        if not settings.admin_token:
            raise GatewayError(403, "admin_disabled", "this gateway has no admin token set")
        verify_admin_token(token, settings.admin_token)

    async def gate(path: str, headers: Headers) -> None:
        """Refuse a request with a body before reading it: admin token or terminal token."""
        if path.startswith("/v1/admin/"):
            require_admin(headers.get("x-admin-token"))
        else:
            await run_in_threadpool(terminal_of, headers.get("authorization"))

    def body_limit(path: str) -> int:
        for prefix, limit in settings.body_limits.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return settings.default_body_limit

    app.add_middleware(BodyLimit, limit_for=body_limit, gate=gate, refuse=_refused_json)

    def need_hsm() -> HostSecurityModule:
        if hsm is None:
            raise GatewayError(503, "no_hsm", "this gateway has no host security module")
        return hsm

    # -- ingest ---------------------------------------------------------------------------
    @app.post(
        "/v1/batches",
        summary="Upload a batch of settled transactions",
        response_model=BatchAck,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": inline_schema(UploadBatch)}},
            }
        },
        responses={
            400: {"description": "malformed JSON or layout"},
            401: {"description": "no or unknown credentials"},
            403: {
                "description": "revoked terminal, a batch claiming another terminal, or a role"
                " that does not upload purchases (wrong_role)"
            },
            409: {"description": "batch id already used for other content"},
            413: {"description": "batch too large"},
            422: {"description": "a record is invalid (the whole batch is refused)"},
        },
    )
    async def upload(request: Request, authorization: str | None = Header(None)) -> Response:
        terminal = await run_in_threadpool(terminal_of, authorization)
        body = await request.body()

        def work() -> ingest.BatchResult:
            batch = ingest.parse_batch(
                body,
                terminal,
                max_records=settings.max_batch_records,
                max_balance=settings.load_limits.max_balance,
            )
            return ingest.store_batch(db, terminal, batch)

        result = await run_in_threadpool(work)
        counts = result.counts()
        counters.batch(counts)
        return _json(
            {
                "batch_id": result.batch_id,
                "terminal_id": result.terminal_id,
                "replay": result.replay,
                "counts": counts,
                "acks": [{"terminal_seq": s, "status": st} for s, st in result.acks],
            }
        )

    # -- hotlist --------------------------------------------------------------------------
    @app.get("/v1/hotlist", summary="Hotlist changes after a version")
    def get_hotlist(
        since: int = Query(0, ge=0, le=INT64_MAX),
        limit: int = Query(hotlist.MAX_DELTA, ge=1, le=hotlist.MAX_DELTA),
        authorization: str | None = Header(None),
    ) -> Response:
        terminal_of(authorization)
        latest, changes = hotlist.delta(db, since, limit)
        more = bool(changes) and changes[-1].version < latest
        return _json(
            {
                "version": latest,
                "since": since,
                "more": more,
                "changes": [c.to_json() for c in changes],
            }
        )

    # -- online load ----------------------------------------------------------------------
    @app.post("/v1/loads", summary="Authorise an online load: check MAC1, return MAC2")
    def authorize_load(body: LoadRequestBody, authorization: str | None = Header(None)) -> Response:
        terminal = terminal_of(authorization)
        auth.require_role(terminal, "kiosk", "issuance")
        load = loads.authorize(
            db,
            need_hsm(),
            terminal,
            body.to_request(),
            limits=settings.load_limits,
            purpose=body.purpose,
        )
        return _json(load.to_json())

    @app.post("/v1/loads/{reference}/confirm", summary="Confirm a load with the card's TAC")
    def confirm_load(
        reference: Text, body: ConfirmBody, authorization: str | None = Header(None)
    ) -> Response:
        terminal = terminal_of(authorization)
        load = loads.confirm(db, need_hsm(), terminal, reference, bytes.fromhex(body.tac))
        return _json(load.to_json())

    @app.post("/v1/loads/{reference}/prove", summary="Settle a load from GET TRANSACTION PROVE")
    def prove_load(
        reference: Text, body: ProveBody, authorization: str | None = Header(None)
    ) -> Response:
        terminal = terminal_of(authorization)
        load = loads.prove(
            db, need_hsm(), terminal, reference, bytes.fromhex(body.mac), bytes.fromhex(body.tac)
        )
        return _json(load.to_json())

    @app.post(
        "/v1/loads/{reference}/void-challenge",
        summary="A single-use challenge for voiding a load: run INITIALIZE FOR LOAD with it",
    )
    def void_challenge(reference: str, authorization: str | None = Header(None)) -> Response:
        terminal = terminal_of(authorization)
        return _json(loads.void_challenge(db, terminal, reference).to_json())

    @app.post(
        "/v1/loads/{reference}/void",
        summary="Void a load on the card's answer to its void challenge (it never credited)",
    )
    def void_load(
        reference: Text, body: VoidBody, authorization: str | None = Header(None)
    ) -> Response:
        terminal = terminal_of(authorization)
        load = loads.void(db, need_hsm(), terminal, reference, body.evidence.to_request())
        return _json(load.to_json())

    @app.get("/v1/loads/{reference}", summary="One load of this terminal")
    def get_load(reference: Text, authorization: str | None = Header(None)) -> Response:
        terminal = terminal_of(authorization)
        load = loads.get_load(db, reference)
        if load is None or load.terminal_id != terminal.terminal_id:
            raise not_found("unknown_load", f"no load {reference} for this terminal")
        return _json(load.to_json())

    @app.get("/v1/loads", summary="This terminal's loads, optionally by state")
    def my_loads(state: Text | None = None, authorization: str | None = Header(None)) -> Response:
        terminal = terminal_of(authorization)
        items = loads.list_loads(db, terminal_id=terminal.terminal_id, state=state)
        return _json([x.to_json() for x in items])

    # -- admin ----------------------------------------------------------------------------
    @app.post("/v1/admin/terminals", summary="Register a terminal; returns its token once")
    def add_terminal(body: TerminalBody, x_admin_token: str | None = Header(None)) -> Response:
        require_admin(x_admin_token)
        token = auth.register_terminal(
            db, body.terminal_id, body.operator_id, role=body.role, name=body.name
        )
        return _json({"terminal_id": body.terminal_id.upper(), "token": token}, 201)

    @app.post("/v1/admin/terminals/{terminal_id}/revoke", summary="Revoke a terminal")
    def revoke(terminal_id: Text, x_admin_token: str | None = Header(None)) -> Response:
        require_admin(x_admin_token)
        auth.revoke_terminal(db, terminal_id)
        return _json({"terminal_id": terminal_id.upper(), "revoked": True})

    @app.post("/v1/admin/hotlist", summary="List (add, 挂失) or unlist (remove, 解挂) a card")
    def change_hotlist(body: HotlistBody, x_admin_token: str | None = Header(None)) -> Response:
        require_admin(x_admin_token)
        version = hotlist.change(
            db, body.action, body.issuer_id, body.card_serial, reason=body.reason, actor="admin"
        )
        return _json({"version": version, "changed": version is not None})

    @app.get("/v1/admin/reconciliation", summary="Compare what was posted with clearing's books")
    def reconcile(day: Text | None = None, x_admin_token: str | None = Header(None)) -> Response:
        require_admin(x_admin_token)
        if not settings.clearing_url:
            raise GatewayError(503, "no_clearing", "this gateway has no clearing URL")
        from gateway.reconcile import reconcile as run

        return _json(run(db, settings.clearing_url, settings.gateway_id, day))

    # -- card book and subsidies (issue 7) -------------------------------------------------
    from gateway.cards_api import Hooks, cards_router
    from gateway.subsidy.api import subsidy_router

    hooks = Hooks(db, terminal_of, require_admin, hsm, settings.carry)
    app.include_router(cards_router(hooks))
    app.include_router(
        subsidy_router(
            hooks,
            need_hsm,
            settings.load_limits,
            catalogue_path=settings.subsidy_catalogue,
            check_cards=settings.subsidy_check_cards,
        )
    )

    # -- operations -----------------------------------------------------------------------
    @app.get("/health", summary="Liveness and storage check")
    def health() -> Response:
        with db.tx() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox WHERE posted_at IS NULL")
            depth = cur.fetchone()[0]
        return _json(
            {
                "status": "ok",
                "storage": db.dialect,
                "outbox_depth": depth,
                "forwarders": len(forwarders),
            }
        )

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics() -> PlainTextResponse:
        failures = sum(f.stats.failures for f in forwarders)
        return PlainTextResponse(
            render(counters, db, failures), media_type="text/plain; version=0.0.4"
        )

    return app
