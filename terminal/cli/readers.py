"""``ykt readers``: every card reader found on every backend, with its kind and --reader spec."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from terminal.apdu.errors import ReaderUnavailable
from terminal.cli.common import print_json


@dataclass
class FoundReader:
    spec: str
    kind: str
    detail: str = ""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "readers",
        help="list card readers (PC/SC, NFC, serial) and their --reader specs",
        description="List every card reader found: PC/SC readers known to pcscd (with the "
        "card in each), NFC readers nfcpy can drive, serial ports for PN532 modules, and "
        "the always-available sim and replay backends.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def pcsc_readers() -> tuple[list[FoundReader], str]:
    try:
        from terminal.readers.pcsc import PcscReader, list_readers
    except ReaderUnavailable as exc:
        return [], str(exc)
    try:
        names = list_readers()
    except ReaderUnavailable as exc:
        return [], f"PC/SC: {exc}"
    found = []
    for name in names:
        reader = PcscReader(name)
        try:
            detail = "card present" if reader.card_present() else "empty"
        finally:
            reader.close()
        found.append(FoundReader(f"pcsc:{name}", "pcsc", detail))
    return found, ""


def nfc_readers() -> tuple[list[FoundReader], str]:
    try:
        from terminal.readers.nfc import list_devices
    except ReaderUnavailable as exc:
        return [], str(exc)
    found = []
    for spec, detail in list_devices():
        kind = "serial" if spec.startswith("nfc:tty") else "nfc-usb"
        found.append(FoundReader(spec, kind, detail))
    return found, ""


def find_readers() -> tuple[list[FoundReader], list[str]]:
    """All readers, then notes about backends that could not look (e.g. pcscd not running)."""
    readers: list[FoundReader] = []
    notes: list[str] = []
    for finder in (pcsc_readers, nfc_readers):
        found, note = finder()
        readers += found
        if note:
            notes.append(note)
    readers.append(FoundReader("sim", "sim", "in-process software card (--card FILE)"))
    readers.append(FoundReader("replay:FILE", "replay", "answers from a recorded trace"))
    readers.append(
        FoundReader("nfc:udp:HOST:PORT", "nfc-udp", "nfcpy's UDP driver (software card peer)")
    )
    return readers, notes


def run(args: argparse.Namespace) -> int:
    readers, notes = find_readers()
    if args.json:
        print_json({"readers": [asdict(r) for r in readers], "notes": notes})
        return 0
    width = max(len(r.spec) for r in readers)
    print(f"{'--reader':<{width}}  {'kind':<8}  detail")
    for r in readers:
        print(f"{r.spec:<{width}}  {r.kind:<8}  {r.detail}")
    for note in notes:
        print(f"note: {note}")
    return 0
