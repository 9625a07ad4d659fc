"""The assembly with parts the caller shares: what is given is used, and stays the caller's."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.profiles import demo_card, demo_psam
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.load_host import HttpLoadHost
from terminal.runtime.assembly import Parts, StartRefused, assemble
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient


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
