"""Read every application on a card: directory discovery, then EMV (debit/credit/EC),
the T-Union EP and the social security application, each with its balances and logs.

Discovery uses the PPSE (contactless) or PSE (contact) and falls back to selecting the
terminal's AID list; applications a directory does not list (the EP often, the SSSE
always) are probed by selecting them, and an e-purse still not found is looked for the
PBOC way (``terminal.epurse.discovery``: 1PUB.SYS.DDF01, known city AIDs, MF/DF 1001).
One application failing (a malformed record, a refused command) is reported on that
application and the others are still read; a card pulled from the field stops the read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from terminal.apdu.errors import TransportError, YikatongError
from terminal.apdu.flow import Flow, card
from terminal.apdu.iso import select_fid
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import KIND_EMV, KIND_EPURSE, KIND_SSSE, SupportedAid, TerminalConfig
from terminal.emv.read import EmvApplicationReport, read_application
from terminal.emv.selection import (
    CONTACT,
    CONTACTLESS,
    SOURCE_PPSE,
    SOURCE_PSE,
    Candidate,
    discover,
    list_selection,
)
from terminal.epurse import flows as epurse
from terminal.epurse.commands import FID_EP, FID_MF
from terminal.epurse.discovery import RULE_MF, Located, locate_epurse
from terminal.epurse.model import CardSnapshot
from terminal.ssse.flows import SsseReport, read_ssse

ALL_KINDS = (KIND_EMV, KIND_EPURSE, KIND_SSSE)


@dataclass
class AppReport:
    candidate: Candidate
    emv: EmvApplicationReport | None = None
    epurse: CardSnapshot | None = None
    ssse: SsseReport | None = None
    error: str = ""

    @property
    def kind(self) -> str:
        return self.candidate.kind


@dataclass
class CardReport:
    interface: str
    source: str
    apps: list[AppReport] = field(default_factory=list)

    @property
    def only_epurse(self) -> bool:
        """A plain T-Union card: the EP and nothing else (the legacy ``ykt read`` view)."""
        return (
            len(self.apps) == 1
            and self.apps[0].kind == KIND_EPURSE
            and self.apps[0].epurse is not None
        )

    def first(self, kind: str) -> AppReport | None:
        return next((a for a in self.apps if a.kind == kind), None)


def _read_one(
    cand: Candidate,
    config: TerminalConfig,
    store: CaKeyStore,
    interface: str,
    now: datetime | None,
    ssse_pin: str | None,
) -> Flow[AppReport]:
    report = AppReport(cand)
    try:
        if cand.kind == KIND_EMV:
            report.emv = yield from read_application(
                cand, config, store, interface=interface, now=now
            )
        elif cand.kind == KIND_EPURSE and cand.source == RULE_MF:
            yield card(select_fid(FID_MF))
            report.epurse = yield from epurse.read_card(
                cand.aid, full=True, fid=FID_EP, label=cand.display_name, found_by=cand.source
            )
        elif cand.kind == KIND_EPURSE:
            report.epurse = yield from epurse.read_card(
                cand.aid, full=True, label=cand.display_name, found_by=cand.source
            )
        elif cand.kind == KIND_SSSE:
            report.ssse = yield from read_ssse(ssse_pin)
    except TransportError:
        raise
    except YikatongError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    return report


def _epurse_candidate(at: Located) -> Candidate:
    """An e-purse found by the PBOC rules (directory, known AIDs, MF/DF) as a candidate."""
    supported = SupportedAid(at.aid, at.label, partial=False, kind=KIND_EPURSE)
    return Candidate(at.aid, supported, at.label, source=at.rule)


def inspect_card(
    config: TerminalConfig,
    store: CaKeyStore,
    *,
    interface: str = CONTACTLESS,
    now: datetime | None = None,
    ssse_pin: str | None = None,
    fallback: bool = False,
) -> Flow[CardReport]:
    """Discover and read every application the terminal knows how to read.

    With ``fallback`` a card without the directory of ``interface`` is asked for the other
    one, and the applications are read the way of the directory that answered."""
    found = yield from discover(config, interface, kinds=ALL_KINDS, other_directory=fallback)
    if found.source in (SOURCE_PPSE, SOURCE_PSE):
        interface = CONTACTLESS if found.source == SOURCE_PPSE else CONTACT
    candidates = list(found.candidates)
    missing = tuple(k for k in (KIND_EPURSE, KIND_SSSE) if all(c.kind != k for c in candidates))
    if missing and found.source != "AID list":
        candidates += yield from list_selection(config, missing)
    if all(c.kind != KIND_EPURSE for c in candidates):
        candidates += [_epurse_candidate(at) for at in (yield from locate_epurse())]
    report = CardReport(interface, found.source)
    for cand in candidates:
        report.apps.append((yield from _read_one(cand, config, store, interface, now, ssse_pin)))
    return report
