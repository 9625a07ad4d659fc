"""Shared fixtures: a frozen clock, demo software cards and PSAM, a terminal session, the HSM."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.hsm import HostSecurityModule, LocalLoadHost
from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import DEMO_ISSUERS, demo_card, demo_keyset, demo_psam
from simulators.psam import SoftPsam
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession

FROZEN_NOW = datetime(2026, 11, 28, 8, 30, 15)


class FrozenClock:
    """A terminal clock tests can set and advance."""

    def __init__(self, now: datetime = FROZEN_NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


def pytest_configure(config: pytest.Config) -> None:
    """Before any test opens a socket: keep vpcd's ports out of the ephemeral range."""
    from tests.stacks import reserve_vpcd_ports

    reserve_vpcd_ports()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def card() -> SoftEPurseCard:
    return demo_card(1, balance=10_000)


@pytest.fixture
def psam() -> SoftPsam:
    return demo_psam("310000000001")


@pytest.fixture
def card_reader(card: SoftEPurseCard) -> SimReader:
    return SimReader(card, name="card")


@pytest.fixture
def sam_reader(psam: SoftPsam) -> SimReader:
    return SimReader(psam, name="sam")


@pytest.fixture
def session(card_reader: SimReader, sam_reader: SimReader, clock: FrozenClock) -> TerminalSession:
    s = TerminalSession(card_reader, sam_reader, clock=clock)
    s.start()
    card_reader.connect()
    return s


@pytest.fixture
def keysets():
    return [demo_keyset(issuer) for issuer in DEMO_ISSUERS.values()]


@pytest.fixture
def hsm(keysets, clock: FrozenClock) -> HostSecurityModule:
    return HostSecurityModule(keysets, clock=clock)


@pytest.fixture
def load_host(hsm: HostSecurityModule) -> LocalLoadHost:
    return LocalLoadHost(hsm)


@pytest.fixture
def centre(gateway, clock):  # type: ignore[no-untyped-def]
    """A subsidy centre on the test gateway with a card issued to each of the kit's PEOPLE
    (``centre.records``, in that order); for the gateway and the adversarial suites."""
    from tests.subsidy_kit import PEOPLE, Centre  # the gateway suites' kit, not every test's

    c = Centre(gateway, clock)
    c.issue(PEOPLE)
    yield c
    c.close()
