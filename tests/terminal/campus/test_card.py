"""The campus identity scheme on real software cards and SAM: issuance, authentication, clones."""

from __future__ import annotations

import pytest

from gateway.hsm import HostSecurityModule
from gateway.registry import DEFAULT_FIRST_SEQUENCE, SqliteCardRegistry
from simulators.campus import campus_card, campus_psam, clone, demo_campus_master
from simulators.profiles import (
    DEMO_ISSUERS,
    blank_card,
    demo_chip_id,
    demo_keyset,
    demo_transport_master,
)
from terminal.campus.card import NotGenuine, authenticate
from terminal.readers.sim import SimReader
from terminal.roles.issuance import CampusProfile, DeskConfig, IssuanceDesk, IssuanceError
from terminal.roles.registry import Applicant
from terminal.roles.session import TerminalSession
from tests.conftest import FrozenClock

VALID_ID = "11010519491231002X"


def door_session(card: object, clock: FrozenClock) -> TerminalSession:
    s = TerminalSession(SimReader(card, name="door"), SimReader(campus_psam()), clock=clock)  # type: ignore[arg-type]
    s.start()
    s.card_reader.connect()
    return s


def test_a_campus_card_proves_its_key_then_its_identity_is_read(clock: FrozenClock) -> None:
    card = campus_card(1, "S2024001")
    got = door_session(card, clock).run(authenticate())
    assert (got.serial, got.identity.person_no, got.identity.category) == (
        card.serial,
        "S2024001",
        1,
    )


def test_a_cloned_uid_card_is_refused(clock: FrozenClock) -> None:
    fake = clone(campus_card(1, "S2024001"))
    with pytest.raises(NotGenuine, match="does not hold its campus key"):
        door_session(fake, clock).run(authenticate())


def test_a_card_without_the_campus_application_is_refused(clock: FrozenClock) -> None:
    from simulators.profiles import demo_card

    with pytest.raises(NotGenuine, match="refused INTERNAL AUTHENTICATE"):
        door_session(demo_card(3), clock).run(authenticate())


def test_the_desk_issues_a_campus_card_that_authenticates(clock: FrozenClock) -> None:
    hsm = HostSecurityModule(
        [demo_keyset(i) for i in DEMO_ISSUERS.values()],
        clock,
        transport_master=demo_transport_master(),
        campus_master=demo_campus_master(),
    )
    reader = SimReader(name="desk")
    desk = IssuanceDesk(
        TerminalSession(reader, clock=clock),
        hsm,
        SqliteCardRegistry(clock=clock, first_sequence=DEFAULT_FIRST_SEQUENCE),
        DeskConfig(DEMO_ISSUERS["shanghai"], bytes.fromhex("310000000901")),
        campus=CampusProfile({VALID_ID: "T1001"}, category=2),
    )
    blank = blank_card(demo_chip_id(7))
    reader.insert(blank)
    issued = desk.issue(Applicant("张三", VALID_ID))
    assert blank.activated and blank.purse is not None
    got = door_session(blank.purse, clock).run(authenticate())
    assert (got.serial_hex, got.identity.person_no, got.identity.category) == (
        issued.snapshot.info.serial_hex,
        "T1001",
        2,
    )
    other = blank_card(demo_chip_id(8))
    reader.remove()
    reader.insert(other)
    with pytest.raises(IssuanceError, match="no campus person number"):
        desk.issue(Applicant("李四", "110105194912310038"))
    assert not other.activated
