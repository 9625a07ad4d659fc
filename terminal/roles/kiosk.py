"""Self-service kiosk: balance and history, and online top-up through a LoadHost."""

from __future__ import annotations

from dataclasses import dataclass

from terminal.epurse import flows
from terminal.epurse.host import LoadHost
from terminal.epurse.model import CardSnapshot, LoadResult
from terminal.roles.session import TerminalSession


@dataclass(frozen=True)
class TopUp:
    card_number: str
    result: LoadResult


class Kiosk:
    def __init__(self, session: TerminalSession, host: LoadHost, terminal_id: bytes):
        if len(terminal_id) != 6:
            raise ValueError("kiosk terminal id must be 6 bytes")
        self.session = session
        self.host = host
        self.terminal_id = terminal_id

    def read(self) -> CardSnapshot:
        self.session.card_reader.connect()
        return self.session.run(flows.read_card())

    def top_up(self, amount: int, *, pin: str | None = None) -> TopUp:
        s = self.session
        s.card_reader.connect()
        info = s.run(flows.select())
        result = s.run(flows.load(info, self.terminal_id, amount, s.now(), self.host, pin=pin))
        return TopUp(info.card_number, result)
