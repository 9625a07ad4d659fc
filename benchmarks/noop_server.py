"""The benchmark's HTTP baseline: a uvicorn app whose one route reads and parses a batch body.

Same server, same JSON parse as the gateway's ingest, nothing validated or stored; the
gateway itself serves no such route. Run: ``python -m benchmarks.noop_server --port N``.
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response


def create_noop_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/noop")
    async def noop(request: Request) -> Response:
        doc = json.loads(await request.body())
        body = json.dumps({"records": len(doc.get("records", ()))})
        return Response(body, media_type="application/json")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8979)
    args = p.parse_args()
    uvicorn.run(create_noop_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
