"""Root keys and issuer whitelists distributed like the hotlist: an admin uploads a version,
validators fetch it, write it atomically and apply it to the running gate (no restart)."""

from __future__ import annotations

from pathlib import Path

from gateway.auth import register_terminal
from terminal.qr.params import load_issuers
from terminal.uplink import GatewayClient
from terminal.uplink.qr_params import QrParamSync, held_version
from tests.gateway_fixtures import db, db_url, gateway, pg_cluster
from tests.terminal.qr.kit import TERMINAL_ID, QrBus, param_files, put_params, root_line

__all__ = ["db", "db_url", "gateway", "pg_cluster"]


def test_a_new_whitelist_is_applied_without_restart_and_kept_for_the_next_start(
    gateway, tmp_path: Path, clock
) -> None:
    bus = QrBus(tmp_path / "journal.db", clock)
    settings = param_files(tmp_path, bus.app)
    token = register_terminal(gateway.db, TERMINAL_ID, "bus-co", role="validator")
    sync = QrParamSync(GatewayClient(gateway.url, token), bus.validator.qr, settings)
    assert not sync.sync_once() and sync.version == 0  # nothing published yet

    other = bus.scan(bus.code(issuer="10000002"))
    assert (other.green, other.reason) == (False, "unknown-issuer")
    r = put_params(gateway.url, "issuers", "10000001:20000001\n10000002:*:qr\n")
    assert (r.status_code, r.json()["entries"]) == (201, 2), r.text
    r = put_params(gateway.url, "root_keys", f"# the CA\n{root_line(bus.app)}\n")
    assert (r.status_code, r.json()["version"]) == (201, 2), r.text

    assert sync.sync_once() and sync.last_error == ""
    assert (held_version(settings.issuers), held_version(settings.root_keys)) == (1, 2)
    clock.advance(seconds=10)
    ride = bus.scan(bus.code(issuer="10000002"))
    assert ride.green, ride.line()
    assert set(load_issuers(settings.issuers)) == {"10000001", "10000002"}  # what a restart reads
    assert not sync.sync_once()  # nothing newer: nothing fetched is applied again

    put_params(gateway.url, "issuers", "10000001:20000001\n")
    assert sync.sync_once() and held_version(settings.issuers) == 3
    clock.advance(seconds=10)
    gone = bus.scan(bus.code(issuer="10000002", account=2))
    assert (gone.green, gone.reason) == (False, "unknown-issuer")
