"""A channel sends CommandAPDUs over any raw transport and handles 61xx / 6Cxx exactly once.

Readers move bytes; this is the only place that knows about GET RESPONSE and Le
re-issue, so no backend may do it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import MalformedResponse, error_for
from terminal.apdu.iso import get_response
from terminal.apdu.response import ResponseAPDU
from terminal.apdu.status import SW

MAX_GET_RESPONSE = 256  # 256 x 256 bytes: more than any card sends; stops a looping card
MAX_LE_REISSUE = 3
_SW1_WRONG_LE = SW.WRONG_LE_ANY >> 8  # 6Cxx
_SW1_MORE_DATA = SW.MORE_DATA_ANY >> 8  # 61xx
_OK = SW.OK.to_bytes(2, "big")
_OK_SW1, _OK_SW2 = _OK


class Transport(Protocol):
    def transmit(self, apdu: bytes) -> bytes: ...


def check(response: ResponseAPDU, command: CommandAPDU | None = None) -> ResponseAPDU:
    """Return the response when its SW is 9000, else raise the SW's typed exception."""
    if not response.ok:
        raise error_for(response.sw, command)
    return response


class Channel:
    """One logical channel to a card or SAM over a raw byte transport."""

    def __init__(self, transport: Transport | Callable[[bytes], bytes], *, name: str = "card"):
        self._transmit = transport if callable(transport) else transport.transmit
        self.name = name

    def send(self, command: CommandAPDU) -> ResponseAPDU:
        """Exchange one command, following 6Cxx and 61xx; the final SW is not checked."""
        return self._follow(command, self._raw(command))

    def _follow(self, command: CommandAPDU, response: ResponseAPDU) -> ResponseAPDU:
        """The final answer to ``command`` whose first answer was ``response``."""
        reissues = 0
        while response.sw1 == _SW1_WRONG_LE:
            if reissues == MAX_LE_REISSUE:
                raise MalformedResponse(
                    f"card keeps answering 6Cxx to {command}",
                    raw=response.encode(),
                    command=command,
                )
            reissues += 1
            command = command.with_le(response.sw2 or 256)
            response = self._raw(command)
        if response.sw1 != _SW1_MORE_DATA:
            return response
        data = bytearray(response.data)
        for _ in range(MAX_GET_RESPONSE):
            get = get_response(command.cla, response.sw2 or 256)
            response = self._raw(get)
            if response.sw1 == _SW1_WRONG_LE:
                response = self._raw(get.with_le(response.sw2 or 256))
            data += response.data
            if response.sw1 != _SW1_MORE_DATA:
                return ResponseAPDU(bytes(data), response.sw1, response.sw2)
        raise MalformedResponse(
            f"more than {MAX_GET_RESPONSE} GET RESPONSE rounds for {command}",
            raw=bytes(data),
            command=command,
        )

    def exchange(self, command: CommandAPDU) -> ResponseAPDU:
        """Send and require 9000, raising the typed exception for any other SW. A 9000
        answer (every APDU of a purchase) is taken in one step; any other goes through
        ``send`` and its 6Cxx/61xx handling as it came."""
        raw = self._transmit(command.encode())
        if type(raw) is bytes and raw[-2:] == _OK:
            return ResponseAPDU(raw[:-2], _OK_SW1, _OK_SW2)
        return check(self._follow(command, self._decode(raw, command)), command)

    def _raw(self, command: CommandAPDU) -> ResponseAPDU:
        return self._decode(self._transmit(command.encode()), command)

    @staticmethod
    def _decode(raw: bytes, command: CommandAPDU) -> ResponseAPDU:
        try:
            return ResponseAPDU.decode(raw)
        except MalformedResponse as exc:
            raise MalformedResponse(str(exc), raw=bytes(raw), command=command) from None
