"""``ykt clearing serve``: the ride-code times it checks are the gateway's options, and the
root keys its chains verify with are the parameter files the gateway and validators get."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.qr_app import RideCodeApp, RootCA, derive_key
from terminal.cli.common import qr_time_policy
from terminal.cli.main import build_parser
from terminal.qr.checks import QrPolicy
from terminal.record import QR_RIDE
from tests.cli_kit import ykt
from tests.conftest import FrozenClock
from tests.servers import ServerProcess, free_port
from tests.terminal.qr.kit import QrBus, param_files, root_line


def test_clearing_and_the_gateway_take_the_same_ride_code_times() -> None:
    parser = build_parser()
    gateway = parser.parse_args(["gateway", "serve", "--qr-skew", "5", "--qr-max-validity", "30"])
    clearing = parser.parse_args(["clearing", "serve", "--qr-skew", "5", "--qr-max-validity", "30"])
    assert qr_time_policy(gateway) == qr_time_policy(clearing)
    assert qr_time_policy(clearing) == QrPolicy(future_skew=5, max_validity=30)
    defaults = [qr_time_policy(parser.parse_args([c, "serve"])) for c in ("gateway", "clearing")]
    assert defaults == [QrPolicy(), QrPolicy()]


def _ride(
    clock: FrozenClock, tmp_path: Path, shift: timedelta, app: RideCodeApp | None = None
) -> dict[str, Any]:
    """One real ride by a bus validator (a code valid 60 s) of ``app``'s, booked ``shift``
    after its time, as a gateway offers it to clearing."""
    bus = QrBus(tmp_path / "qr-bus.db", clock, app or RideCodeApp())
    assert bus.scan(bus.code(account=1)).green
    (row,) = [r.upload_record() for r in bus.journal.export_qr()]
    row["txn_time"] = (datetime.fromisoformat(row["txn_time"]) + shift).isoformat()
    return QR_RIDE.clearing_record(row, "bus-co")


def _answer(tmp_path: Path, name: str, options: list[str], record: dict[str, Any]) -> Any:
    """Clearing started with ``options`` answers ``record``: its result and how many records
    it accepted."""
    port = free_port()
    args = ["clearing", "serve", "--db", str(tmp_path / f"{name}.db"), *options]
    server = ServerProcess([*args, "--port", str(port)], port, tmp_path / f"{name}.log").start()
    try:
        body = {"gateway_id": "gw", "records": [record]}
        (result,) = httpx.post(f"{server.url}/v1/records", json=body, timeout=30).json()["results"]
        accepted = httpx.get(f"{server.url}/v1/stats", timeout=30).json()["accepted"]
    finally:
        server.stop()
    return result, accepted


def _offer(tmp_path: Path, name: str, options: list[str], record: dict[str, Any]) -> str:
    """Clearing started with ``options`` refuses ``record``: its reason (nothing accepted)."""
    result, accepted = _answer(tmp_path, name, options, record)
    assert (result["status"], accepted) == ("rejected", 0), result
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


def test_clearing_serve_verifies_ride_codes_under_the_root_keys_it_was_given(
    clock: FrozenClock, tmp_path: Path
) -> None:
    """Given the ride-code app's root key (and issuers) file, clearing books the app's ride;
    given another platform's root key, or none, it refuses the same ride and books nothing."""
    app = RideCodeApp()
    record = _ride(clock, tmp_path, timedelta(0), app)
    files = param_files(tmp_path, app)
    ours = ["--qr-root-keys", files.root_keys, "--qr-issuers", files.issuers]
    result, accepted = _answer(tmp_path, "ours", ours, record)
    assert (result["status"], accepted) == ("accepted", 1), result
    other = tmp_path / "other-roots.txt"
    another = RideCodeApp(RootCA(private_key=derive_key("another platform's root")))
    other.write_text(root_line(another) + "\n", encoding="utf-8")  # index 01, another key
    why = _offer(tmp_path, "other", ["--qr-root-keys", str(other)], record)
    assert why.startswith("ride code does not verify: ")
    assert "root" in _offer(tmp_path, "none", [], record)


def test_clearing_serve_refuses_a_bad_root_keys_file_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "roots.txt"
    bad.write_text("01:00\n", encoding="utf-8")
    r = ykt("clearing", "serve", "--db", str(tmp_path / "c.db"), "--qr-root-keys", str(bad),
            check=False)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.startswith(f"ykt: {bad}:1: ")
