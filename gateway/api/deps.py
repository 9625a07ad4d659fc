"""What routes depend on, through FastAPI ``Depends``: the app's parts and the caller's rights.

``create_app`` puts the database, HSM, settings, counters and forwarders on ``app.state``;
the providers here hand them to routes. ``Caller`` is the authenticated terminal,
``with_role(...)`` one with a given role, ``admin`` checks the ``X-Admin-Token`` header.
``gate`` applies the same checks from headers alone, before a body is read (``BodyLimit``).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from gateway import auth
from gateway.errors import Forbidden, Unauthenticated, Unavailable
from gateway.forwarder import Forwarder
from gateway.hsm import HostSecurityModule
from gateway.metrics import IngestCounters
from gateway.settings import GatewaySettings
from gateway.storage import Database
from gateway.subsidy.catalogue import Catalogue


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_counters(request: Request) -> IngestCounters:
    return request.app.state.counters  # type: ignore[no-any-return]


def get_forwarders(request: Request) -> list[Forwarder]:
    return request.app.state.forwarders  # type: ignore[no-any-return]


def get_catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue  # type: ignore[no-any-return]


def get_hsm(request: Request) -> HostSecurityModule:
    """The host security module; 503 ``no_hsm`` on a gateway without one."""
    hsm = request.app.state.hsm
    if hsm is None:
        raise Unavailable("no_hsm", "this gateway has no host security module")
    return hsm  # type: ignore[no-any-return]


def get_optional_hsm(request: Request) -> HostSecurityModule | None:
    return request.app.state.hsm  # type: ignore[no-any-return]


DB = Annotated[Database, Depends(get_db)]
Settings = Annotated[GatewaySettings, Depends(get_settings)]
Counters = Annotated[IngestCounters, Depends(get_counters)]
Forwarders = Annotated[list[Forwarder], Depends(get_forwarders)]
HSM = Annotated[HostSecurityModule, Depends(get_hsm)]
OptionalHSM = Annotated[HostSecurityModule | None, Depends(get_optional_hsm)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]


def verify_admin_token(given: str | None, expected: str) -> None:
    """Compare an ``X-Admin-Token`` header in constant time; ``Unauthenticated`` when wrong.

    Headers arrive decoded as Latin-1, so any byte string compares (as bytes, never as
    ``str``, which ``compare_digest`` refuses for non-ASCII)."""
    if not given:
        raise Unauthenticated("unauthenticated", "admin token missing or wrong")
    raw = given.encode("latin-1", "replace")
    if not secrets.compare_digest(raw, expected.encode("utf-8")):
        raise Unauthenticated("unauthenticated", "admin token missing or wrong")


def check_admin(settings: GatewaySettings, token: str | None) -> None:
    if not settings.admin_token:
        raise Forbidden("admin_disabled", "this gateway has no admin token set")
    verify_admin_token(token, settings.admin_token)


def admin(settings: Settings, x_admin_token: Annotated[str | None, Header()] = None) -> None:
    """Route dependency: the caller holds this gateway's admin token."""
    check_admin(settings, x_admin_token)


def caller(
    request: Request, db: DB, authorization: Annotated[str | None, Header()] = None
) -> auth.Terminal:
    """Route dependency: the terminal named by the bearer token (401/403 otherwise); for a
    request with a body, the one ``gate`` already authenticated from the same header."""
    known = getattr(request.state, GATED, None)
    return known if known is not None else auth.authenticate(db, authorization)


Caller = Annotated[auth.Terminal, Depends(caller)]


def with_role(*roles: str) -> Any:
    """The type of a route parameter that is the authenticated terminal, refused (403
    ``wrong_role``) unless it has one of ``roles``."""

    def check(terminal: Caller) -> auth.Terminal:
        auth.require_role(terminal, *roles)
        return terminal

    return Annotated[auth.Terminal, Depends(check)]


Kiosk = with_role("kiosk")
Desk = with_role("issuance")
Loader = with_role("kiosk", "issuance")  # the roles that move money onto cards


GATED = "gated_terminal"  # request state: the terminal ``gate`` authenticated


async def gate(app: Any, path: str, headers: Headers) -> dict[str, Any]:
    """Refuse a request with a body before reading it: admin token or terminal token.
    Returns what the request's state keeps: the terminal, so routes need not look it up
    again."""
    if path.startswith("/v1/admin/"):
        check_admin(app.state.settings, headers.get("x-admin-token"))
        return {}
    terminal = await run_in_threadpool(
        auth.authenticate, app.state.db, headers.get("authorization")
    )
    return {GATED: terminal}
