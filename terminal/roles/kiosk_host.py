"""The gateway's kiosk services over HTTP: subsidy pickup and loss reporting (挂失).

``HttpSubsidyHost`` is an ``HttpLoadHost`` whose loads pay roster lines: ``paying(ids)``
gives a ``LoadHost`` that asks ``/v1/subsidies/pickups`` with the holder's answer (the
whole ID number; the gateway checks it against the card book, then
reserves the lines in the same request that returns MAC2) and confirms the TAC as any
load. Its ``prove``, ``void_challenge`` and ``void`` settle a held pickup through the
subsidy endpoints: PROVE is accepted at any kiosk, so ``resolve_load`` confirms a load
another kiosk started; a void only by the kiosk that holds the load (the others' attempt
is refused and the load stays held until that kiosk sees the card again).
Every call is idempotent and retried on network failure like the top-up calls.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from terminal.epurse.host import LoadDeclined
from terminal.epurse.model import LoadAuthorization, LoadRequest
from terminal.roles.load_host import HttpLoadHost, declined, request_json
from terminal.uplink.client import GatewayClient, GatewayRefused


class HttpSubsidyHost(HttpLoadHost):
    """A kiosk's subsidy services; ``lines`` and ``holder`` set (by ``paying``) make it a
    pickup host."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        lines: list[int] | None = None,
        holder: str | None = None,
        retries: int = 3,
        retry_delay: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ):
        kwargs: dict[str, Any] = {"retries": retries, "retry_delay": retry_delay}
        if sleep is not None:
            kwargs["sleep"] = sleep
        super().__init__(client, **kwargs)
        self.lines = lines
        self.holder = holder

    def for_card(self, card_number: str) -> dict[str, Any]:
        """The card's lines by status, and the unconfirmed loads holding some of them."""
        return dict(self._call("GET", f"/v1/subsidies/cards/{card_number}"))

    def paying(self, line_ids: list[int], holder: str) -> HttpSubsidyHost:
        """A load host whose next load pays exactly these lines, for the holder who answered
        ``holder`` (their ID number)."""
        return HttpSubsidyHost(
            self.client,
            lines=list(line_ids),
            holder=holder,
            retries=self.retries,
            retry_delay=self.retry_delay,
            sleep=self.sleep,
        )

    def authorize_load(self, request: LoadRequest) -> LoadAuthorization:
        if self.lines is None or self.holder is None:
            raise LoadDeclined("no subsidy lines or holder answer for this load")
        body = {"load": request_json(request), "lines": self.lines, "holder": self.holder}
        try:
            doc = self._call("POST", "/v1/subsidies/pickups", json=body)
        except GatewayRefused as exc:
            raise declined(exc) from exc
        load = doc["load"]
        return LoadAuthorization(
            bytes.fromhex(load["mac2"]),
            datetime.fromisoformat(load["host_time"]),
            load["reference"],
        )

    def prove(self, reference: str, mac: bytes, tac: bytes) -> Any:
        return self._call(
            "POST",
            f"/v1/subsidies/loads/{reference}/prove",
            json={"mac": mac.hex().upper(), "tac": tac.hex().upper()},
        )

    def void_challenge(self, reference: str) -> Any:
        return self._call("POST", f"/v1/subsidies/loads/{reference}/void-challenge")

    def void(self, reference: str, evidence: LoadRequest) -> Any:
        return self._call(
            "POST",
            f"/v1/subsidies/loads/{reference}/void",
            json={"evidence": request_json(evidence)},
        )


def report_loss(client: GatewayClient, card_number: str, id_number: str) -> dict[str, Any]:
    """挂失 at the gateway: the card goes on the hotlist every terminal pulls."""
    return dict(
        client.request(
            "POST", "/v1/cards/loss", json={"card_number": card_number, "id_number": id_number}
        )
    )
