"""A bus validator that takes ride codes, and the software ride-code app that makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulators.profiles import demo_psam
from simulators.qr_app import RideCodeApp
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.qr.checks import QrPolicy
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
