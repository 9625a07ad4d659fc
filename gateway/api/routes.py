"""Routes whose handler returns JSON data: the admin check and the JSON answer written once.

Most handlers take their parameters (path, body, caller, database), call one function of a
business module and answer what it returns; ``JsonRoutes`` registers such a handler and
answers its return value. The held-load steps (prove, void challenge, void) of kiosk loads
and subsidy pickups are the same three routes over two paths: ``held_load_routes``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from gateway.api.deps import DB, HSM, Caller, admin
from gateway.api.http import json_response
from gateway.edges import Text
from gateway.schemas import ProveBody, VoidBody

Handler = Callable[..., Any]
Responses = dict[int | str, dict[str, Any]] | None


class JsonRoutes:
    """Decorators like ``APIRouter.get`` and ``.post`` for handlers that return JSON data:
    FastAPI reads the handler's own parameters; what it returns is answered as JSON with
    ``status``. ``responses``: the refusals to document (OpenAPI), as for ``APIRouter``.
    ``admin_only``: every route needs the admin token (checked first)."""

    def __init__(self, router: APIRouter, *, admin_only: bool = False) -> None:
        self.router = router
        self.dependencies = [Depends(admin)] if admin_only else None

    def get(
        self, path: str, summary: str, *, status: int = 200, responses: Responses = None
    ) -> Callable[[Handler], Handler]:
        return self._route("GET", path, summary, status, responses)

    def post(
        self, path: str, summary: str, *, status: int = 200, responses: Responses = None
    ) -> Callable[[Handler], Handler]:
        return self._route("POST", path, summary, status, responses)

    def put(
        self, path: str, summary: str, *, status: int = 200, responses: Responses = None
    ) -> Callable[[Handler], Handler]:
        return self._route("PUT", path, summary, status, responses)

    def _route(
        self, method: str, path: str, summary: str, status: int, responses: Responses
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            @functools.wraps(handler)
            def endpoint(*args: Any, **kwargs: Any) -> Response:
                return json_response(handler(*args, **kwargs), status)

            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                summary=summary,
                responses=responses,
                response_model=None,
                dependencies=self.dependencies,
            )
            return handler

        return register


def held_load_routes(
    router: APIRouter,
    base: str,
    *,
    prove: Callable[..., Any],
    void_challenge: Callable[..., Any],
    void: Callable[..., Any],
    summaries: tuple[str, str, str],
) -> None:
    """``base/{reference}/prove``, ``/void-challenge`` and ``/void`` for the terminal that
    holds a load: ``prove(db, hsm, terminal, reference, mac, tac)``, ``void_challenge(db,
    terminal, reference)`` and ``void(db, hsm, terminal, reference, evidence)``, each
    answering the load (or the challenge) as JSON. ``summaries``: the three, in order."""
    held = f"{base}/{{reference}}"
    route = JsonRoutes(router)

    @route.post(f"{held}/prove", summaries[0])
    def prove_load(reference: Text, body: ProveBody, terminal: Caller, hsm: HSM, db: DB) -> Any:
        mac, tac = bytes.fromhex(body.mac), bytes.fromhex(body.tac)
        return prove(db, hsm, terminal, reference, mac, tac).to_json()

    @route.post(f"{held}/void-challenge", summaries[1])
    def challenge_void(reference: Text, terminal: Caller, db: DB) -> Any:
        return void_challenge(db, terminal, reference).to_json()

    @route.post(f"{held}/void", summaries[2])
    def void_load(reference: Text, body: VoidBody, terminal: Caller, hsm: HSM, db: DB) -> Any:
        return void(db, hsm, terminal, reference, body.evidence.to_request()).to_json()
