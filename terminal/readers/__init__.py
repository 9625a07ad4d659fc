"""Reader backends behind one protocol: sim (in-process), replay (trace file), and the real
stacks (pcsc, nfc, serial) added by their own modules."""

from terminal.readers.base import Reader
from terminal.readers.replay import ReplayReader
from terminal.readers.sim import AFTER, BEFORE, SimReader
from terminal.readers.trace import Trace, TraceFormatError, TraceWriter, load_trace, parse_trace
from terminal.readers.tracing import TracingReader

__all__ = [
    "AFTER",
    "BEFORE",
    "Reader",
    "ReplayReader",
    "SimReader",
    "Trace",
    "TraceFormatError",
    "TraceWriter",
    "TracingReader",
    "load_trace",
    "parse_trace",
]
