"""Dumps other tools make, turned into a replayable ``Trace`` (``ykt read --replay FILE``).

The format is recognised by content, never by file name. Each importer is small: the
text logs share one line scanner (a command pattern, a response pattern); the two JSON
exports rebuild the exchanges their tool made from the answers they kept. A file in no
known format is refused with the list of the supported ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal.apdu import tlv
from terminal.apdu.errors import TlvError
from terminal.apdu.iso import read_binary, read_record, select_aid
from terminal.epurse.commands import PURSE_EP, get_balance
from terminal.readers.trace import Trace, TraceFormatError, parse_trace

FORMAT_TRACE = "yikatong trace"
FORMAT_PM3_CONSOLE = "Proxmark3 console (>>> / <<<)"
FORMAT_PM3_EMV_JSON = "Proxmark3 hf emv scan JSON"
FORMAT_PCSCD = "pcscd debug log (APDU: / SW:)"
FORMAT_SCRIPTOR = "scriptor output (> / <)"
FORMAT_CARDPEEK = "cardpeek log (send: / recv:)"
FORMAT_BLOG = "plain log (C-APDU:/R-APDU:, 发送/返回, >>/<<)"
FORMAT_METRODROID = "Metrodroid JSON (ISO 7816 / China cards)"

SUPPORTED = (
    FORMAT_TRACE,
    FORMAT_PM3_CONSOLE,
    FORMAT_PM3_EMV_JSON,
    FORMAT_PCSCD,
    FORMAT_SCRIPTOR,
    FORMAT_CARDPEEK,
    FORMAT_BLOG,
    FORMAT_METRODROID,
)

OK = b"\x90\x00"
_HEX = r"((?:[0-9A-Fa-f]{2}[ \t]?)+)"
_PROJECT_LINE = re.compile(r"^\s*(ATR:.*|[0-9A-Fa-f ]{8,}:[0-9A-Fa-f ]{4,})\s*(#.*)?$")
_ATR = re.compile(r"\bATR\s*[:=]\s*" + _HEX, re.IGNORECASE)


class UnknownTraceFormat(TraceFormatError):
    """A --replay file in none of the formats the importers know."""

    def __init__(self, detail: str = ""):
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"not a trace in a known format{extra}; supported: " + "; ".join(SUPPORTED)
        )


@dataclass(frozen=True, slots=True)
class Imported:
    trace: Trace
    format: str
    skipped: int = 0  # commands the tool logged incompletely (cut short), left out


def _hex(text: str) -> bytes:
    return bytes.fromhex(re.sub(r"\s+", "", text))


# -- line logs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineFormat:
    """A log with one command line and one response line per exchange."""

    name: str
    detect: Callable[[str], bool]
    command: re.Pattern[str]
    response: re.Pattern[str]
    sw_first: bool = False  # cardpeek writes the status word before the data


def _scan(text: str, fmt: LineFormat) -> Imported:
    trace = Trace()
    pending: bytes | None = None
    skipped = 0
    for line in text.splitlines():
        atr = _ATR.search(line)
        if atr and not trace.atr:
            trace.atr = _hex(atr.group(1))
            continue
        sent = fmt.command.search(line)
        if sent:
            if "(...)" in line:  # cut short by the tool: not replayable
                skipped += 1
                pending = None
                continue
            pending = _hex(sent.group(1))
            continue
        got = fmt.response.search(line)
        if got and pending is not None:
            raw = _hex(got.group(1))
            if fmt.sw_first:
                raw = raw[2:] + raw[:2]
            if len(pending) >= 4 and len(raw) >= 2:
                trace.exchanges.append((pending, raw))
            pending = None
    if not trace.exchanges:
        raise UnknownTraceFormat(f"looked like {fmt.name} but held no exchange")
    return Imported(trace, fmt.name, skipped)


def _has(*markers: str) -> Callable[[str], bool]:
    return lambda text: all(m in text for m in markers)


def _lines_start(*prefixes: str) -> Callable[[str], bool]:
    def detect(text: str) -> bool:
        starts = {p: False for p in prefixes}
        for line in text.splitlines():
            for p in prefixes:
                if re.match(p, line):
                    starts[p] = True
        return all(starts.values())

    return detect


LINE_FORMATS: tuple[LineFormat, ...] = (
    LineFormat(
        FORMAT_PCSCD,
        lambda text: bool(re.search(r"(?<![-\w])APDU:", text)) and "SW:" in text,
        re.compile(r"(?<![-\w])APDU:\s*" + _HEX),
        re.compile(r"\bSW:\s*" + _HEX),
    ),
    LineFormat(
        FORMAT_PM3_CONSOLE,
        _has(">>>", "<<<"),
        re.compile(r">>>>?\s*" + _HEX + r"(?:\s|$|\|)"),
        re.compile(r"<<<<?\s*(?!status)" + _HEX + r"(?:\s|$|\|)"),
    ),
    LineFormat(
        FORMAT_CARDPEEK,
        lambda text: "send:" in text.lower() and "recv:" in text.lower(),
        re.compile(r"(?i)\bsend:\s*(?:8:)?" + _HEX),
        re.compile(r"(?i)\brecv:\s*" + _HEX),
        sw_first=True,
    ),
    LineFormat(
        FORMAT_BLOG,
        lambda text: bool(
            re.search(r"C-APDU|R-APDU|发送|返回|^\s*>>[^>]", text, re.IGNORECASE | re.MULTILINE)
        ),
        re.compile(r"(?i)(?:C-APDU|发送|^\s*>>(?!>))\s*[:：]?\s*" + _HEX),
        re.compile(r"(?i)(?:R-APDU|返回|接收|^\s*<<(?!<))\s*[:：]?\s*" + _HEX),
    ),
    LineFormat(
        FORMAT_SCRIPTOR,
        _lines_start(r"^> [0-9A-Fa-f]{2}", r"^< [0-9A-Fa-f]{2}"),
        re.compile(r"^> " + _HEX),
        re.compile(r"^< " + _HEX),
    ),
)


# -- JSON exports ------------------------------------------------------------------------------


def _select(name: bytes) -> bytes:
    return select_aid(name).encode()


def _read_record(sfi: int, number: int) -> bytes:
    return read_record(sfi, number).encode()


def _read_binary(sfi: int) -> bytes:
    return read_binary(sfi).encode()


def _tlv_bytes(node: Any) -> bytes:
    """A Proxmark3 TLV element ({"tag": "6F", "value": "..."}) back to its bytes."""
    if not isinstance(node, dict) or "tag" not in node or "value" not in node:
        raise UnknownTraceFormat("Proxmark3 JSON element without tag and value")
    tag, value = _hex(str(node["tag"])), _hex(str(node["value"]))
    return tag + tlv.encode_length(len(value)) + value


def _pm3_emv(doc: dict[str, Any]) -> Imported:
    """``hf emv scan``: the PPSE answer, the application's FCI, the GPO answer and the AFL
    records, each kept as a TLV element; the GPO's own data is not kept, so its command
    is a placeholder that the replay matches by header (and says so)."""
    trace = Trace()
    card = doc.get("Card", {})
    atr = card.get("Contact", {}).get("ATR") if isinstance(card, dict) else None
    if isinstance(atr, str):
        trace.atr = _hex(atr)
    ppse = doc.get("PPSE", {})
    if isinstance(ppse, dict) and "FCITemplate" in ppse:
        trace.exchanges.append((_select(b"2PAY.SYS.DDF01"), _tlv_bytes(ppse["FCITemplate"]) + OK))
    app = doc.get("Application", {})
    if not isinstance(app, dict) or "AID" not in app:
        raise UnknownTraceFormat("Proxmark3 JSON without $.Application.AID")
    aid = _hex(str(app["AID"]))
    if "FCITemplate" in app:
        trace.exchanges.append((_select(aid), _tlv_bytes(app["FCITemplate"]) + OK))
    if "GPO" in app:
        trace.exchanges.append((bytes.fromhex("80A8000002830000"), _tlv_bytes(app["GPO"]) + OK))
    for rec in app.get("Records", []) or []:
        sfi, number = int(str(rec["SFI"]), 16), int(str(rec["RecordNum"]), 16)
        trace.exchanges.append((_read_record(sfi, number), _tlv_bytes(rec["Data"]) + OK))
    return Imported(trace, FORMAT_PM3_EMV_JSON)


def _metrodroid_apps(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialised ISO 7816 application (an object with a ``generic`` capsule)."""
    if isinstance(node, dict):
        if isinstance(node.get("generic"), dict):
            yield node
        for value in node.values():
            yield from _metrodroid_apps(value)
    elif isinstance(node, list):
        for value in node:
            yield from _metrodroid_apps(value)


def _metrodroid(doc: Any) -> Imported:
    """Metrodroid's ISO 7816 export: per application its name and FCI, the SFI files (binary
    data and records) and, for China cards, GET BALANCE answers by P1 (0 main, 1 second)."""
    trace = Trace()
    for app in _metrodroid_apps(doc):
        generic = app["generic"]
        name, fci = generic.get("appName"), generic.get("appFci")
        if not name:
            continue
        trace.exchanges.append((_select(_hex(name)), (_hex(fci) if fci else b"") + OK))
        for key, file in sorted((generic.get("sfiFiles") or {}).items(), key=lambda kv: int(kv[0])):
            sfi = int(key)
            if not 1 <= sfi <= 30 or not isinstance(file, dict):
                continue
            if file.get("binaryData"):
                trace.exchanges.append((_read_binary(sfi), _hex(file["binaryData"]) + OK))
            records = file.get("records") or {}
            for number, data in sorted(records.items(), key=lambda kv: int(kv[0])):
                trace.exchanges.append((_read_record(sfi, int(number)), _hex(data) + OK))
            if records:
                last = max(int(n) for n in records) + 1
                trace.exchanges.append((_read_record(sfi, last), b"\x6a\x83"))
        for p1, data in sorted((app.get("balances") or {}).items(), key=lambda kv: int(kv[0])):
            command = get_balance(PURSE_EP, p1=int(p1)).encode()
            trace.exchanges.append((command, _hex(data) + OK))
    if not trace.exchanges:
        raise UnknownTraceFormat("Metrodroid JSON without an ISO 7816 application")
    return Imported(trace, FORMAT_METRODROID)


def _json(doc: Any) -> Imported:
    try:
        if isinstance(doc, dict) and "Application" in doc and ("PPSE" in doc or "Card" in doc):
            return _pm3_emv(doc)
        if any(True for _ in _metrodroid_apps(doc)):
            return _metrodroid(doc)
    except (KeyError, TypeError, ValueError, TlvError) as exc:
        raise UnknownTraceFormat(f"malformed export: {exc}") from None
    raise UnknownTraceFormat("JSON of no known tool")


# -- dispatch ----------------------------------------------------------------------------------


def _is_project_trace(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return all(_PROJECT_LINE.match(ln) for ln in lines)  # comments alone: an empty trace


def import_text(text: str) -> Imported:
    """The exchanges in ``text``, whichever supported tool wrote it."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None  # "[+] >>> ..." lines start with a bracket too
        if doc is not None:
            return _json(doc)
    if _is_project_trace(text):
        return Imported(parse_trace(text), FORMAT_TRACE)
    for fmt in LINE_FORMATS:
        if fmt.detect(text):
            try:
                return _scan(text, fmt)
            except ValueError as exc:
                raise UnknownTraceFormat(f"{fmt.name}: {exc}") from None
    if any(_PROJECT_LINE.match(line) for line in text.splitlines()):
        return Imported(parse_trace(text), FORMAT_TRACE)  # its own error names the bad line
    raise UnknownTraceFormat()


def import_file(path: str | Path) -> Imported:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TraceFormatError(f"cannot read {path}: {exc.strerror}") from None
    return import_text(text)
