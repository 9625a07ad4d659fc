"""The demo's ride-code part (一码通城): a rider without a card boards bus 7 with a code from
the software ride-code app; the same code shown again and a code altered after the platform
signed it are refused with their reasons. The accepted ride is journaled on the bus's
journal, uploaded with the bus's purchases and cleared under its issuing platform."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from terminal.journal.journal import Journal
from terminal.money import format_fen
from terminal.qr import code as layout
from terminal.qr.checks import IssuerRule, QrPolicy, RootKey
from terminal.qr.ride import QrGate
from terminal.roles.validator import TapResult, Validator
from terminal.words import qr_refusal, say

Out = Callable[[str], None]

RIDER = 0xA001  # the rider's account number at the demo platform


def demo_ride_app() -> Any:
    """The demo's software ride-code app: its root CA and one issuing platform (keys derived
    from names, so the clearing service built apart from the day knows the same keys)."""
    from simulators.qr_app import RideCodeApp

    app = RideCodeApp()
    app.issuer()
    return app


def demo_trust(app: Any) -> tuple[dict[int, RootKey], tuple[IssuerRule, ...]]:
    """The ride-code app's root keys by index and its issuers' whitelist entries: what the
    bus validator and the clearing service are given."""
    return {app.root.index: app.root.root_key}, tuple(i.rule for i in app.issuers.values())


def run_qr_demo(result: Any, bus: Validator, advance: Callable[[float], None], out: Out) -> None:
    """Ride codes on the day's bus validator: one accepted, a replay and a tampered code
    refused; refusals count against the bus like a card's."""
    app = demo_ride_app()
    roots, issuers = demo_trust(app)
    policy = QrPolicy(issuers={r.issuer_code: r for r in issuers})
    bus.qr = QrGate(bus.journal, roots, policy, bus.session.sam.terminal_id)
    tid = bus.session.sam.terminal_id_hex

    def scan(raw: bytes) -> None:
        r = bus.scan(raw)
        if not r.green:
            result.refused[tid] = result.refused.get(tid, 0) + 1
        out(f"   {'bus 7 code':<11s} {qr_line(r, bus.journal)}")

    out("== Ride codes (一码通城): a rider boards bus 7 with the phone's code, no card")
    advance(2)
    raw = app.code(bus.session.now(), account=RIDER)
    scan(raw)
    advance(0.5)
    out("   -- the same code shown again (a screenshot passed on)")
    scan(raw)
    advance(0.5)
    out("   -- a code whose per-ride limit was raised after the platform signed it")
    fresh = app.code(bus.session.now(), account=RIDER + 1)
    at = layout.RIDE_LIMIT_OFFSET
    scan(fresh[:at] + (999_999).to_bytes(3, "big") + fresh[at + 3 :])


def qr_line(r: TapResult, journal: Journal) -> str:
    """One operator line for a scanned code: green with the fare and the platform charged
    (from the journal's row), or red with the refusal's words."""
    if r.green:
        row = journal.last_qr_ride(r.card_number or "")
        platform = row["platform_code"] if row is not None else "?"
        words = say("qr.paid", fare=format_fen(r.fare), platform=platform)
    else:
        words = qr_refusal(r.reason, r.message.removeprefix("ride code refused: "))
    shown = r.card_number or "-"
    return (
        f"{say('tap.green' if r.green else 'tap.red')} {shown:<20s} {words}  {r.elapsed_ms:.1f} ms"
    )


def qr_cleared(settlement: Mapping[str, Any], journals: Iterable[Journal], out: Out) -> bool:
    """The rides the journals hold against what clearing charged the platforms, to the fen."""
    rows = [r for j in journals for r in j.qr_rows()]
    charged = {
        i["issuer_id"]: (i["qr_rides"], i["qr_amount"])
        for i in settlement["by_issuer"]
        if i.get("qr_rides")
    }
    for platform, (n, amount) in charged.items():
        out(f"   ride codes charged to platform {platform}: {n} ride(s) {format_fen(amount)}")
    journaled = (len(rows), sum(r.amount for r in rows))
    cleared = (sum(n for n, _ in charged.values()), sum(a for _, a in charged.values()))
    ok = journaled == cleared
    out(
        f"   ride codes journaled {journaled[0]} ({format_fen(journaled[1])}), cleared "
        f"{cleared[0]} ({format_fen(cleared[1])}): {'MATCHED' if ok else 'MISMATCH'}"
    )
    return ok
