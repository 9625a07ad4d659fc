"""Ride-code parameter sync: the gateway's root keys and issuer whitelist into a validator.

On the hotlist's beat (``HotlistSync.also``), the validator asks for the files newer than
the version it holds, checks each with the same parser as at start (terminal/qr/params.py),
writes it over the configured file atomically with its version on the first line (a
comment, so a restart reads the last good version and knows its number), and hands it to
the running ``QrGate``. A file that fails the check changes nothing: the gate and the file
on disk keep the last good version, and ``last_error`` says why.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from terminal.private_files import write_private
from terminal.qr.params import QrSettings, issuers_text, root_keys_text
from terminal.qr.ride import QrGate
from terminal.text import FileError
from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable

log = logging.getLogger("terminal.uplink")

_VERSION = re.compile(r"# version (\d{1,18}) ")


def held_version(path: str | Path) -> int:
    """The gateway version a parameter file holds (0: a file written by hand)."""
    try:
        with open(path, encoding="utf-8") as f:
            m = _VERSION.match(f.readline())
    except (OSError, UnicodeDecodeError):
        return 0
    return int(m.group(1)) if m else 0


class QrParamSync:
    """Keeps one validator's ride-code trust in step with the gateway's parameter files."""

    def __init__(self, client: GatewayClient, gate: QrGate, settings: QrSettings):
        self.client = client
        self.gate = gate
        self.paths = {"root_keys": settings.root_keys, "issuers": settings.issuers}
        self.last_error = ""

    @property
    def version(self) -> int:
        """The lowest version held: every file newer than it is asked for."""
        return min(held_version(p) for p in self.paths.values())

    def sync_once(self) -> bool:
        """Fetch, check, write and apply what is newer; whether anything changed."""
        try:
            doc = self.client.qr_params(self.version)
            return self._apply(doc["files"])
        except (GatewayUnavailable, GatewayRefused) as exc:
            self.last_error = str(exc)
        except (KeyError, TypeError, ValueError, FileError) as exc:
            self.last_error = f"parameter files refused, last good version kept: {exc}"
        log.warning("qr parameter sync: %s", self.last_error)
        return False

    def _apply(self, files: dict[str, Any]) -> bool:
        parsed: dict[str, tuple[int, str, dict[Any, Any]]] = {}
        for kind, path in self.paths.items():
            f = files.get(kind)
            if f is None or int(f["version"]) <= held_version(path):
                continue
            version, text = int(f["version"]), str(f["text"])
            name = f"{kind} version {version}"
            entries = (root_keys_text if kind == "root_keys" else issuers_text)(
                text.splitlines(), name
            )
            if not entries:
                raise FileError(name, None, "lists nothing")
            parsed[kind] = (version, text, entries)
        if not parsed:
            return False
        for kind, (version, text, _) in parsed.items():
            header = f"# version {version} from the gateway\n"
            write_private(self.paths[kind], header + text.rstrip("\n") + "\n")
        self.gate.reload(
            roots=parsed["root_keys"][2] if "root_keys" in parsed else None,
            issuers=parsed["issuers"][2] if "issuers" in parsed else None,
        )
        self.last_error = ""
        log.info("qr parameters: %s", ", ".join(f"{k} v{v[0]}" for k, v in parsed.items()))
        return True
