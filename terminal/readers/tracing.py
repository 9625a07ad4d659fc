"""A reader wrapper that records every exchange in the trace format (``--trace FILE``)."""

from __future__ import annotations

from terminal.apdu.errors import TransportError
from terminal.readers.base import Reader
from terminal.readers.trace import TraceWriter


class TracingReader:
    """Passes everything through to ``inner`` and writes each exchange to ``writer``."""

    def __init__(self, inner: Reader, writer: TraceWriter):
        self.inner = inner
        self.writer = writer
        self.name = inner.name

    def connect(self) -> bytes:
        atr = self.inner.connect()
        self.writer.atr(atr)
        return atr

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, apdu: bytes) -> bytes:
        try:
            response = self.inner.transmit(apdu)
        except TransportError as exc:
            self.writer.comment(f"{apdu.hex().upper()} -> {type(exc).__name__}: {exc}")
            raise
        self.writer.exchange(apdu, response)
        return response

    def disconnect(self) -> None:
        self.inner.disconnect()

    def card_present(self) -> bool:
        return self.inner.card_present()

    def wait_for_card(self, timeout: float | None = None) -> bool:
        return self.inner.wait_for_card(timeout)

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        return self.inner.wait_for_removal(timeout)
