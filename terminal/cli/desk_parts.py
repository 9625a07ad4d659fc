"""A desk's outside parts, shared by ``ykt issue`` and ``ykt run``: the personalisation key
host and card registry (gateway code run in the desk's process) and its blank software
cards, handed to the assembly as its ``DeskDevices``."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from terminal.private_files import read_secret_file


class DeskParts:
    """A desk's personalisation key host and card registry (the gateway's, in the desk's
    process) and its blank software cards."""

    def perso_host(self, keys: str | None, transport_master: str | None) -> Any:
        from gateway.hsm import HostSecurityModule
        from simulators.profiles import DEMO_ISSUERS, demo_keyset, demo_transport_master
        from terminal.crypto.keyset import load_keysets

        keysets = (
            list(load_keysets(keys).values())
            if keys
            else [demo_keyset(i) for i in DEMO_ISSUERS.values()]
        )
        master = self._master(transport_master) or demo_transport_master()
        return HostSecurityModule(keysets, transport_master=master)

    def registry(self, path: str, replacement_wait_days: int) -> Any:
        from gateway.registry import SqliteCardRegistry

        return SqliteCardRegistry(path, replacement_wait=timedelta(days=replacement_wait_days))

    def blank_card(self, path: str, transport_master: str | None) -> Any:
        from simulators.files import load_device
        from simulators.profiles import blank_card

        if Path(path).exists():
            return load_device(path)
        return blank_card(secrets.token_bytes(8), path, master=self._master(transport_master))

    def discard_if_untouched(self, path: str) -> None:
        discard_if_untouched(Path(path))

    @staticmethod
    def _master(path: str | None) -> bytes | None:
        return bytes.fromhex(read_secret_file(path)) if path else None


def discard_if_untouched(path: Path) -> None:
    """Remove a software card file made for a refused issuance if nothing was written to it
    (a half-personalised card stays, so the next attempt can finish it)."""
    from simulators.blank_card import KIND
    from terminal.cos.layouts import LifeCycle

    if not path.exists():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("kind") == KIND and data["state"]["life_cycle"] == LifeCycle.CREATION:
        path.unlink()
