"""File Control Information of directories (PPSE, PSE, DDF) and applications (ADF)."""

from __future__ import annotations

from dataclasses import dataclass, field

from terminal.apdu import tlv
from terminal.apdu.errors import MalformedResponse, TlvError
from terminal.emv.tags import Tag

PPSE_NAME = b"2PAY.SYS.DDF01"
PSE_NAME = b"1PAY.SYS.DDF01"


def _text(raw: bytes | None) -> str:
    if not raw:
        return ""
    return raw.decode("ascii", errors="replace").strip()


@dataclass(frozen=True, slots=True)
class LogEntry:
    """9F4D / DF4D: where a log lives (SFI) and how many records it keeps."""

    sfi: int
    records: int

    @classmethod
    def parse(cls, raw: bytes) -> LogEntry:
        if len(raw) != 2 or not 1 <= raw[0] <= 30:
            raise MalformedResponse(f"log entry {raw.hex().upper()} is not SFI(1..30) + count")
        return cls(raw[0], raw[1])


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One ``61`` entry of a PPSE, PSE or DDF directory."""

    aid: bytes
    label: str = ""
    preferred_name: str = ""
    priority_indicator: int | None = None
    kernel_id: bytes = b""
    ddf_name: bytes = b""  # set instead of ``aid`` for a nested directory (tag 9D)

    @property
    def priority(self) -> int | None:
        """1 (highest) .. 15, or None when the card gives none (0 or absent)."""
        if self.priority_indicator is None:
            return None
        return (self.priority_indicator & 0x0F) or None

    @property
    def needs_confirmation(self) -> bool:
        return self.priority_indicator is not None and bool(self.priority_indicator & 0x80)

    @classmethod
    def parse(cls, entry: tlv.Tlv) -> DirectoryEntry | None:
        """An entry, or None when it names neither an ADF (4F) nor a DDF (9D)."""
        flat = tlv.flatten(entry.children)
        aid = flat.get(Tag.AID, b"")
        ddf = flat.get(Tag.ADF_NAME_DDF, b"")
        if not aid and not ddf:
            return None
        if aid and not 5 <= len(aid) <= 16:
            raise MalformedResponse(f"directory entry AID {aid.hex().upper()} is not 5-16 bytes")
        api = flat.get(Tag.PRIORITY)
        return cls(
            aid=aid,
            label=_text(flat.get(Tag.APPLICATION_LABEL)),
            preferred_name=_text(flat.get(Tag.PREFERRED_NAME)),
            priority_indicator=api[0] if api else None,
            kernel_id=flat.get(Tag.KERNEL_ID, b""),
            ddf_name=ddf,
        )


def entries_in(objects: list[tlv.Tlv]) -> list[DirectoryEntry]:
    """Every directory entry (tag 61) in a template, in card order."""
    out = []
    for t in tlv.find_all(objects, Tag.APPLICATION_TEMPLATE):
        entry = DirectoryEntry.parse(t)
        if entry is not None:
            out.append(entry)
    return out


@dataclass(frozen=True, slots=True)
class DirectoryFci:
    """FCI of PPSE/PSE/DDF: the directory's SFI (PSE) or its entries (PPSE)."""

    df_name: bytes
    sfi: int | None
    entries: list[DirectoryEntry] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> DirectoryFci:
        try:
            fci = tlv.parse_one(data, Tag.FCI)
        except TlvError as exc:
            raise MalformedResponse(f"directory FCI: {exc}", raw=data) from None
        flat = tlv.flatten(fci.children)
        sfi_raw = flat.get(Tag.SFI_OF_DIRECTORY)
        sfi = None
        if sfi_raw is not None:
            if len(sfi_raw) != 1 or not 1 <= sfi_raw[0] <= 30:
                raise MalformedResponse(f"directory SFI {sfi_raw.hex()} out of range", raw=data)
            sfi = sfi_raw[0]
        issuer = fci.find(Tag.FCI_ISSUER_DISCRETIONARY)
        entries = entries_in(list(issuer.children)) if issuer is not None else []
        return cls(flat.get(Tag.DF_NAME, b""), sfi, entries)


@dataclass(frozen=True, slots=True)
class ApplicationFci:
    """FCI of a selected application (ADF)."""

    df_name: bytes
    label: str = ""
    preferred_name: str = ""
    priority_indicator: int | None = None
    pdol: bytes | None = None
    language: str = ""
    log_entry: LogEntry | None = None
    load_log_entry: LogEntry | None = None
    data: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes) -> ApplicationFci:
        try:
            fci = tlv.parse_one(data, Tag.FCI)
        except TlvError as exc:
            raise MalformedResponse(f"application FCI: {exc}", raw=data) from None
        flat = tlv.flatten([fci])
        if Tag.DF_NAME not in flat:
            raise MalformedResponse("application FCI has no DF name (84)", raw=data)
        log = flat.get(Tag.LOG_ENTRY)
        load_log = flat.get(Tag.LOAD_LOG_ENTRY)
        api = flat.get(Tag.PRIORITY)
        return cls(
            df_name=flat[Tag.DF_NAME],
            label=_text(flat.get(Tag.APPLICATION_LABEL)),
            preferred_name=_text(flat.get(Tag.PREFERRED_NAME)),
            priority_indicator=api[0] if api else None,
            pdol=flat.get(Tag.PDOL),
            language=_text(flat.get(Tag.LANGUAGE)),
            log_entry=LogEntry.parse(log) if log is not None else None,
            load_log_entry=LogEntry.parse(load_log) if load_log is not None else None,
            data=flat,
        )
