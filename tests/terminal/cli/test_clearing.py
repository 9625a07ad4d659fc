"""``ykt clearing serve``: the ride-code times it checks are the gateway's options."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.qr_app import RideCodeApp
from terminal.cli.common import qr_time_policy
from terminal.cli.main import build_parser
from terminal.qr.checks import QrPolicy
from terminal.record import QR_RIDE
from tests.conftest import FrozenClock
from tests.servers import ServerProcess, free_port
from tests.terminal.qr.kit import QrBus


def test_clearing_and_the_gateway_take_the_same_ride_code_times() -> None:
    parser = build_parser()
    gateway = parser.parse_args(["gateway", "serve", "--qr-skew", "5", "--qr-max-validity", "30"])
    clearing = parser.parse_args(["clearing", "serve", "--qr-skew", "5", "--qr-max-validity", "30"])
    assert qr_time_policy(gateway) == qr_time_policy(clearing)
    assert qr_time_policy(clearing) == QrPolicy(future_skew=5, max_validity=30)
    defaults = [qr_time_policy(parser.parse_args([c, "serve"])) for c in ("gateway", "clearing")]
    assert defaults == [QrPolicy(), QrPolicy()]


def _ride(clock: FrozenClock, tmp_path: Path, shift: timedelta) -> dict[str, Any]:
    """One real ride by a bus validator (a code valid 60 s), booked ``shift`` after its time,
    as a gateway offers it to clearing."""
    bus = QrBus(tmp_path / "qr-bus.db", clock, RideCodeApp())
    assert bus.scan(bus.code(account=1)).green
    (row,) = [r.upload_record() for r in bus.journal.export_qr()]
    row["txn_time"] = (datetime.fromisoformat(row["txn_time"]) + shift).isoformat()
    return QR_RIDE.clearing_record(row, "bus-co")


def _offer(tmp_path: Path, name: str, options: list[str], record: dict[str, Any]) -> str:
    """Clearing started with ``options`` answers ``record``: its reason (nothing accepted)."""
    port = free_port()
    args = ["clearing", "serve", "--db", str(tmp_path / f"{name}.db"), *options]
    server = ServerProcess([*args, "--port", str(port)], port, tmp_path / f"{name}.log").start()
    try:
        body = {"gateway_id": "gw", "records": [record]}
        (result,) = httpx.post(f"{server.url}/v1/records", json=body, timeout=30).json()["results"]
        assert httpx.get(f"{server.url}/v1/stats", timeout=30).json()["accepted"] == 0
    finally:
        server.stop()
    assert result["status"] == "rejected", result
    return str(result["reason"])


@pytest.mark.parametrize(
    ("options", "shift", "why"),
    [
        (["--qr-skew", "5"], timedelta(seconds=-15), "future (clock skew allowed 5 s)"),
        (["--qr-max-validity", "30"], timedelta(0), "validity 60 s is above the 30 s allowed"),
    ],
    ids=["skew", "validity"],
)
def test_clearing_serve_checks_ride_times_by_its_options(
    clock: FrozenClock, tmp_path: Path, options: list[str], shift: timedelta, why: str
) -> None:
    record = _ride(clock, tmp_path, shift)
    assert why in _offer(tmp_path, "told", options, record)
    assert why not in _offer(tmp_path, "defaults", [], record)
