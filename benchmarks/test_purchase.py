"""Host-side cost of one purchase.

(a) one full purchase per iteration: card and PSAM in process, all crypto on both sides;
(b) baseline, same run: the identical APDU exchange replayed to the flow from precomputed
responses - the terminal's own work alone. Target: host side under 1 ms (issue 2).
(c) the terminal-side flow cost of a whole purchase, SELECT (FCI, file 0x15) included,
replayed with no I/O - the figure the PC/SC benchmark calls "flows alone". Goal: median
<= 25 us (issue 15).
"""

from __future__ import annotations

from typing import Any

from benchmarks.baseline import measure, report
from benchmarks.goals import goal
from simulators.profiles import demo_card, demo_psam
from terminal.apdu.flow import replay, run
from terminal.epurse import flows
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession


def _setup(clock: Any) -> tuple[TerminalSession, Any]:
    card = demo_card(1, balance=10**8)
    s = TerminalSession(SimReader(card), SimReader(demo_psam()), clock=clock)
    s.start()
    s.card_reader.connect()
    return s, s.run(flows.select())


def test_full_purchase_in_process(benchmark, clock) -> None:  # type: ignore[no-untyped-def]
    session, info = _setup(clock)
    responses: list[Any] = []
    run(
        flows.purchase(info, session.sam, 1, session.now()),
        session.channels,
        observer=lambda step, r: responses.append(r),
    )
    baseline = measure(
        lambda: replay(flows.purchase(info, session.sam, 1, session.now()), responses)
    )
    selected: list[Any] = []
    run(flows.select(), session.channels, observer=lambda step, r: selected.append(r))
    when = session.now()

    def select_and_purchase() -> None:
        card_info = replay(flows.select(), selected)
        replay(flows.purchase(card_info, session.sam, 1, when), responses)

    whole = measure(select_and_purchase, rounds=5000, warmup=500)
    benchmark(lambda: session.run(flows.purchase(info, session.sam, 1, session.now())))
    report(benchmark, "replayed_flow", baseline)
    benchmark.extra_info["select_and_purchase_replayed_median_us"] = round(whole["median_us"], 2)
    goal(
        "flows: select + purchase replayed, no I/O",
        whole["median_us"],
        25.0,
        "us",
        inclusive=True,
        note=f"purchase alone {baseline['median_us']:.1f} us",
    )
    benchmark.extra_info["host_side_p99_us"] = round(baseline["p99_us"], 2)
    assert len(responses) == 4
