"""A bus validator that takes ride codes, and the software ride-code app that makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulators.profiles import demo_psam
from simulators.qr_app import RideCodeApp
from terminal.journal import Journal
from terminal.qr.checks import QrPolicy
from terminal.qr.params import QrSettings
from terminal.readers.sim import SimReader
from terminal.roles.validator import TapResult, Validator
from terminal.runtime.assembly import Parts, assemble
from terminal.runtime.config import TerminalConfig
from tests.conftest import FrozenClock

TERMINAL_ID = "310000000201"


@dataclass
class QrBus:
    """One bus validator assembled as ``ykt run`` builds one (software PSAM, a journal file)
    accepting the app's issuer: its ride-code trust given as parts instead of files."""

    journal_path: Path
    clock: FrozenClock
    app: RideCodeApp = field(default_factory=RideCodeApp)
    policy: QrPolicy | None = None

    def __post_init__(self) -> None:
        self.journal = Journal(self.journal_path, clock=self.clock)
        self.policy = self.policy or app_policy(self.app)
        config = TerminalConfig(role="bus", journal=str(self.journal_path))
        self.device = assemble(
            config, parts=qr_parts(TERMINAL_ID, self.journal, self.clock, self.app, self.policy)
        )
        self.validator: Validator = self.device.role

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


def app_policy(app: RideCodeApp) -> QrPolicy:
    """The default policy, trusting the app's first issuer."""
    issuer = app.issuer()
    return QrPolicy(issuers={issuer.issuer_code: issuer.rule})


def qr_parts(
    terminal_id: str, journal: Journal, clock: FrozenClock, app: RideCodeApp, policy: QrPolicy
) -> Parts:
    """A validator's parts: an antenna, a software PSAM of ``terminal_id``, the test's
    journal and clock, and ride-code trust in the app's root key under ``policy``."""
    return Parts(
        card_reader=SimReader(name="antenna"),
        sam_reader=SimReader(demo_psam(terminal_id)),
        journal=journal,
        clock=clock,
        qr=({app.root.index: app.root.root_key}, policy),
    )


def qr_taxi(journal: Journal, clock: FrozenClock, app: RideCodeApp, meter: int) -> Validator:
    """A taxi (one trip at a time, driver and plate set) whose meter shows ``meter`` and
    which takes the app's codes."""
    config = TerminalConfig(role="taxi", journal=journal.path, driver="D0042", vehicle="HU-A1234")
    taxi = assemble(config, parts=qr_parts(TAXI_ID, journal, clock, app, app_policy(app))).role
    taxi.set_meter(meter)
    return taxi
