"""Application selection (EMV Book 1 §12, PBOC 3.0 part 6, qPBOC part 12).

Discovery reads the PPSE (contactless) or the PSE (contact, records in the directory
SFI, nested DDFs followed), matches each entry against the terminal's application list
and orders the candidates by priority. When the card has no directory (or it is blocked,
or lists nothing the terminal supports) the terminal falls back to selecting each AID of
its own list. Final selection takes the best candidate, SELECTs it and, when the card
refuses (blocked, not found), drops it and tries the next.

Rules: a lower priority number wins, entries without a priority follow those with one,
ties keep card order. On contact, an application whose priority indicator has b8 set
needs cardholder confirmation: without a way to confirm, the terminal must skip it.
Contactless selection ignores b8 (qPBOC has no confirmation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from terminal.apdu import iso, tlv
from terminal.apdu.errors import CardError, MalformedResponse, RecordNotFound, TlvError
from terminal.apdu.flow import Flow, card
from terminal.apdu.response import ResponseAPDU
from terminal.emv.config import KIND_EMV, SupportedAid, TerminalConfig
from terminal.emv.errors import NoApplication
from terminal.emv.fci import (
    PPSE_NAME,
    PSE_NAME,
    ApplicationFci,
    DirectoryEntry,
    DirectoryFci,
    entries_in,
)
from terminal.emv.tags import Tag

CONTACT = "contact"
CONTACTLESS = "contactless"
AUTO = "auto"  # from the reader and the ATR, then the other directory when the first is absent

SOURCE_PPSE = "PPSE"
SOURCE_PSE = "PSE"
SOURCE_LIST = "AID list"

MAX_DIRECTORY_RECORDS = 32
MAX_DDF_DEPTH = 2
MAX_OCCURRENCES = 8


@dataclass(frozen=True, slots=True)
class Candidate:
    """An application the card offers and the terminal supports."""

    aid: bytes
    supported: SupportedAid
    label: str = ""
    preferred_name: str = ""
    priority_indicator: int | None = None
    source: str = SOURCE_LIST
    fci: ApplicationFci | None = None  # known when found by list selection

    @property
    def kind(self) -> str:
        return self.supported.kind

    @property
    def priority(self) -> int | None:
        if self.priority_indicator is None:
            return None
        return (self.priority_indicator & 0x0F) or None

    @property
    def needs_confirmation(self) -> bool:
        return self.priority_indicator is not None and bool(self.priority_indicator & 0x80)

    @property
    def display_name(self) -> str:
        return self.preferred_name or self.label or self.supported.label or self.aid.hex().upper()


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the directory (or list selection) found, best candidate first."""

    source: str
    candidates: list[Candidate] = field(default_factory=list)
    directory: list[DirectoryEntry] = field(default_factory=list)


def match(aid: bytes, config: TerminalConfig) -> SupportedAid | None:
    """The terminal's list entry for a card AID (exact matches before partial ones)."""
    exact = next((s for s in config.supported_aids if s.aid == aid), None)
    if exact is not None:
        return exact
    return next((s for s in config.supported_aids if s.matches(aid)), None)


def order(candidates: list[Candidate]) -> list[Candidate]:
    """Priority 1 first, then 2 ..., entries without a priority last; stable otherwise."""
    return sorted(candidates, key=lambda cand: cand.priority if cand.priority else 16)


def candidates_from(
    entries: list[DirectoryEntry], config: TerminalConfig, source: str
) -> list[Candidate]:
    out = []
    for entry in entries:
        supported = match(entry.aid, config)
        if supported is None:
            continue
        out.append(
            Candidate(
                entry.aid,
                supported,
                entry.label,
                entry.preferred_name,
                entry.priority_indicator,
                source,
            )
        )
    return order(out)


def read_ppse() -> Flow[DirectoryFci | None]:
    """SELECT 2PAY.SYS.DDF01; None when the card has no (usable) PPSE."""
    r = yield card(iso.select_aid(PPSE_NAME), check=False)
    if not r.ok:
        return None
    return DirectoryFci.parse(r.data)


def _parse_record(r: ResponseAPDU, sfi: int, number: int) -> list[tlv.Tlv]:
    try:
        record = tlv.parse_one(r.data, Tag.RECORD_TEMPLATE)
    except TlvError as exc:
        raise MalformedResponse(f"directory record {sfi}/{number}: {exc}", raw=r.data) from None
    return list(record.children)


def read_directory(sfi: int, depth: int = 0) -> Flow[list[DirectoryEntry]]:
    """Every entry in the directory records of ``sfi``; nested DDFs are followed."""
    entries: list[DirectoryEntry] = []
    for number in range(1, MAX_DIRECTORY_RECORDS + 1):
        try:
            r = yield card(iso.read_record(sfi, number))
        except RecordNotFound:
            break
        for entry in entries_in(_parse_record(r, sfi, number)):
            if entry.ddf_name:
                if depth < MAX_DDF_DEPTH:
                    entries.extend((yield from _read_ddf(entry.ddf_name, depth + 1)))
                continue
            entries.append(entry)
    return entries


def _read_ddf(name: bytes, depth: int) -> Flow[list[DirectoryEntry]]:
    r = yield card(iso.select_aid(name), check=False)
    if not r.ok:
        return []
    fci = DirectoryFci.parse(r.data)
    if fci.sfi is None:
        return []
    return (yield from read_directory(fci.sfi, depth))


def read_pse() -> Flow[list[DirectoryEntry] | None]:
    """SELECT 1PAY.SYS.DDF01 and read its directory; None when the card has no PSE."""
    r = yield card(iso.select_aid(PSE_NAME), check=False)
    if not r.ok:
        return None
    fci = DirectoryFci.parse(r.data)
    if fci.sfi is None:
        raise MalformedResponse("PSE FCI carries no directory SFI (88)", raw=r.data)
    return (yield from read_directory(fci.sfi))


def list_selection(
    config: TerminalConfig, kinds: tuple[str, ...] = (KIND_EMV,)
) -> Flow[list[Candidate]]:
    """SELECT each AID of the terminal's list (of the given kinds), EMV Book 1 §12.3.3.

    An exact DF name is a candidate and ends that AID; a longer DF name starting with
    the AID is a candidate when partial selection is allowed, and the terminal then asks
    for the next occurrence until the card answers with an error. Blocked (6283)
    applications are never candidates.
    """
    found: list[Candidate] = []
    for supported in config.supported_aids:
        if supported.kind not in kinds:
            continue
        first = True
        for _ in range(MAX_OCCURRENCES):
            r = yield card(iso.select_aid(supported.aid, first=first), check=False)
            if r.sw not in (0x9000, 0x6283):
                break
            fci = ApplicationFci.parse(r.data) if r.data else None
            name = fci.df_name if fci is not None else supported.aid
            exact = name == supported.aid
            usable = r.sw == 0x9000 and (exact or supported.matches(name))
            if usable and all(f.aid != name for f in found):
                found.append(
                    Candidate(
                        name,
                        supported,
                        fci.label if fci else "",
                        fci.preferred_name if fci else "",
                        fci.priority_indicator if fci else None,
                        SOURCE_LIST,
                        fci,
                    )
                )
            if exact:
                break
            first = False
    return order(found)


def interface_from_atr(atr: bytes, reader_name: str = "") -> str:
    """The interface a card was reached over: NFC readers and the PC/SC contactless
    pseudo-ATR (3B 8x 80 01 ..., PC/SC part 3) mean contactless; any other ATR is a
    contact card's own (3B 68 ..., 3B 6x, 3F ...). No ATR at all: contactless."""
    if reader_name.startswith(("nfc:", "pn532:")):
        return CONTACTLESS
    if len(atr) >= 4 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01":
        return CONTACTLESS
    return CONTACT if atr else CONTACTLESS


def _directory(interface: str) -> Flow[list[DirectoryEntry] | None]:
    if interface == CONTACTLESS:
        fci = yield from read_ppse()
        return fci.entries if fci is not None else None
    return (yield from read_pse())


def discover(
    config: TerminalConfig,
    interface: str = CONTACTLESS,
    *,
    kinds: tuple[str, ...] = (KIND_EMV,),
    other_directory: bool = False,
) -> Flow[Discovery]:
    """Candidates from the PPSE (contactless) or PSE (contact), else from list selection.

    With ``other_directory`` (``--interface auto``) a card without the first directory is
    asked for the other one; ``Discovery.source`` then says which answered.
    """
    source = SOURCE_PPSE if interface == CONTACTLESS else SOURCE_PSE
    entries = yield from _directory(interface)
    if entries is None and other_directory:
        other = CONTACT if interface == CONTACTLESS else CONTACTLESS
        entries = yield from _directory(other)
        if entries is not None:
            source = SOURCE_PPSE if other == CONTACTLESS else SOURCE_PSE
    if entries is not None:
        found = [cand for cand in candidates_from(entries, config, source) if cand.kind in kinds]
        if found:
            return Discovery(source, found, entries)
    listed = yield from list_selection(config, kinds)
    return Discovery(SOURCE_LIST, listed, entries or [])


def eligible(
    candidates: list[Candidate],
    config: TerminalConfig,
    interface: str,
    confirm: Callable[[Candidate], bool] | None = None,
) -> list[Candidate]:
    """Apply the confirmation rule (contact only): ask, or skip when the terminal cannot."""
    if interface == CONTACTLESS:
        return list(candidates)
    can_confirm = config.cardholder_confirmation and confirm is not None
    return [
        cand
        for cand in candidates
        if not cand.needs_confirmation or (can_confirm and confirm(cand))  # type: ignore[misc]
    ]


def select_application(candidate: Candidate) -> Flow[ApplicationFci]:
    """SELECT one application by its AID and return its FCI (typed error when refused)."""
    r = yield card(iso.select_aid(candidate.aid))
    return ApplicationFci.parse(r.data)


def final_selection(
    candidates: list[Candidate],
    config: TerminalConfig,
    interface: str = CONTACTLESS,
    confirm: Callable[[Candidate], bool] | None = None,
) -> Flow[tuple[Candidate, ApplicationFci]]:
    """Select the best eligible candidate; a refused one is dropped and the next tried."""
    pending = eligible(candidates, config, interface, confirm)
    refused: list[str] = []
    for cand in pending:
        try:
            fci = yield from select_application(cand)
        except CardError as exc:
            refused.append(f"{cand.aid.hex().upper()}: SW {exc.sw:04X}")
            continue
        return cand, fci
    detail = "; ".join(refused) if refused else "no candidate"
    raise NoApplication(f"no application could be selected ({detail})")
