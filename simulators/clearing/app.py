"""The clearing service over HTTP (FastAPI): post records, settlement, reconciliation.

``POST /v1/records`` takes ``{"gateway_id", "records": [...]}`` and answers one result
per record (accepted, duplicate, or rejected with a reason). ``GET /v1/reconciliation``
gives per terminal and kind the count, amount and digest of a gateway's accepted records
and the columns they are settled on; ``GET /v1/reconciliation/records`` pages through the
records behind one such row, each with those columns.
``delay`` slows every post down, so a test can kill a gateway while its post is in flight.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from simulators.clearing.ledger import Ledger

MAX_RECORDS = 5000
MAX_PAGE = 1000


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def create_app(ledger: Ledger, *, delay: float = 0.0) -> FastAPI:
    app = FastAPI(
        title="yikatong clearing simulator",
        description="Verifies every TAC with issuer keys, de-duplicates, settles per "
        "issuer and operator, and reconciles with each gateway.",
    )
    app.state.ledger = ledger

    @app.post("/v1/records")
    def post_records(body: dict[str, Any]) -> Response:
        gateway_id = body.get("gateway_id")
        records = body.get("records")
        if not isinstance(gateway_id, str) or not gateway_id:
            return _json({"error": "bad_layout", "reason": "gateway_id is required"}, 400)
        if not isinstance(records, list) or len(records) > MAX_RECORDS:
            return _json(
                {"error": "bad_layout", "reason": f"records must be a list of <= {MAX_RECORDS}"},
                400,
            )
        if delay:
            time.sleep(delay)
        return _json({"results": ledger.post(gateway_id, records)})

    @app.get("/v1/settlement")
    def settlement(day: str | None = None) -> Response:
        return _json(ledger.settlement(day))

    @app.get("/v1/reconciliation")
    def reconciliation(gateway_id: str, day: str | None = None) -> Response:
        return _json(ledger.reconciliation(gateway_id, day))

    @app.get("/v1/reconciliation/records")
    def reconciliation_records(
        gateway_id: str,
        terminal_id: str,
        kind: str,
        day: str | None = None,
        after: str = "",
        limit: int = Query(500, ge=1, le=MAX_PAGE),
    ) -> Response:
        return _json(ledger.cleared_records(gateway_id, terminal_id, kind, day, after, limit))

    @app.get("/v1/rejections")
    def rejections() -> Response:
        return _json(ledger.rejections())

    @app.get("/v1/stats")
    def stats() -> Response:
        return _json(ledger.stats())

    @app.get("/health")
    def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
