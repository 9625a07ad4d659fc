"""Issuer master key sets, as the host HSM and the simulators hold them (never the terminal).

Serialised as JSON with hex keys so a card centre can load its test or HSM-exported set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from terminal.crypto.errors import KeyLengthError
from terminal.crypto.keys import Algorithm, card_key
from terminal.private_files import write_private

KEY_FIELDS = ("purchase", "load", "tac", "maintenance")


@dataclass(frozen=True, slots=True)
class CardKeys:
    """The keys one card holds, diversified from the issuer's master keys."""

    purchase: bytes  # DPK
    load: bytes  # DLK
    tac: bytes  # DTK
    maintenance: bytes  # DAMK: application block/unblock


@dataclass(frozen=True, slots=True)
class IssuerKeyset:
    """Master keys of one card issuer, for one key version."""

    issuer_id: bytes
    key_version: int
    purchase: bytes  # MPK (held by PSAMs, national in T-Union)
    load: bytes  # MLK (host HSM only)
    tac: bytes  # MTK (host HSM / clearing only)
    maintenance: bytes  # MAMK (PSAM, for application block)
    algorithm: int = Algorithm.DES3

    def __post_init__(self) -> None:
        if len(self.issuer_id) != 8:
            raise KeyLengthError("issuer id must be 8 bytes")
        for name in KEY_FIELDS:
            if len(getattr(self, name)) != 16:
                raise KeyLengthError(f"{name} master key must be 16 bytes")

    def card_keys(self, card_serial: bytes) -> CardKeys:
        def d(master: bytes) -> bytes:
            return card_key(master, card_serial, self.issuer_id, self.algorithm)

        return CardKeys(d(self.purchase), d(self.load), d(self.tac), d(self.maintenance))

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            k: v.hex().upper() if isinstance(v, bytes) else v for k, v in asdict(self).items()
        }
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> IssuerKeyset:
        def b(name: str) -> bytes:
            return bytes.fromhex(str(data[name]))

        return cls(
            b("issuer_id"),
            int(data["key_version"]),  # type: ignore[arg-type]
            *(b(k) for k in KEY_FIELDS),
            algorithm=int(data.get("algorithm", 0)),
        )  # type: ignore[arg-type]


def load_keysets(path: str | Path) -> dict[bytes, IssuerKeyset]:
    """Read a JSON list of key sets, keyed by issuer id."""
    items = json.loads(Path(path).read_text(encoding="utf-8"))
    sets = [IssuerKeyset.from_json(item) for item in items]
    return {k.issuer_id: k for k in sets}


def save_keysets(path: str | Path, keysets: list[IssuerKeyset]) -> None:
    """Write key sets as JSON, owner-only (0600): the file holds issuer master keys."""
    write_private(path, json.dumps([k.to_json() for k in keysets], indent=2))
