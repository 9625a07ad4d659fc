"""Batch upload of settled transactions (``POST /v1/batches``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gateway import ingest
from gateway.api.deps import DB, Caller, Counters, Settings
from gateway.api.http import json_response
from gateway.schemas import BatchAck, UploadBatch, inline_schema

router = APIRouter(tags=["ingest"])


@router.post(
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
async def upload(
    request: Request, terminal: Caller, db: DB, settings: Settings, counters: Counters
) -> Response:
    body = await request.body()

    def work() -> ingest.BatchResult:
        batch = ingest.parse_batch(
            body,
            terminal,
            max_records=settings.max_batch_records,
            max_balance=settings.load_limits.max_balance,
            qr_policy=settings.qr,
        )
        return ingest.store_batch(db, terminal, batch)

    result = await run_in_threadpool(work)
    counts = result.counts()
    counters.batch(counts)
    return json_response(
        {
            "batch_id": result.batch_id,
            "terminal_id": result.terminal_id,
            "replay": result.replay,
            "counts": counts,
            "acks": [{result.seq_name: s, "status": st} for s, st in result.acks],
        }
    )
