"""A software IC card carrying several applications: directories, routing, persistence.

The card answers SELECT of the PPSE (contactless) and the PSE (contact) itself, building
the directory from its applications' entries, and routes every other command to the
application selected last (SELECT by DF name picks the application; selecting another
one drops the previous one's session, as on a real card). The resident card (PBOC debit
with EC plus the T-Union EP) and the social security card (SSSE plus its bank
application) are instances of it; the e-purse application is the existing
``SoftEPurseCard``, composed rather than copied.

A card made from a file saves itself after every command that changed its state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulators.card_app import CardApplication
from simulators.emv_card import EmvApplication
from simulators.epurse_card import EPurseState, SoftEPurseCard
from simulators.ssse_card import SsseApplication
from simulators.statefile import read_state, write_state
from terminal.apdu import tlv
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW
from terminal.emv.fci import PPSE_NAME, PSE_NAME
from terminal.emv.selection import CONTACT, CONTACTLESS
from terminal.emv.tags import Tag

DEFAULT_ATR = bytes.fromhex("3B8F8001804F0CA0000003060300030000000068")
PSE_SFI = 1
KINDS = ("emv", "resident", "ssse")


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


class EPurseApplication:
    """Adapter that puts a ``SoftEPurseCard`` on a multi-application card."""

    kind = "epurse"

    def __init__(self, card: SoftEPurseCard, *, listed: bool = True, priority: int = 2):
        self.card = card
        self.listed = listed
        self.priority = priority

    @property
    def df_name(self) -> bytes:
        return bytes.fromhex("A000000632010105")

    def directory_entry(self, interface: str) -> tlv.Tlv | None:
        if not self.listed:
            return None
        return tlv.build(
            Tag.APPLICATION_TEMPLATE,
            [
                tlv.build(Tag.AID, self.df_name),
                tlv.build(Tag.APPLICATION_LABEL, b"MOT_T_EP"),
                tlv.build(Tag.PRIORITY, bytes((self.priority,))),
            ],
        )

    def process(self, apdu: bytes) -> bytes:
        return self.card.process(apdu)

    def deselect(self) -> None:
        self.card.reset()

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "state": asdict(self.card.state),
            "listed": self.listed,
            "priority": self.priority,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EPurseApplication:
        return cls(
            SoftEPurseCard(EPurseState(**data["state"])),
            listed=bool(data.get("listed", True)),
            priority=int(data.get("priority", 2)),
        )


_APP_LOADERS: dict[str, Callable[[dict[str, Any]], CardApplication]] = {
    "emv": EmvApplication.from_json,
    "epurse": EPurseApplication.from_json,
    "ssse": SsseApplication.from_json,
}


class SoftIcc:
    """The card: ``atr`` and ``process(apdu)`` for the sim reader."""

    def __init__(
        self,
        apps: list[CardApplication],
        *,
        kind: str = "emv",
        interface: str = CONTACTLESS,
        atr: bytes = DEFAULT_ATR,
        path: str | Path | None = None,
    ):
        if kind not in KINDS:
            raise ValueError(f"card kind must be one of {KINDS}")
        self.apps = apps
        self.kind = kind
        self.atr = atr
        self.path = Path(path) if path is not None else None
        self._current: CardApplication | None = None
        self._directory: bytes | None = None  # "PPSE" or "PSE" while one is selected
        self._interface = CONTACTLESS
        self.interface = interface
        self._saved = self._snapshot() if self.path is not None else ""

    # -- interface and apps -------------------------------------------------------------
    @property
    def interface(self) -> str:
        return self._interface

    @interface.setter
    def interface(self, value: str) -> None:
        if value not in (CONTACT, CONTACTLESS):
            raise ValueError("interface is 'contact' or 'contactless'")
        self._interface = value
        for app in self.apps:
            if isinstance(app, EmvApplication):
                app.interface = value

    def app(self, kind: str) -> Any:
        """The first application of ``kind`` (tests and the demo reach in through this)."""
        return next(a for a in self.apps if a.kind == kind)

    def reset(self) -> None:
        """Power-on reset: nothing is selected."""
        self._deselect()

    def _deselect(self) -> None:
        if self._current is not None:
            self._current.deselect()
        self._current = None
        self._directory = None

    # -- APDUs --------------------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        try:
            cmd = CommandAPDU.decode(apdu)
        except MalformedApdu:
            return _sw(SW.WRONG_LENGTH)
        if cmd.ins == IsoIns.SELECT and cmd.p1 == 0x04:
            response = self._select_by_name(cmd, apdu)
        elif self._directory is not None and cmd.ins == IsoIns.READ_RECORD:
            response = self._directory_record(cmd)
        elif self._current is not None:
            response = self._current.process(apdu)
        else:
            response = _sw(SW.CONDITIONS) if cmd.ins != IsoIns.SELECT else _sw(SW.FILE_NOT_FOUND)
        self._autosave()
        return response

    def _select_by_name(self, cmd: CommandAPDU, apdu: bytes) -> bytes:
        name = cmd.data
        if name in (PPSE_NAME, PSE_NAME):
            self._deselect()
            wanted = PPSE_NAME if self.interface == CONTACTLESS else PSE_NAME
            if name != wanted:
                return _sw(SW.FILE_NOT_FOUND)
            self._directory = name
            return self._directory_fci(name) + _sw(SW.OK)
        app = next((a for a in self.apps if name and a.df_name.startswith(name)), None)
        if app is None:
            self._deselect()
            return _sw(SW.FILE_NOT_FOUND)
        if app is not self._current:
            self._deselect()
        self._directory = None
        self._current = app
        return app.process(apdu)

    def _entries(self) -> list[tlv.Tlv]:
        out = []
        for app in self.apps:
            entry = app.directory_entry(self.interface)
            if entry is not None:
                out.append(entry)
        return out

    def _directory_fci(self, name: bytes) -> bytes:
        if name == PPSE_NAME:
            body = tlv.build(Tag.FCI_ISSUER_DISCRETIONARY, self._entries())
        else:
            body = tlv.build(Tag.SFI_OF_DIRECTORY, bytes((PSE_SFI,)))
        return tlv.build(
            Tag.FCI, [tlv.build(Tag.DF_NAME, name), tlv.build(Tag.FCI_PROPRIETARY, [body])]
        ).encode()

    def _directory_record(self, cmd: CommandAPDU) -> bytes:
        if self._directory != PSE_NAME or cmd.p2 != (PSE_SFI << 3) | 0x04:
            return _sw(SW.FILE_NOT_FOUND)
        entries = self._entries()
        if not 1 <= cmd.p1 <= len(entries):
            return _sw(SW.RECORD_NOT_FOUND)
        return tlv.build(Tag.RECORD_TEMPLATE, [entries[cmd.p1 - 1]]).encode() + _sw(SW.OK)

    # -- persistence --------------------------------------------------------------------
    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "interface": self.interface,
            "atr": self.atr.hex().upper(),
            "apps": [a.to_json() for a in self.apps],
        }

    def _snapshot(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def _autosave(self) -> None:
        if self.path is None:
            return
        snap = self._snapshot()
        if snap != self._saved:
            self.save()

    def save(self, path: str | Path | None = None) -> None:
        """Write the state atomically (temp file, fsync, rename)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            return
        self.path = write_state(target, self.to_json())
        self._saved = self._snapshot()

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str | Path | None = None) -> SoftIcc:
        apps = []
        for item in data["apps"]:
            loader = _APP_LOADERS.get(item.get("kind"))
            if loader is None:
                raise ValueError(f"unknown application kind {item.get('kind')!r}")
            apps.append(loader(item))
        return cls(
            apps,
            kind=data.get("kind", "emv"),
            interface=data.get("interface", CONTACTLESS),
            atr=bytes.fromhex(data.get("atr", DEFAULT_ATR.hex())),
            path=path,
        )

    @classmethod
    def load(cls, path: str | Path) -> SoftIcc:
        data = read_state(path, tuple(KINDS), "software multi-application card")
        return cls.from_json(data, path)
