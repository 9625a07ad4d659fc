"""``LoadHost`` over HTTP: the kiosk's online load goes through the gateway's HSM.

``authorize_load`` sends the card's INITIALIZE FOR LOAD answer and gets MAC2 (the
gateway records the pending load and returns its reference); ``confirm_load`` reports
the card's TAC. Both are safe to retry. A load whose confirmation could not be delivered
stays ``authorized`` at the gateway; ``resolve_load`` settles it later from the card
itself: GET TRANSACTION PROVE (type 02) gives MAC2 and TAC if the card credited, and a
fresh INITIALIZE FOR LOAD showing the same online counter proves it did not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from terminal.apdu.errors import CardError
from terminal.apdu.flow import Flow, card
from terminal.epurse import commands as c
from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined
from terminal.epurse.layouts import ProveResponse
from terminal.epurse.model import CardInfo, LoadAuthorization, LoadRequest
from terminal.layout import parse
from terminal.roles.session import TerminalSession
from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable

log = logging.getLogger("terminal.uplink.loads")

PROVE_NEXT = "next"  # the card wants the counter after the transaction (ATC + 1)
PROVE_SAME = "same"  # ... or the counter the transaction used


class LoadPending(LoadDeclined):
    """The gateway holds an unsettled load at this card's counter (409 ``load_pending``):
    it must be proved or voided with the card before another load can start."""


def request_json(request: LoadRequest, purpose: str = "") -> dict[str, Any]:
    return {
        "issuer_id": request.issuer_id.hex().upper(),
        "card_serial": request.card_serial.hex().upper(),
        "terminal_id": request.terminal_id.hex().upper(),
        "amount": request.amount,
        "balance_before": request.balance_before,
        "online_atc": request.online_atc,
        "key_version": request.key_version,
        "algorithm": request.algorithm,
        "card_random": request.card_random.hex().upper(),
        "mac1": request.mac1.hex().upper(),
        "when": request.when.isoformat(timespec="seconds"),
        "purpose": purpose,
    }


class HttpLoadHost:
    """The gateway as a ``LoadHost`` (terminal/epurse/host.py), for Kiosk unchanged."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        retries: int = 3,
        retry_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        purpose: str = "",
    ):
        self.client = client
        self.retries = retries
        self.retry_delay = retry_delay
        self.sleep = sleep
        self.purpose = purpose
        self.unconfirmed: dict[str, tuple[LoadRequest, LoadAuthorization, bytes]] = {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Retry only what cannot have been decided twice: every load call is idempotent."""
        for attempt in range(self.retries + 1):
            try:
                return self.client.request(method, path, **kwargs)
            except GatewayUnavailable:
                if attempt == self.retries:
                    raise
                self.sleep(self.retry_delay * 2**attempt)
        raise AssertionError("unreachable")

    def authorize_load(self, request: LoadRequest) -> LoadAuthorization:
        try:
            doc = self._call("POST", "/v1/loads", json=request_json(request, self.purpose))
        except GatewayRefused as exc:
            raise declined(exc) from exc
        return LoadAuthorization(
            bytes.fromhex(doc["mac2"]), datetime.fromisoformat(doc["host_time"]), doc["reference"]
        )

    def confirm_load(
        self, request: LoadRequest, authorization: LoadAuthorization, tac: bytes
    ) -> None:
        try:
            self.confirm(authorization.reference, tac)
        except GatewayUnavailable:
            # the card has the money; the gateway learns it later via resolve_load
            self.unconfirmed[authorization.reference] = (request, authorization, tac)
            raise
        except GatewayRefused as exc:
            raise LoadDeclined(exc.reason) from exc
        self.unconfirmed.pop(authorization.reference, None)

    def confirm(self, reference: str, tac: bytes) -> dict[str, Any]:
        """Report the card's TAC for load ``reference``; the gateway's load as it now is."""
        return dict(
            self._call("POST", f"/v1/loads/{reference}/confirm", json={"tac": tac.hex().upper()})
        )

    def get(self, reference: str) -> dict[str, Any]:
        """One of this kiosk's loads as the gateway holds it (its state and TAC)."""
        return dict(self._call("GET", f"/v1/loads/{reference}"))

    def pending(self) -> list[dict[str, Any]]:
        """This kiosk's loads the gateway still holds as authorised but unconfirmed."""
        return list(self._call("GET", "/v1/loads", params={"state": "authorized"}))

    def prove(self, reference: str, mac: bytes, tac: bytes) -> Any:
        return self._call(
            "POST",
            f"/v1/loads/{reference}/prove",
            json={"mac": mac.hex().upper(), "tac": tac.hex().upper()},
        )

    def void_challenge(self, reference: str) -> Any:
        """The gateway's single-use challenge for voiding the load: terminal_id, amount."""
        return self._call("POST", f"/v1/loads/{reference}/void-challenge")

    def void(self, reference: str, evidence: LoadRequest) -> Any:
        return self._call(
            "POST", f"/v1/loads/{reference}/void", json={"evidence": request_json(evidence)}
        )


def declined(exc: GatewayRefused) -> LoadDeclined:
    """The gateway's refusal of a load as the ``LoadHost`` error; ``LoadPending`` when an
    unsettled load holds the card's counter."""
    if exc.code == "load_pending":
        return LoadPending(exc.reason)
    return LoadDeclined(exc.reason)


def prove_flow(online_atc: int, counter: str = PROVE_NEXT) -> Flow[tuple[bytes, bytes]]:
    """GET TRANSACTION PROVE for a load: (MAC, TAC) of the card's last credit."""
    asked = online_atc + 1 if counter == PROVE_NEXT else online_atc
    r = yield card(c.get_transaction_prove(c.TxnType.EP_LOAD, asked))
    proof = parse(ProveResponse, r.data, "GET TRANSACTION PROVE response")
    return proof.mac, proof.tac


def resolve_load(
    session: TerminalSession,
    host: HttpLoadHost,
    load: dict[str, Any],
    *,
    counter: str = PROVE_NEXT,
) -> str:
    """Settle one unconfirmed load with the card in the field: 'confirmed', 'void' or
    'unresolved' (the card can no longer prove either way, or the load is another
    kiosk's to void; an operator decides)."""
    settled = resolve_load_doc(session, host, load, counter=counter)
    return "unresolved" if settled is None else str(settled["state"])


def resolve_load_doc(
    session: TerminalSession,
    host: HttpLoadHost,
    load: dict[str, Any],
    *,
    counter: str = PROVE_NEXT,
) -> dict[str, Any] | None:
    """``resolve_load`` answering the gateway's load as settled (state, TAC), or None when it
    stays open."""
    session.card_reader.connect()
    info = session.run(flows.select())
    if info.serial_hex != load["card_serial"] or info.issuer_hex != load["issuer_id"]:
        raise ValueError(f"the card in the field is not {load['card_serial']}")
    try:
        mac, tac = session.run(prove_flow(load["online_atc"], counter))
    except CardError:
        pass
    else:
        try:
            return dict(host.prove(load["reference"], mac, tac))
        except GatewayRefused as exc:
            log.warning("proof for %s refused: %s", load["reference"], exc)
    try:
        challenge = host.void_challenge(load["reference"])
        evidence = session.run(
            flows.prepare_load(
                info, bytes.fromhex(challenge["terminal_id"]), challenge["amount"], session.now()
            )
        )
        return dict(host.void(load["reference"], evidence))
    except GatewayRefused as exc:
        log.warning("load %s stays open: %s", load["reference"], exc)
        return None


def settle_own_loads(
    session: TerminalSession, host: HttpLoadHost, info: CardInfo
) -> list[tuple[str, str]]:
    """Settle every load this kiosk holds unsettled for the card in the field (through the
    load endpoints, which take any load the kiosk started): (reference, outcome)."""
    plain = HttpLoadHost(
        host.client, retries=host.retries, retry_delay=host.retry_delay, sleep=host.sleep
    )
    mine = [
        x
        for x in plain.pending()
        if x["card_serial"] == info.serial_hex and x["issuer_id"] == info.issuer_hex
    ]
    return [(x["reference"], resolve_load(session, plain, x)) for x in mine]


def settled_any(outcomes: list[tuple[str, str]]) -> bool:
    return any(outcome in ("confirmed", "void") for _, outcome in outcomes)
