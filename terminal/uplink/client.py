"""HTTP client for the gateway's terminal API (httpx): uploads, hotlist, online loads.

Failures come in two kinds: ``GatewayUnavailable`` (network, timeout, 5xx - try again
later, nothing was decided) and ``GatewayRefused`` (a 4xx with the gateway's reason -
sending the same thing again will not help).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from terminal.apdu.errors import YikatongError


class GatewayUnavailable(YikatongError):
    """The gateway could not be reached or failed; the request may be retried as is."""


class GatewayRefused(YikatongError):
    """The gateway refused the request (4xx) and said why."""

    def __init__(self, status: int, code: str, reason: str):
        super().__init__(f"gateway refused ({status} {code}): {reason}")
        self.status = status
        self.code = code
        self.reason = reason

    @property
    def retry_later(self) -> bool:
        """The refusal is of who asked (no valid token, a token of another role) or of the
        moment (too many requests, a concurrent request won), not of the request itself: the
        same request may pass later. Any other 4xx refuses the request for good."""
        return self.status in (401, 408, 429) or self.code in ("wrong_role", "concurrent_update")


# the largest answer a terminal reads: a hotlist page of 10,000 changes is under 2 MiB; a
# bigger body is not the gateway's, and is not read into a terminal's memory
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_NOT_JSON = object()


class GatewayClient:
    """One terminal's authenticated connection to the gateway."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ):
        self.base_url = base_url.rstrip("/")
        self.max_answer_bytes = max_answer_bytes
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            with self._http.stream(method, path, **kwargs) as resp:
                body = self._read(resp, f"{method} {path}")
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise GatewayUnavailable(f"{method} {path}: gateway answered {resp.status_code}")
        if resp.status_code < 200 or 300 <= resp.status_code < 400:  # never followed
            where = resp.headers.get("location", "")[:200]
            raise GatewayUnavailable(
                f"{method} {path}: gateway answered {resp.status_code} {where}".rstrip()
            )
        try:
            doc = json.loads(body)
        except ValueError:
            doc = _NOT_JSON
        if resp.status_code >= 400:
            text = body[:300].decode("utf-8", "replace")
            if isinstance(doc, dict):  # the gateway's refusal; anything else is worded as sent
                code, reason = str(doc.get("error", "refused")), str(doc.get("reason", text))
            else:
                code, reason = "refused", text
            raise GatewayRefused(resp.status_code, code, reason)
        if doc is _NOT_JSON:
            raise GatewayUnavailable(f"{method} {path}: answer is not JSON")
        return doc

    def _read(self, resp: httpx.Response, what: str) -> bytes:
        """The answer's body, refused unread past ``max_answer_bytes``."""
        limit = self.max_answer_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise GatewayUnavailable(
                f"{what}: answer of {declared} bytes, over the limit of {limit} bytes"
            )
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise GatewayUnavailable(
                    f"{what}: answer over the limit of {limit} bytes, not read further"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def upload(
        self,
        batch_id: str,
        terminal_id: str,
        records: list[dict[str, Any]],
        kind: str = "purchase",
    ) -> Any:
        """POST one batch of one record kind; the gateway's per-transaction acknowledgement."""
        body: dict[str, Any] = {"batch_id": batch_id, "terminal_id": terminal_id}
        if kind != "purchase":  # a purchase batch keeps the layout every gateway reads
            body["kind"] = kind
        body["records"] = records
        return self.request("POST", "/v1/batches", json=body)

    def hotlist(self, since: int = 0, limit: int = 10_000) -> Any:
        """Hotlist changes after version ``since``, at most ``limit`` (``more`` says if cut)."""
        return self.request("GET", "/v1/hotlist", params={"since": since, "limit": limit})

    def qr_params(self, since: int = 0) -> Any:
        """The ride-code parameter files newer than version ``since`` (newest of each kind)."""
        return self.request("GET", "/v1/qr-params", params={"since": since})
