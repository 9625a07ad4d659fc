"""What a software multi-application card expects of each application it carries."""

from __future__ import annotations

from typing import Protocol

from terminal.apdu import tlv


class CardApplication(Protocol):
    """One application on a software card; the card routes SELECTs and commands to it."""

    kind: str

    @property
    def df_name(self) -> bytes: ...

    def directory_entry(self, interface: str) -> tlv.Tlv | None:
        """Its ``61`` entry for the PPSE (contactless) or PSE (contact), or None if unlisted."""
        ...

    def process(self, apdu: bytes) -> bytes:
        """Handle one command (SELECT of this application included)."""
        ...

    def deselect(self) -> None:
        """Another application was selected: drop volatile session state."""
        ...

    def to_json(self) -> dict[str, object]: ...
