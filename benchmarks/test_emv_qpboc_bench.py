"""A full qPBOC read with fDDA: PPSE, selection, GPO (the card signs), records, fDDA.

Three figures from the same run:

* ``card+host``  - the software card in process: card crypto (AC, RSA signature) plus the
                   kernel, what a demo or a test pays;
* ``host``       - the kernel alone, replayed from the card's precomputed responses: the
                   terminal's own cost per tap, RSA recovery and hash checks included
                   (target: under 5 ms);
* ``exchange``   - baseline: the same APDU exchange replayed with no kernel work at all
                   (build commands, hand back responses).

Run with ``make bench``.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from simulators.emv_profiles import emv_card
from terminal.apdu.channel import Channel
from terminal.apdu.flow import Flow, card, replay, run
from terminal.apdu.response import ResponseAPDU
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig, Transaction
from terminal.emv.kernel import ApplicationData, process_application
from terminal.emv.selection import discover, final_selection
from terminal.readers.sim import SimReader

NOW = datetime(2026, 11, 28, 8, 30, 15)
CONFIG = TerminalConfig(trust_test_keys=True, unpredictable_number=bytes.fromhex("11223344"))
STORE = CaKeyStore.builtin()


def qpboc_read() -> Flow[ApplicationData]:
    found = yield from discover(CONFIG)
    cand, fci = yield from final_selection(found.candidates, CONFIG)
    txn = Transaction(amount=0, when=NOW, online_required=True)
    return (yield from process_application(cand.aid, fci, CONFIG, STORE, txn, now=NOW))


def recorded_exchange() -> tuple[list, list[ResponseAPDU]]:  # type: ignore[type-arg]
    steps, responses = [], []

    def observe(step, response) -> None:  # type: ignore[no-untyped-def]
        steps.append(step)
        responses.append(response)

    reader = SimReader(emv_card(1))
    app = run(qpboc_read(), {"card": Channel(reader)}, observe)
    assert app.oda.passed and app.oda.method.value == "fDDA"
    return steps, responses


STEPS, RESPONSES = recorded_exchange()


@pytest.mark.benchmark(group="qpboc-read-fdda")
def test_card_and_host(benchmark) -> None:  # type: ignore[no-untyped-def]
    channels = {"card": Channel(SimReader(emv_card(1)))}
    app = benchmark(lambda: run(qpboc_read(), channels))
    assert app.oda.passed


@pytest.mark.benchmark(group="qpboc-read-fdda")
def test_host_side_kernel(benchmark) -> None:  # type: ignore[no-untyped-def]
    app = benchmark(lambda: replay(qpboc_read(), RESPONSES))
    assert app.oda.passed


def _exchange_only() -> Flow[None]:
    for step in STEPS:
        yield card(step.command, check=step.check)


@pytest.mark.benchmark(group="qpboc-read-fdda")
def test_exchange_baseline(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(lambda: replay(_exchange_only(), RESPONSES))
