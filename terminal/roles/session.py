"""A terminal's working set: the card reader, the PSAM reader, their channels, the PSAM info.

Every role (POS, validator, kiosk, issuance desk) owns one and runs flows through it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from terminal.apdu.channel import Channel
from terminal.apdu.flow import CARD, SAM, Flow, run
from terminal.readers.base import Reader
from terminal.sam.psam import SamInfo, startup

T = TypeVar("T")


class TerminalSession:
    """Card and SAM channels plus the PSAM's identity; ``run`` drives any flow over them."""

    def __init__(
        self,
        card_reader: Reader,
        sam_reader: Reader | None = None,
        *,
        clock: Callable[[], datetime] = datetime.now,
    ):
        self.card_reader = card_reader
        self.sam_reader = sam_reader
        self.clock = clock
        self.channels: dict[str, Channel] = {CARD: Channel(card_reader, name=CARD)}
        if sam_reader is not None:
            self.channels[SAM] = Channel(sam_reader, name=SAM)
        self.sam_info: SamInfo | None = None
        self._sam_connection: object = None
        # the sequence number of the PSAM's last INIT SAM FOR PURCHASE while its session key
        # may still be held (no 8070 or 8072 since, PSAM not powered anew): set by DebitPath
        self.purchase_seq: int | None = None

    def start(self) -> SamInfo:
        """Power the PSAM and read its terminal number and key index."""
        if self.sam_reader is None:
            raise RuntimeError("this terminal has no PSAM reader")
        self.purchase_seq = None
        self.sam_reader.connect()
        self.sam_info = run(startup(), self.channels)
        self._sam_connection = getattr(self.sam_reader, "connection", None)
        return self.sam_info

    @property
    def sam(self) -> SamInfo:
        # A reader that numbers its connections (PC/SC) shows when the PSAM was powered
        # anew (reader replugged, pcscd restarted): its selected application is gone.
        connection = getattr(self.sam_reader, "connection", self._sam_connection)
        if self.sam_info is None or connection != self._sam_connection:
            return self.start()
        return self.sam_info

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def run(self, flow: Flow[T]) -> T:
        return run(flow, self.channels)
