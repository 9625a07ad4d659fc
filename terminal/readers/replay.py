"""Replay backend: answers from a recorded trace, so a field recording becomes a test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedApdu
from terminal.apdu.iso import IsoIns
from terminal.apdu.status import SW
from terminal.emv.commands import EmvIns
from terminal.readers.importers import FORMAT_TRACE, import_file
from terminal.readers.spec import ReaderSpecError
from terminal.readers.trace import Trace

NOT_SUPPORTED = SW.INS_NOT_SUPPORTED.to_bytes(2, "big")

# Commands whose data is the terminal's own dynamic data (amount, date, unpredictable
# number, TTQ): GET PROCESSING OPTIONS, GENERATE AC, INTERNAL AUTHENTICATE. A trace from
# another tool holds that tool's data, so these may match by header and position. Nothing
# else does: a SELECT of another AID, say, must never answer for this one.
LOOSE_INS = {
    EmvIns.GET_PROCESSING_OPTIONS: "GET PROCESSING OPTIONS",
    EmvIns.GENERATE_AC: "GENERATE AC",
    IsoIns.INTERNAL_AUTHENTICATE: "INTERNAL AUTHENTICATE",
}


@dataclass(frozen=True, slots=True)
class LooseMatch:
    """An exchange answered by a recorded line with the same header but other data."""

    line: int  # index of the exchange in the trace (0-based)
    sent: bytes
    recorded: bytes

    @property
    def ins(self) -> int:
        return self.sent[1]

    @property
    def name(self) -> str:
        return LOOSE_INS.get(self.ins, f"INS {self.ins:02X}")


class ReplayReader:
    """Lines are used in order: a command takes the first unused line equal to it (or equal
    but for a trailing Le byte); once all lines for that command are used, the last of them
    answers again. A GPO, GENERATE AC or INTERNAL AUTHENTICATE with no such line takes the
    first unused line with the same header (CLA INS P1 P2) after the last line used - a
    foreign trace's own terminal data - and is listed in ``loose``. Any other command with
    no line gets 6D00."""

    def __init__(self, trace: Trace | str | Path, name: str | None = None):
        self.format = FORMAT_TRACE
        self.skipped = 0
        if not isinstance(trace, Trace):
            name = name or f"replay:{trace}"
            imported = import_file(trace)
            trace, self.format, self.skipped = imported.trace, imported.format, imported.skipped
        self.trace = trace
        self.name = name or "replay"
        self._used = [False] * len(trace.exchanges)
        self._connected = False
        self._position = 0
        self.loose: list[LooseMatch] = []

    def connect(self) -> bytes:
        self._connected = True
        return self.trace.atr

    @property
    def atr(self) -> bytes:
        return self.trace.atr

    @staticmethod
    def _matches(recorded: bytes, sent: bytes) -> bool:
        """Equal, or equal apart from a trailing short Le byte (present, absent or different)."""
        if recorded == sent:
            return True
        if abs(len(recorded) - len(sent)) > 1:
            return False
        try:
            a, b = CommandAPDU.decode(recorded), CommandAPDU.decode(sent)
        except MalformedApdu:
            return False
        return not a.extended and not b.extended and a.header == b.header and a.data == b.data

    def transmit(self, apdu: bytes) -> bytes:
        apdu = bytes(apdu)
        last_match: int | None = None
        for i, (command, response) in enumerate(self.trace.exchanges):
            if self._matches(command, apdu):
                if not self._used[i]:
                    self._used[i] = True
                    self._position = i
                    return response
                last_match = i
        if last_match is not None:
            return self.trace.exchanges[last_match][1]
        loose = self._loose(apdu)
        if loose is not None:
            return self.trace.exchanges[loose][1]
        return NOT_SUPPORTED

    def _loose(self, apdu: bytes) -> int | None:
        """The first unused line with ``apdu``'s header, from the last line used on."""
        if len(apdu) < 5 or apdu[1] not in LOOSE_INS:
            return None
        lines = self.trace.exchanges
        order = [*range(self._position, len(lines)), *range(self._position)]
        for i in order:
            command = lines[i][0]
            if not self._used[i] and len(command) > 5 and command[:4] == apdu[:4]:
                self._used[i] = True
                self._position = i
                self.loose.append(LooseMatch(i, apdu, command))
                return i
        return None

    def disconnect(self) -> None:
        self._connected = False

    def card_present(self) -> bool:
        return True

    def wait_for_card(self, timeout: float | None = None) -> bool:
        return True

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        return False


def from_spec(rest: str) -> ReplayReader:
    """``replay:FILE``."""
    if not rest:
        raise ReaderSpecError("replay needs a trace file: replay:FILE")
    return ReplayReader(rest)
