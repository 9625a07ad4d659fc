"""The gateway's refusals: an HTTP status, a short machine code and a reason a person can read."""

from __future__ import annotations

from terminal.apdu.errors import YikatongError


class GatewayError(YikatongError):
    """A request the gateway refuses; rendered as ``{"error": code, "reason": reason}``."""

    def __init__(self, status: int, code: str, reason: str):
        super().__init__(f"{status} {code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason


def bad_request(code: str, reason: str) -> GatewayError:
    return GatewayError(400, code, reason)


def unprocessable(code: str, reason: str) -> GatewayError:
    return GatewayError(422, code, reason)


def conflict(code: str, reason: str) -> GatewayError:
    return GatewayError(409, code, reason)


def not_found(code: str, reason: str) -> GatewayError:
    return GatewayError(404, code, reason)
