"""The back half of ``ykt demo``: terminals' journals -> gateway -> clearing -> settlement.

``ClearingPath`` starts a clearing service and a gateway as real uvicorn servers on
127.0.0.1 (SQLite files in a temporary directory), registers the demo's terminals, lends
the kiosk an HTTP ``LoadHost`` so top-ups go through the gateway's HSM, uploads each
terminal's journal with the uplink, lets the forwarder post everything to clearing and
returns clearing's settlement. ``settlement_balances`` checks it against the cards.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from terminal.money import format_fen
from terminal.roles.load_host import HttpLoadHost
from terminal.uplink import GatewayClient, Uplink


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: Any):
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ClearingPath:
    """Gateway + clearing for the demo; a context manager that stops both on exit."""

    GATEWAY_ID = "demo-gateway"

    def __init__(self, workdir: str | None = None):
        from gateway.app import GatewaySettings, create_app
        from gateway.hsm import HostSecurityModule
        from gateway.storage import open_storage
        from simulators.clearing.app import create_app as clearing_app
        from simulators.clearing.ledger import Ledger
        from simulators.clearing.verify import TacVerifier
        from simulators.profiles import DEMO_ISSUERS, demo_keyset
        from terminal.cli.demo_qr import demo_ride_app, demo_trust

        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="ykt-demo-")
        self.dir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        keysets = [demo_keyset(i) for i in DEMO_ISSUERS.values()]
        qr_roots, qr_issuers = demo_trust(demo_ride_app())  # the demo's ride-code app
        verifier = TacVerifier(keysets, qr_roots=qr_roots, qr_issuers=qr_issuers)
        self.ledger = Ledger(str(self.dir / "clearing.db"), verifier)
        self.clearing = _Server(clearing_app(self.ledger))
        self.db = open_storage(f"sqlite:///{self.dir / 'gateway.db'}")
        settings = GatewaySettings(
            gateway_id=self.GATEWAY_ID, clearing_url=self.clearing.url, poll_interval=0.05
        )
        self.app = create_app(self.db, hsm=HostSecurityModule(keysets), settings=settings)
        self.gateway = _Server(self.app)
        self.tokens: dict[str, str] = {}
        self._clients: list[GatewayClient] = []

    def __enter__(self) -> ClearingPath:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self.gateway.stop()
        self.clearing.stop()
        self.db.close()
        self.ledger.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def register(self, terminal_id: str, operator_id: str, role: str = "pos") -> GatewayClient:
        from gateway.auth import register_terminal

        self.tokens[terminal_id] = register_terminal(self.db, terminal_id, operator_id, role=role)
        client = GatewayClient(self.gateway.url, self.tokens[terminal_id])
        self._clients.append(client)
        return client

    def load_host(self, kiosk_id: str, operator_id: str = "card-centre") -> HttpLoadHost:
        return HttpLoadHost(self.register(kiosk_id, operator_id, role="kiosk"))

    def settle(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the forwarder has posted everything, then clearing's settlement."""
        deadline = time.monotonic() + timeout
        while True:
            with self.db.tx() as cur:
                cur.execute("SELECT COUNT(*) FROM outbox WHERE posted_at IS NULL")
                if cur.fetchone()[0] == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("the forwarder did not drain the outbox")
            time.sleep(0.05)
        return httpx.get(self.clearing.url + "/v1/settlement", timeout=30).json()

    def reconcile(self) -> dict[str, Any]:
        from gateway.reconcile import reconcile

        return reconcile(self.db, self.clearing.url, self.GATEWAY_ID)


def settlement_balances(
    settlement: dict[str, Any], cards: Iterable[Any], opening: dict[str, int]
) -> bool:
    """Per issuer: cleared loads - cleared purchases == what its cards gained, to the fen
    (an issuing platform's ride codes move no card: qr_cleared checks them)."""
    moved: dict[str, int] = {}
    for card in cards:
        issuer = card.issuer_id.hex().upper()
        moved[issuer] = moved.get(issuer, 0) + card.balance - opening[card.serial.hex()]
    cleared = {
        i["issuer_id"]: i["load_amount"] - i["purchase_amount"]
        for i in settlement["by_issuer"]
        if not i.get("qr_rides") or i.get("purchases") or i.get("loads")
    }
    return all(cleared.get(k, 0) == v for k, v in moved.items()) and set(cleared) <= set(moved)


def print_settlement(settlement: dict[str, Any], balanced: bool, out: Any = print) -> None:
    from simulators.clearing.report import format_settlement

    out("")
    for line in format_settlement(settlement):
        out(line)
    t = settlement["totals"]
    net = t["load_amount"] - t["purchase_amount"]
    out(
        f"   cleared loads {format_fen(t['load_amount'])} - cleared purchases "
        f"{format_fen(t['purchase_amount'])} = {format_fen(net)} against the cards: "
        f"{'BALANCED to the fen' if balanced else 'MISMATCH'}"
    )


def operator_of(role: str) -> str:
    """The operator a demo terminal belongs to, from its role or name."""
    role = role.lower()
    for word, operator in (("metro", "metro-co"), ("bus", "bus-co"), ("pos", "merchant")):
        if word in role:
            return operator
    return "operator"


def clear_outcome(path: ClearingPath, result: Any, out: Any = print) -> bool:
    """Upload every journal of a demo run, let clearing settle, check it against the cards
    (``result.cards``, ``result.opening``) and print the table; True when it all agrees."""
    from terminal.cli.demo_qr import qr_cleared

    out("\n== Terminals -> journal -> gateway -> clearing")
    roles: dict[str, str] = result.roles
    for name, journal in result.journals.items():
        riders = {r.terminal_id for r in journal.export_qr(limit=1_000_000)}
        tids = sorted({r.terminal_id for r in journal.export(limit=1_000_000)} | riders)
        clients = {  # the gateway takes ride codes from validators only
            tid: path.register(
                tid, operator_of(roles.get(tid, name)), "validator" if tid in riders else "pos"
            )
            for tid in tids
        }
        up = Uplink(journal, clients)
        sent = up.drain()
        out(f"   journal {name}: {sent} transactions from {len(tids)} terminal(s) acknowledged")
    settlement = path.settle()
    opening = {(k.hex() if isinstance(k, bytes) else k): v for k, v in result.opening.items()}
    balanced = settlement_balances(settlement, result.cards, opening)
    matched = path.reconcile()["matched"]
    print_settlement(settlement, balanced, out)
    balanced = qr_cleared(settlement, result.journals.values(), out) and balanced
    out(
        f"   gateway reconciliation with clearing: {'MATCHED' if matched else 'MISMATCH'}; "
        f"rejected by clearing: {settlement['rejections']}"
    )
    return balanced and matched and settlement["rejections"] == 0
