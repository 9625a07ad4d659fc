"""A bus validator that takes ride codes, and the software ride-code app that makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulators.profiles import demo_psam
from simulators.qr_app import RideCodeApp
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.qr.checks import QrPolicy
from terminal.qr.params import QrSettings
from terminal.qr.ride import QrGate
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession
from terminal.roles.validator import TapResult, Validator, ValidatorConfig
from tests.conftest import FrozenClock

TERMINAL_ID = "310000000201"


@dataclass
class QrBus:
    """One bus validator (software PSAM, a journal file) accepting the app's issuer."""

    journal_path: Path
    clock: FrozenClock
    app: RideCodeApp = field(default_factory=RideCodeApp)
    policy: QrPolicy | None = None

    def __post_init__(self) -> None:
        self.journal = Journal(self.journal_path, clock=self.clock)
        issuer = self.app.issuer()
        self.policy = self.policy or QrPolicy(issuers={issuer.issuer_code: issuer.rule})
        s = TerminalSession(
            SimReader(name="antenna"), SimReader(demo_psam(TERMINAL_ID)), clock=self.clock
        )
        s.start()
        self.validator = Validator(
            s, self.journal, Hotlist(), ValidatorConfig(mode=Mode.BUS, rules=load_rules())
        )
        self.validator.qr = QrGate(
            self.journal,
            {self.app.root.index: self.app.root.root_key},
            self.policy,
            bytes.fromhex(TERMINAL_ID),
        )

    def code(self, **kw: object) -> bytes:
        """A fresh code from the app, generated now."""
        return self.app.code(self.clock(), **kw)  # type: ignore[arg-type]

    def scan(self, raw: bytes) -> TapResult:
        return self.validator.scan(raw)

    def rows(self) -> int:
        return len(self.journal.qr_rows())


ADMIN = {"X-Admin-Token": "test-admin-token"}


def root_line(app: RideCodeApp) -> str:
    key = app.root.root_key
    return f"{key.index:02X}:{key.public_key.hex().upper()}"


def param_files(tmp_path: Path, app: RideCodeApp) -> QrSettings:
    """A validator's parameter files as installed: the app's root key, its first issuer."""
    (tmp_path / "roots.txt").write_text(root_line(app) + "\n", encoding="utf-8")
    (tmp_path / "issuers.txt").write_text("10000001:20000001:qr\n", encoding="utf-8")
    return QrSettings(str(tmp_path / "roots.txt"), str(tmp_path / "issuers.txt"))


def put_params(url: str, kind: str, text: str, headers: dict[str, str] | None = None) -> Any:
    """An admin's upload of a parameter file (``headers``: someone else's)."""
    return httpx.put(
        f"{url}/v1/admin/qr-params/{kind}",
        json={"text": text},
        headers=ADMIN if headers is None else headers,
    )


TAXI_ID = "310000000601"


def qr_taxi(journal: Journal, clock: FrozenClock, app: RideCodeApp, meter: int) -> Validator:
    """A taxi (one trip at a time, driver and plate set) whose meter shows ``meter`` and
    which takes the app's codes."""
    from terminal.roles.transport import Ride, make_validator

    s = TerminalSession(SimReader(name="antenna"), SimReader(demo_psam(TAXI_ID)), clock=clock)
    s.start()
    config = ValidatorConfig(mode=Mode.TAXI, rules=load_rules())
    ride = Ride(meter, "D0042", "HU-A1234")
    taxi = make_validator(s, journal, Hotlist(), config, ride, one_trip=True)
    issuer = app.issuer()
    policy = QrPolicy(issuers={issuer.issuer_code: issuer.rule})
    taxi.qr = QrGate(journal, {app.root.index: app.root.root_key}, policy, bytes.fromhex(TAXI_ID))
    return taxi
