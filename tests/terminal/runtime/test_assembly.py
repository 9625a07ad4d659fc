"""The assembly with parts the caller shares: what is given is used, and stays the caller's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from simulators.campus import campus_card, campus_psam
from simulators.campus_site import presented
from simulators.profiles import demo_card, demo_psam
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.load_host import HttpLoadHost
from terminal.runtime.assembly import Parts, StartRefused, assemble, assemble_door
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient
from terminal.uplink.client import GatewayUnavailable
from tests.campus_kit import RULES


def test_two_validators_share_the_callers_antenna_and_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "station.db")
    antenna = SimReader(name="antenna")
    gates = [
        assemble(
            TerminalConfig(role=role, journal=str(tmp_path / "unused.db"), station="0101"),
            parts=Parts(card_reader=antenna, sam_reader=SimReader(demo_psam(tid)), journal=journal),
        )
        for role, tid in (("metro-entry", "310000000301"), ("metro-exit", "310000000302"))
    ]
    card = demo_card(1, balance=1_000)
    for gate in gates:
        antenna.insert(card)
        card.reset()
        assert gate.role.tap().green
        assert gate.journal is journal
    assert card.balance < 1_000
    assert [r.terminal_id for r in journal.rows()] == ["310000000301", "310000000302"]
    for gate in gates:
        gate.close(flush_timeout=0)
    assert len(journal.rows()) == 2  # still open: closing the devices left it to its owner
    assert not (tmp_path / "unused.db").exists()  # the configured path was never opened
    assert not list(tmp_path.glob("*.psam.json"))  # no software PSAM made: the caller's SAM
    journal.close()


def test_a_kiosk_needs_a_load_host_from_the_gateway_or_the_caller(tmp_path: Path) -> None:
    config = TerminalConfig(role="kiosk", journal=str(tmp_path / "kiosk.db"))
    parts = Parts(card_reader=SimReader(), sam_reader=SimReader(demo_psam("310000000901")))
    with pytest.raises(StartRefused, match="set \\[gateway\\] url"):
        assemble(config, parts=parts)

    client = GatewayClient("http://127.0.0.1:9", "unused")  # never called: only built
    parts.load_host = HttpLoadHost(client)
    kiosk = assemble(config, parts=parts)
    assert kiosk.role.host is parts.load_host
    assert kiosk.role.terminal_id == bytes.fromhex("310000000901")
    assert kiosk.uploader is None  # no gateway: nothing uploads in the background
    kiosk.close(flush_timeout=0)
    client.close()


def test_a_door_takes_the_callers_antenna_sam_clock_and_client(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    config = TerminalConfig(
        role="door",
        journal=str(tmp_path / "door.db"),
        door_rules=str(rules),
        door_point="east-in",
        gateway="http://127.0.0.1:9",  # the caller's open client is used instead
        token_file=str(tmp_path / "absent.token"),  # never read: the client is given
    )
    antenna = SimReader(name="antenna")
    when = datetime(2026, 11, 30, 8, 30)
    client = GatewayClient("http://127.0.0.1:9", "unused")
    parts = Parts(
        card_reader=antenna,
        sam_reader=SimReader(campus_psam("310000000777")),
        clock=lambda: when,
        client=client,
    )
    device = assemble_door(config, parts=parts)
    assert device.card_reader is antenna and device.client is client
    decision = presented(antenna, campus_card(1, "S1"), lambda: device.door.present("east-in"))
    assert not decision.granted  # not enrolled: the empty allow list refuses it
    (event,) = device.door.journal.pending()
    assert event["terminal_id"] == "310000000777"  # the caller's SAM, not a sim PSAM
    assert event["event_time"] == when.isoformat()  # the caller's clock
    device.close()
    assert not list(tmp_path.glob("*.psam.json"))  # no software PSAM made
    with pytest.raises(GatewayUnavailable):  # still open (nothing listens there)
        client.hotlist()
    client.close()
