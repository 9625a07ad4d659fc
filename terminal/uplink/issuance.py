"""Issuance records to the gateway: a desk pushes its book's export after the gateway's cursor.

The gateway answers the newest revision it holds from this desk (``/v1/issuance/cursor``),
so the desk keeps no state of its own: it exports what changed after that revision and
posts it in slices. Records are identified by (card number, revision), so a push that
is repeated, overlaps an earlier one, or is cut off and restarted stores each record once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from terminal.uplink.client import GatewayClient, GatewayRefused

SLICE = 500


@dataclass
class PushResult:
    sent: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    cursor: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)  # conflict answers


def push_issuance(
    client: GatewayClient,
    export: Callable[[int], list[dict[str, Any]]],
    *,
    since: int | None = None,
    slice_size: int = SLICE,
) -> PushResult:
    """Post ``export(since)`` (``CardRegistry.export``) to the gateway, oldest change first;
    ``since`` None asks the gateway where this desk's records stop."""
    if since is None:
        since = int(client.request("GET", "/v1/issuance/cursor")["revision"])
    records = export(since)
    result = PushResult(cursor=since)
    for start in range(0, len(records), slice_size):
        part = records[start : start + slice_size]
        doc = client.request("POST", "/v1/issuance/records", json={"records": part})
        result.sent += len(part)
        for status, n in doc["counts"].items():
            result.counts[status] = result.counts.get(status, 0) + n
        result.refused += [a for a in doc["answers"] if a["status"] == "conflict"]
        result.cursor = int(doc["cursor"])
    return result


def last_known_balance(client: GatewayClient, card_number: str) -> dict[str, Any] | None:
    """The card's balance after its newest transaction the gateway holds, or None."""
    try:
        return dict(client.request("GET", f"/v1/cards/{card_number}/balance"))
    except GatewayRefused as exc:
        if exc.code == "no_transactions":
            return None
        raise


class GatewayCardBook:
    """The gateway's card book for one desk (``IssuanceDesk``'s ``CardBook``): pushes the
    desk's ``export`` and asks for a lost card's proven balance; ``pushed`` sees each push."""

    def __init__(
        self,
        client: GatewayClient,
        export: Callable[[int], list[dict[str, Any]]],
        *,
        pushed: Callable[[PushResult], None] | None = None,
    ):
        self.client = client
        self.export = export
        self.pushed = pushed

    def push(self) -> PushResult:
        result = push_issuance(self.client, self.export)
        if self.pushed is not None:
            self.pushed(result)
        return result

    def last_known_balance(self, card_number: str) -> dict[str, Any] | None:
        return last_known_balance(self.client, card_number)
