"""The gateway's edges: bounded request bodies, and the field types every input goes through.

``BodyLimit`` is an ASGI middleware in front of every route: a request that carries a body
is authenticated from its headers first, then its body is read with a hard byte limit
(Content-Length over the limit: refused unread; chunked: counted while read, refused the
moment the limit is passed). Only then does the route (or FastAPI's JSON parsing) see it.

``Text``, ``DbInt`` and ``DbId`` are the types for request fields: text without NUL or
lone surrogates (neither can be stored: PostgreSQL refuses NUL, UTF-8 has no surrogates),
integers within the storage's signed 64-bit range.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import Refused, TooLarge

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def storable_text(value: str) -> str:
    """``value`` if it can be stored as UTF-8 text everywhere; ValueError (a 422) otherwise."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must not contain lone surrogates (not valid Unicode)") from None
    return value


def storable_json(value: Any) -> Any:
    """Every string (keys too) and integer in a JSON value checked as ``Text`` / ``DbInt``."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("integers must fit in 64 bits")
        return value
    if isinstance(value, dict):
        for k, v in value.items():
            storable_text(str(k))
            storable_json(v)
    elif isinstance(value, list):
        for v in value:
            storable_json(v)
    return value


Text = Annotated[str, AfterValidator(storable_text)]
JsonValue = Annotated[Any, AfterValidator(storable_json)]
DbInt = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
DbId = Annotated[int, Field(ge=0, le=INT64_MAX)]


def too_large(limit: int) -> TooLarge:
    return TooLarge("too_large", f"this endpoint takes a body of at most {limit} bytes")


class _Disconnected(Exception):
    """The client went away before its body was complete: nothing to answer."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, or ``too_large`` as soon as more than ``limit`` bytes came."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: authenticate requests with a body from their headers, then bound it.

    ``limit_for(path)`` gives a route's byte limit; ``gate(path, headers)`` raises
    ``Refused`` for a caller the route would refuse, else returns what the request's state
    keeps (the authenticated terminal, so the route does not look it up again);
    ``refuse(path, error)`` renders a refusal the way the app does.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_for: Callable[[str], int],
        gate: Callable[[str, Headers], Awaitable[dict[str, Any]]],
        refuse: Callable[[str, Refused], Response],
    ):
        self.app = app
        self.limit_for = limit_for
        self.gate = gate
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if "transfer-encoding" not in headers and length in (None, "0"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limit_for(path)
        try:
            scope.setdefault("state", {}).update(await self.gate(path, headers))
            if length is not None and int(length) > limit:
                raise too_large(limit)
            body = await read_body(receive, limit)
        except Refused as exc:
            response = self.refuse(path, exc)
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the client's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
