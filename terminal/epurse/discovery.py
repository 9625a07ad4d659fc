"""Finding the e-purse on cards that have no PPSE entry and no T-Union AID (issue 12, item 3).

Older PBOC ED/EP city cards (before T-Union) keep the purse under another AID, listed in
the PBOC directory ``1PUB.SYS.DDF01``, or known only by its AID, or only as DF 1001 under
the MF 3F00. The rules are tried in this order and the first that finds the purse wins;
each candidate says which rule found it, and the read labels the application by its own
FCI (DF name 84, label 50), falling back to the name of the list entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from terminal.apdu import iso
from terminal.apdu.errors import TransportError, YikatongError
from terminal.apdu.flow import Flow, card
from terminal.emv.fci import DirectoryFci
from terminal.emv.selection import read_directory
from terminal.epurse import commands as c

PBOC_DIRECTORY = b"1PUB.SYS.DDF01"

RULE_DIRECTORY = "PBOC directory 1PUB.SYS.DDF01"
RULE_KNOWN = "known city AID list"
RULE_MF = "MF 3F00 / DF 1001"

# The AID this project shows for a purse found only as DF 1001 under the MF
MF_EP_PATH = c.FID_MF.to_bytes(2, "big") + c.FID_EP.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class KnownApp:
    """A city e-purse application known by its DF name, with where the name comes from."""

    name: bytes
    label: str
    source: str


# Known PBOC ED/EP city applications (DF names), tried in order when the directory is absent.
KNOWN_CITY_APPS: tuple[KnownApp, ...] = (
    KnownApp(
        bytes.fromhex("A00000000386980701"),
        "City Union EP",
        "城市一卡通互联互通 (pre-T-Union); Metrodroid's City Union reader selects it",
    ),
    KnownApp(b"PAY.SZT", "Shenzhen Tong", "深圳通; Metrodroid's Shenzhen reader selects it"),
    KnownApp(b"AP1.WHCTC", "Wuhan Tong", "武汉通; Metrodroid's Wuhan reader selects it"),
)


@dataclass(frozen=True, slots=True)
class Located:
    """Where an e-purse was found: its AID (or ``MF_EP_PATH``), a label, the rule used."""

    aid: bytes
    label: str
    rule: str

    @property
    def by_path(self) -> bool:
        return self.rule == RULE_MF


def _known_label(aid: bytes) -> str:
    return next((k.label for k in KNOWN_CITY_APPS if k.name == aid), "PBOC ED/EP")


def _from_directory() -> Flow[list[Located]]:
    r = yield card(iso.select_aid(PBOC_DIRECTORY), check=False)
    if not r.ok:
        return []
    try:
        fci = DirectoryFci.parse(r.data)
        if fci.sfi is None:
            return []
        entries = yield from read_directory(fci.sfi)
    except TransportError:
        raise
    except YikatongError:
        return []
    return [Located(e.aid, e.label or _known_label(e.aid), RULE_DIRECTORY) for e in entries]


def locate_epurse() -> Flow[list[Located]]:
    """The PBOC directory, else the known city AIDs, else MF 3F00 / DF 1001: the purse(s)
    found by the first rule that finds any (empty when none does)."""
    found = yield from _from_directory()
    if found:
        return found
    for known in KNOWN_CITY_APPS:
        r = yield card(iso.select_aid(known.name), check=False)
        if r.ok:
            return [Located(known.name, known.label, RULE_KNOWN)]
    r = yield card(iso.select_fid(c.FID_MF), check=False)
    if r.ok:
        r = yield card(iso.select_fid(c.FID_EP), check=False)
        if r.ok:
            return [Located(MF_EP_PATH, "PBOC ED/EP (DF 1001)", RULE_MF)]
    return []
