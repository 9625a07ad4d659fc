"""Shared helpers for kernel tests: run a flow against a scripted card or a software card."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from terminal.apdu.channel import Channel
from terminal.apdu.flow import Flow, run
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig
from terminal.readers.replay import ReplayReader
from terminal.readers.trace import Trace

h = bytes.fromhex

CONFIG = TerminalConfig(trust_test_keys=True)  # a test terminal: the project's test CA counts
STORE = CaKeyStore.builtin()


def scripted(pairs: Iterable[tuple[str, str]]) -> ReplayReader:
    """A replay reader from (command hex, response hex) pairs (spaces allowed)."""
    exchanges = [(h(c.replace(" ", "")), h(r.replace(" ", ""))) for c, r in pairs]
    return ReplayReader(Trace(b"\x3b\x00", exchanges))


def drive(flow: Flow[Any], reader: Any) -> Any:
    """Run ``flow`` over ``reader`` (anything with transmit) and return its result."""
    return run(flow, {"card": Channel(reader)})
