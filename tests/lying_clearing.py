"""A clearing service that lies, in front of the real one: for the forwarder's and
reconciliation's tests (tests/gateway/test_forwarding.py, tests/adversarial/
test_hostile_clearing.py)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.servers import UvicornThread


def _same(doc: Any) -> Any:
    return doc


class LyingClearing:
    """Passes posts to the real clearing (or not) and answers what ``lie`` makes of the real
    answer; its reconciliation report is ``report(real report)`` and each page of a row's
    records ``records(real page)``."""

    def __init__(self, real_url: str):
        self.lie: Any = None
        self.forward = True
        self.report: Any = _same
        self.records: Any = _same
        app = FastAPI()

        @app.post("/v1/records")
        async def post_records(request: Request) -> JSONResponse:
            body = await request.json()
            results = [{"key": r["key"], "status": "accepted"} for r in body["records"]]
            if self.forward:
                results = httpx.post(real_url + "/v1/records", json=body).json()["results"]
            return JSONResponse(self.lie(body, results))

        @app.get("/v1/reconciliation")
        def reconciliation(request: Request) -> JSONResponse:
            real = httpx.get(real_url + "/v1/reconciliation", params=request.query_params)
            return JSONResponse(self.report(real.json()))

        @app.get("/v1/reconciliation/records")
        def reconciliation_records(request: Request) -> JSONResponse:
            real = httpx.get(real_url + "/v1/reconciliation/records", params=request.query_params)
            return JSONResponse(self.records(real.json()))

        self.server = UvicornThread(app).start()
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()
