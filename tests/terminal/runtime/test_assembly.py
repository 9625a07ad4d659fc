"""The assembly with parts the caller shares: what is given is used, and stays the caller's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from simulators.campus import campus_card, campus_psam
from simulators.profiles import demo_card, demo_psam
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.load_host import HttpLoadHost
from terminal.runtime.assembly import Parts, StartRefused, assemble, assemble_door
from terminal.runtime.config import TerminalConfig
from terminal.uplink import GatewayClient
from tests.campus_kit import RULES
from tests.conftest import FrozenClock


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


def test_a_door_takes_the_callers_readers_clock_and_client_and_leaves_them_open(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    config = TerminalConfig(
        role="door",
        journal=str(tmp_path / "door.db"),
        door_rules=str(tmp_path / "rules.toml"),
        door_point="lab",
        gateway="http://127.0.0.1:9",
        token="unused",  # the caller's client is used: no other is opened with this
    )
    antenna = SimReader(name="door")
    clock = FrozenClock(datetime(2026, 11, 30, 9, 15))
    client = GatewayClient("http://127.0.0.1:9", "unused")  # never called: only handed over
    sam = SimReader(campus_psam("310000000109"))
    parts = Parts(card_reader=antenna, sam_reader=sam, clock=clock, client=client)
    device = assemble_door(config, parts=parts)
    assert device.card_reader is antenna and device.client is client
    assert device.door.session.sam.terminal_id_hex == "310000000109"
    antenna.insert(campus_card(1, "S0001"))
    decision = device.door.present("lab")
    assert not decision.granted and decision.reason == "card is not enrolled at this site"
    (event,) = device.door.journal.pending()
    assert event["terminal_id"] == "310000000109"
    assert event["event_time"] == "2026-11-30T09:15:00"  # the caller's clock, not the system's
    device.close()
    assert not client._http.is_closed  # the caller's client stays open for the caller
    assert not list(tmp_path.glob("*.psam.json"))  # no software PSAM made: the caller's SAM
    client.close()


def test_a_desk_without_psam_is_numbered_by_its_config_and_offline_only_when_asked(
    tmp_path: Path,
) -> None:
    from terminal.cli.desk_parts import DeskParts
    from terminal.runtime.assembly import NO_SAM

    def desk(**kw: object) -> TerminalConfig:
        return TerminalConfig(
            role="desk",
            journal=str(tmp_path / "desk.db"),
            sam_reader=NO_SAM,
            terminal_id="310000000080",
            registry=str(tmp_path / "cards.db"),
            **kw,  # type: ignore[arg-type]
        )

    with pytest.raises(StartRefused, match="set \\[gateway\\] url"):  # as ykt run refuses it
        assemble(desk(), desk=DeskParts(), parts=Parts(card_reader=SimReader()))
    with pytest.raises(StartRefused, match="an offline desk is given no gateway"):
        assemble(
            desk(offline=True, gateway="http://127.0.0.1:9", token="t"),
            desk=DeskParts(),
            parts=Parts(card_reader=SimReader()),
        )
    offline = assemble(desk(offline=True), desk=DeskParts(), parts=Parts(card_reader=SimReader()))
    role = offline.role
    assert (role.desk_id, role.centre, role.credits) == ("310000000080", None, None)
    assert offline.session.sam_reader is None and offline.client is None
    offline.close(flush_timeout=0)
    assert not list(tmp_path.glob("*.psam.json"))  # no software PSAM was made for it

    bus = TerminalConfig(role="bus", journal=str(tmp_path / "bus.db"), sam_reader=NO_SAM)
    with pytest.raises(StartRefused, match="only an issuance desk personalises without one"):
        assemble(bus, parts=Parts(card_reader=SimReader()))
    assert not (tmp_path / "bus.db").exists()


def test_a_till_and_a_library_are_built_from_their_files(tmp_path: Path) -> None:
    from terminal.campus.canteen import Canteen
    from terminal.cli.sim_devices import SoftwareDevices
    from terminal.runtime.assembly import assemble_library
    from terminal.runtime.config import load_config

    (tmp_path / "meals.toml").write_text(
        'day_limit = 4000\n[meals.lunch]\nfrom = "11:00"\nuntil = "13:30"\nlimit = 2500\n'
    )
    (tmp_path / "limits.toml").write_text("[limits]\nstudents = 2\n")
    (tmp_path / "till.toml").write_text(
        '[terminal]\nrole = "till"\nclock = "2026-11-30T12:00:00"\n[journal]\npath = "till.db"\n'
        '[till]\nrules = "meals.toml"\nmerchant = "东区食堂"\n'
    )
    till = assemble(load_config(tmp_path / "till.toml"), SoftwareDevices())
    assert isinstance(till.role, Canteen) and till.role.merchant == "东区食堂"
    assert till.role.rules.meals["lunch"].limit == 2_500 and till.role.client is None
    card = till.cards[0]
    till.card_reader.insert(card)  # type: ignore[attr-defined]
    sale = till.role.sell(800, "cash")
    assert (sale.amount, sale.balance_after, card.balance) == (800, 1_200, 1_200)
    assert [(r.amount, r.state) for r in till.journal.rows()] == [
        (800, "settled")
    ]  # journaled, to be uploaded
    assert till.role.ledger.spent(sale.person_no, datetime(2026, 11, 30).date()) == 800
    till.close(flush_timeout=0)
    assert (tmp_path / "till.sales.db").exists()

    (tmp_path / "library.toml").write_text(
        '[terminal]\nrole = "library"\n[journal]\npath = "library.db"\n'
        '[library]\nrules = "limits.toml"\n'
    )
    config = load_config(tmp_path / "library.toml")
    with pytest.raises(StartRefused, match="books each loan at the gateway"):
        assemble_library(config, SoftwareDevices())
    with pytest.raises(StartRefused, match="keeps no payment journal"):
        assemble(config, SoftwareDevices())
    client = GatewayClient("http://127.0.0.1:9", "unused")  # never called: only built
    library = assemble_library(config, SoftwareDevices(), Parts(client=client))
    assert library.desk.rules.limits == {"students": 2} and library.desk.client is client
    library.close()
    client.close()
