"""Batch upload of settled transactions (``POST /v1/batches``)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gateway import ingest
from gateway.api.deps import DB, Caller, Counters, Settings
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

    def work() -> bytes:
        batch = ingest.parse_batch(
            body,
            terminal,
            max_records=settings.max_batch_records,
            max_balance=settings.load_limits.max_balance,
            qr_policy=settings.qr,
        )
        result = ingest.store_batch(db, terminal, batch)
        counts = result.counts()
        counters.batch(counts)
        return ack_json(result, counts)

    return Response(await run_in_threadpool(work), media_type="application/json")


def ack_json(result: ingest.BatchResult, counts: dict[str, int]) -> bytes:
    """The answer as ``json_response`` writes it, the acks joined as text: they are ints and
    fixed words (0.2 ms for 500 through json.dumps, a quarter of that joined)."""
    head = json.dumps(
        {
            "batch_id": result.batch_id,
            "terminal_id": result.terminal_id,
            "replay": result.replay,
            "counts": counts,
        },
        ensure_ascii=False,
    )
    seq = f'{{"{result.seq_name}": '
    acks = ", ".join([f'{seq}{s}, "status": "{st}"}}' for s, st in result.acks])
    return f'{head[:-1]}, "acks": [{acks}]}}'.encode()
