"""The gateway's refusals as domain exceptions: a machine code and a reason a person can read.

Business modules raise the kind that says why (``Invalid``, ``NotFound``, ``Conflict`` …);
they know nothing of HTTP. The HTTP layer (``gateway.api.http``) maps each kind to its
status code and renders ``{"error": code, "reason": reason}``.
"""

from __future__ import annotations

from terminal.apdu.errors import YikatongError


class Refused(YikatongError):
    """A request the gateway refuses; ``code`` is for machines, ``reason`` for people."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Malformed(Refused):
    """The body cannot be read at all: not JSON, or not the expected layout."""


class Invalid(Refused):
    """The request reads but a value in it is wrong."""


class Unauthenticated(Refused):
    """No credentials, or credentials the gateway does not know."""


class Forbidden(Refused):
    """The caller is known but may not do this (revoked, wrong role, another's record)."""


class NotFound(Refused):
    """The thing named does not exist (for this caller)."""


class Conflict(Refused):
    """The request clashes with what is stored (state, an earlier request, a race)."""


class TooLarge(Refused):
    """The request is bigger than the gateway takes."""


class Unavailable(Refused):
    """This gateway lacks the part the request needs (HSM, clearing, admin token)."""
