"""Issuance records to the gateway: a desk pushes its book's export after the gateway's cursor.

The gateway answers the newest revision it holds from this desk (``/v1/issuance/cursor``),
so the desk keeps no state of its own: it exports what changed after that revision and
posts it in slices. Records are identified by (card number, revision), so a push that
is repeated, overlaps an earlier one, or is cut off and restarted stores each record once.
A book that knows its desk (from its leased blocks) names it in every push, so pushing it
with another desk's token is refused, never answered with "nothing new". The card
centre's numbering (``GatewayCentre``: blocks of card numbers, the person check) is here
too, over the same client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from terminal.roles.registry import (
    CardRecord,
    CentreRefused,
    CentreUnreachable,
    NotThisDesk,
    NumberBlock,
)
from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable

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
    desk_id: str | None = None,
) -> PushResult:
    """Post ``export(since)`` (``CardRegistry.export``) to the gateway, oldest change first;
    ``since`` None asks the gateway where this desk's records stop. ``desk_id``: the desk
    the book belongs to; ``NotThisDesk`` when the token is another desk's."""
    if since is None:
        cursor = client.request("GET", "/v1/issuance/cursor")
        if desk_id is not None and cursor["desk_id"] != desk_id:
            raise NotThisDesk(
                f"this book belongs to desk {desk_id}, but the token is desk "
                f"{cursor['desk_id']}'s: push with desk {desk_id}'s token"
            )
        since = int(cursor["revision"])
        if since > 0 and not export(since) and not export(since - 1):
            raise NotThisDesk(
                f"the gateway holds revision {since} from desk {cursor['desk_id']}, but this "
                "book does not reach it: it is not that desk's book (check --registry and the "
                "token)"
            )
    records = export(since)
    result = PushResult(cursor=since)
    body: dict[str, Any] = {} if desk_id is None else {"desk_id": desk_id}
    for start in range(0, len(records), slice_size):
        part = records[start : start + slice_size]
        doc = client.request("POST", "/v1/issuance/records", json={**body, "records": part})
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
        desk_id: str | None = None,
    ):
        self.client = client
        self.export = export
        self.pushed = pushed
        self.desk_id = desk_id

    def push(self) -> PushResult:
        result = push_issuance(self.client, self.export, desk_id=self.desk_id)
        if self.pushed is not None:
            self.pushed(result)
        return result

    def last_known_balance(self, card_number: str) -> dict[str, Any] | None:
        return last_known_balance(self.client, card_number)


class GatewayCentre:
    """The gateway as the desk's numbering authority (``CardCentre``): leases blocks of card
    numbers and checks the holder against the central book before a card is written."""

    def __init__(self, client: GatewayClient):
        self.client = client

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self.client.request("POST", path, json=body)
        except GatewayUnavailable as exc:
            raise CentreUnreachable(f"the card centre did not answer: {exc}") from None
        except GatewayRefused as exc:
            raise CentreRefused(exc.code, exc.reason) from None

    def lease(self, issuer_id: bytes, desk_id: str, count: int) -> NumberBlock:
        body = {"issuer_id": issuer_id.hex().upper(), "desk_id": desk_id, "count": count}
        doc = self._call("/v1/numbers/blocks", body)
        return NumberBlock(
            int(doc["block_id"]),
            bytes.fromhex(doc["issuer_id"]),
            str(doc["desk_id"]),
            int(doc["first"]),
            int(doc["last"]),
        )

    def claim(self, record: CardRecord) -> None:
        body = {
            "card_number": record.card_number,
            "issuer_id": record.issuer_id.hex().upper(),
            "id_number": record.holder.id_number,
            "card_kind": record.holder.card_kind,
            "replaces": record.replaces,
        }
        self._call("/v1/numbers/claims", body)
