"""The in-process simulator reader, its fault injection, and trace recording."""

import io

import pytest

from simulators.profiles import demo_card
from terminal.apdu.errors import CardRemoved, NoCard
from terminal.readers import AFTER, BEFORE, ReplayReader, SimReader, TraceWriter, TracingReader
from terminal.readers.trace import parse_trace

H = bytes.fromhex
BALANCE = H("805C000204")
SELECT = H("00A4040008A00000063201010500")


def test_no_card() -> None:
    r = SimReader()
    assert not r.card_present()
    with pytest.raises(NoCard):
        r.transmit(BALANCE)
    assert r.wait_for_card(timeout=0.01) is False


def test_tear_before_leaves_card_untouched() -> None:
    card = demo_card(1, balance=500)
    r = SimReader(card)
    r.transmit(SELECT)
    r.tear_at(0, BEFORE)
    with pytest.raises(CardRemoved, match="before"):
        r.transmit(BALANCE)
    assert not r.card_present()
    assert r.wait_for_removal(timeout=0) is True


def test_tear_after_card_acted() -> None:
    card = demo_card(1, balance=500)
    r = SimReader(card)
    r.tear_at(0, AFTER)
    with pytest.raises(CardRemoved, match="after"):
        r.transmit(SELECT)
    r.insert(card)
    r.connect()
    assert r.transmit(BALANCE)[-2:] == H("6985")  # reset lost the selection


def test_tear_at_ins_waits_for_that_command_and_fires_once() -> None:
    card = demo_card(1, balance=500)
    r = SimReader(card)
    r.tear_at_ins(BALANCE[1], BEFORE)
    assert r.transmit(SELECT)[-2:] == H("9000")  # another INS passes
    with pytest.raises(CardRemoved, match="before 805C"):
        r.transmit(BALANCE)
    r.insert(card)
    r.transmit(SELECT)
    assert r.transmit(BALANCE)[-2:] == H("9000")  # one shot: the rule is gone


def test_tracing_round_trips_through_replay() -> None:
    buf = io.StringIO()
    writer = TraceWriter(buf)
    r = TracingReader(SimReader(demo_card(1, balance=1234)), writer)
    atr = r.connect()
    live = [r.transmit(SELECT), r.transmit(BALANCE)]
    trace = parse_trace(buf.getvalue())
    replay = ReplayReader(trace)
    assert replay.connect() == atr
    assert [replay.transmit(SELECT), replay.transmit(BALANCE)] == live
    assert live[1] == (1234).to_bytes(4, "big") + H("9000")


def test_tracing_records_transport_errors_as_comments() -> None:
    buf = io.StringIO()
    sim = SimReader(demo_card(1))
    r = TracingReader(sim, TraceWriter(buf))
    sim.tear_at(0, BEFORE)
    with pytest.raises(CardRemoved):
        r.transmit(SELECT)
    assert "CardRemoved" in buf.getvalue()
    assert parse_trace(buf.getvalue()).exchanges == []
