"""Where a refusal becomes HTTP: each domain error kind's status, and the JSON every answer has.

Business modules raise ``gateway.errors`` kinds; ``refusal`` renders one as
``{"error": code, "reason": reason}`` with the status in ``STATUS``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from gateway.errors import (
    Conflict,
    Forbidden,
    Invalid,
    Malformed,
    NotFound,
    Refused,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

STATUS: dict[type[Refused], int] = {
    Malformed: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
    Unavailable: 503,
}
BATCHES = "/v1/batches"  # refusals on this path are counted in the ingest metrics


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def status_of(exc: Refused) -> int:
    """The HTTP status for a refusal: its kind's (the nearest listed base class)."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def refusal(app: Any, path: str, exc: Refused) -> Response:
    """``exc`` as the client sees it; a refused batch upload is counted."""
    if path == BATCHES:
        app.state.counters.refused()
    return json_response({"error": exc.code, "reason": exc.reason}, status_of(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Refusals, invalid requests, and the storage errors that are the client's doing."""

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return refusal(request.app, request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = f"{where}: {first.get('msg', 'invalid request')}"
        return json_response({"error": "invalid_request", "reason": reason}, 422)

    @app.exception_handler(sqlite3.IntegrityError)
    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _raced(request: Request, exc: Exception) -> Response:
        # two requests raced for the same unique key; the first won, this one may retry
        return json_response(
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
        return refusal(
            request.app,
            request.url.path,
            Invalid("unstorable", "a field holds text or a number the gateway cannot store"),
        )
