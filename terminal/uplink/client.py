"""HTTP client for the gateway's terminal API (httpx): uploads, hotlist, online loads.

Failures come in two kinds: ``GatewayUnavailable`` (network, timeout, 5xx - try again
later, nothing was decided) and ``GatewayRefused`` (a 4xx with the gateway's reason -
sending the same thing again will not help).
"""

from __future__ import annotations

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


class GatewayClient:
    """One terminal's authenticated connection to the gateway."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
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
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise GatewayUnavailable(f"{method} {path}: gateway answered {resp.status_code}")
        if resp.status_code < 200 or 300 <= resp.status_code < 400:  # never followed
            where = resp.headers.get("location", "")[:200]
            raise GatewayUnavailable(
                f"{method} {path}: gateway answered {resp.status_code} {where}".rstrip()
            )
        if resp.status_code >= 400:
            try:
                doc = resp.json()
                code, reason = doc.get("error", "refused"), doc.get("reason", resp.text)
            except ValueError:
                code, reason = "refused", resp.text[:300]
            raise GatewayRefused(resp.status_code, code, reason)
        try:
            return resp.json()
        except ValueError as exc:
            raise GatewayUnavailable(f"{method} {path}: answer is not JSON") from exc

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
