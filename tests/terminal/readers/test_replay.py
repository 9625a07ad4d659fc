"""The replay reader's matching rules and the trace file format."""

from pathlib import Path

import pytest

from terminal.readers import ReplayReader, TraceFormatError, parse_trace
from terminal.readers.spec import ReaderSpecError, open_reader

H = bytes.fromhex

TRACE = """\
# a recorded session
ATR: 3B 88 80 01
00A4040008A00000063201010500 : 6F009000
805C000204 : 000003E89000
805C000204 : 000003DE9000   # second GET BALANCE answers differently
00B2010C : 6A83
"""


def reader() -> ReplayReader:
    return ReplayReader(parse_trace(TRACE))


def test_atr_and_comments() -> None:
    r = reader()
    assert r.connect() == H("3B888001")
    assert len(r.trace.exchanges) == 4


def test_lines_used_in_order_then_last_repeats() -> None:
    r = reader()
    assert r.transmit(H("805C000204")) == H("000003E89000")
    assert r.transmit(H("805C000204")) == H("000003DE9000")
    assert r.transmit(H("805C000204")) == H("000003DE9000")


def test_trailing_le_byte_is_ignored_for_matching() -> None:
    r = reader()
    assert r.transmit(H("00A4040008A000000632010105")) == H("6F009000")  # without Le
    assert r.transmit(H("00B2010C00")) == H("6A83")  # with an Le the trace lacks
    r2 = reader()
    assert r2.transmit(H("805C000200")) == H("000003E89000")  # a different Le value


def test_unknown_command_gets_6d00() -> None:
    assert reader().transmit(H("80CA9F7900")) == H("6D00")
    assert reader().transmit(H("805C000104")) == H("6D00")


@pytest.mark.parametrize("bad", ["zz : 9000", "00A4 9000", "00A4 : 90", "ATR: 3G"])
def test_bad_trace_lines_rejected(bad: str) -> None:
    with pytest.raises(TraceFormatError, match="line 1"):
        parse_trace(bad)


def test_spec_opens_replay(tmp_path: Path) -> None:
    f = tmp_path / "t.trace"
    f.write_text(TRACE)
    r = open_reader(f"replay:{f}")
    assert isinstance(r, ReplayReader) and r.name == f"replay:{f}"
    with pytest.raises(ReaderSpecError, match="known kinds"):
        open_reader("bogus:1")
    with pytest.raises(ReaderSpecError):
        open_reader("replay:")
