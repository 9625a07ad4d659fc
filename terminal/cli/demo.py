"""``ykt demo``: a day in the life of a few software T-Union cards, end to end, real crypto.

Cards for two issuers are personalised; a kiosk tops them up online through the host
security module; a merchant POS and a bus and metro validators (fares from the demo fare
file, composite purchases writing trip records) debit them through software PSAMs, every
debit journaled before and after; one rider pulls the card away mid-payment and the next
tap settles it. A new card is issued, a subsidy roster for its holder imported,
approved and picked up at the kiosk (demo_subsidy.py). Then balances, logs, a
per-terminal summary, and the checks: every TAC verifies and the money balances to the
fen.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from terminal.apdu.errors import YikatongError
from terminal.cli.progress import Progress
from terminal.epurse import flows
from terminal.epurse.commands import Ins
from terminal.epurse.model import CardSnapshot
from terminal.fares import Mode
from terminal.hotlist import Hotlist
from terminal.journal import SETTLED, SUSPECT, Journal, JournalRow
from terminal.money import format_fen
from terminal.readers.sim import AFTER, SimReader
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator
from terminal.runtime.assembly import Parts, assemble
from terminal.runtime.config import TerminalConfig
from terminal.text import arg_int
from terminal.words import sale_refusal, say, tap_line, txn_words

KIOSK_ID = bytes.fromhex("310000000090")
POS_ID = "310000000101"
BUS_ID = "310000000201"
STATIONS = ["0101", "0102", "0103", "0104", "0105"]
LOW_BALANCE = 1_000  # a rider whose purse holds less than this tops up before the next ride
TOP_UP = 5_000

Out = Callable[[str], None]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on software cards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cards", type=arg_int, default=6, help="number of cards to issue (default 6)")
    p.add_argument(
        "--taps", type=arg_int, default=30, help="bus and metro taps through the day (default 30)"
    )
    p.add_argument("--seed", type=arg_int, default=978, help="random seed for riders and amounts")
    p.add_argument(
        "--workdir",
        metavar="DIR",
        help="keep journals here (default: a temporary directory, removed after)",
    )
    p.add_argument("--quiet", action="store_true", help="only the summary tables")
    p.set_defaults(handler=run)


class DemoClock:
    """Simulated wall clock: starts now and advances as riders move."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@dataclass
class Outcome:
    """What the demo did, for the report and for tests."""

    cards: list[Any] = field(default_factory=list)
    opening: dict[bytes, int] = field(default_factory=dict)
    loads: list[Any] = field(default_factory=list)
    journals: dict[str, Journal] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # terminal id -> role
    refused: dict[str, int] = field(default_factory=dict)
    recovered: int = 0
    hsm: Any = None

    def rows(self) -> list[JournalRow]:
        return [
            r for j in self.journals.values() for r in j.rows() if r.state in (SETTLED, SUSPECT)
        ]


def run_demo(
    n_cards: int,
    taps: int,
    seed: int,
    workdir: Path,
    out: Out = print,
    progress: bool = False,
    *,
    load_host: Any,
) -> Outcome:
    """Run the day; ``load_host`` is the kiosk's host (the gateway's load endpoints)."""
    from gateway.hsm import HostSecurityModule
    from simulators.profiles import DEMO_ISSUERS, demo_card, demo_keyset, demo_psam
    from terminal.cli.demo_modes import run_modes_demo
    from terminal.cli.demo_qr import run_qr_demo

    rng = random.Random(seed)
    clock = DemoClock(datetime.now().replace(microsecond=0))  # loads use the host clock
    result = Outcome()
    issuers = list(DEMO_ISSUERS)
    result.hsm = HostSecurityModule((demo_keyset(DEMO_ISSUERS[n]) for n in issuers), clock=clock)

    out(f"== Issuing {n_cards} software T-Union cards")
    kinds = {1: "ordinary", 2: "student", 3: "elderly"}
    for i in range(n_cards):
        kind = 3 if i == 1 else 2 if i == 2 else 1
        card = demo_card(i + 1, balance=0, issuer=issuers[i % len(issuers)], card_kind=kind)
        result.cards.append(card)
        result.opening[card.serial] = card.balance
        out(f"   card {card_number(card)}  issuer {card.issuer_id.hex().upper()}  {kinds[kind]}")

    antenna = SimReader(name="antenna")
    hotlist = Hotlist()

    def journal(name: str) -> Journal:
        j = Journal(workdir / f"{name}.db", clock=clock)
        result.journals[name] = j
        return j

    def device(
        tid: str, journal: Journal, role: str, load_host: Any = None, **settings: Any
    ) -> Any:
        """The role of terminal ``tid`` as the assembly builds it from its configuration, on
        the demo's antenna, clock and hotlist, a software PSAM of ``tid`` and ``journal``."""
        config = TerminalConfig(role=role, journal=str(journal.path), terminal_id=tid, **settings)
        parts = Parts(
            card_reader=antenna,
            sam_reader=SimReader(demo_psam(tid), name=f"psam {tid}"),
            journal=journal,
            hotlist=hotlist,
            clock=clock,
            load_host=load_host,
        )
        return assemble(config, parts=parts).role

    kiosk = device(KIOSK_ID.hex().upper(), journal("kiosk"), "kiosk", load_host=load_host)
    pos = device(POS_ID, journal("pos"), "pos")
    metro_journal = journal("metro-station")
    bus = device(BUS_ID, journal("bus"), Mode.BUS.value, line="0007")
    result.roles.update(
        {
            KIOSK_ID.hex().upper(): "kiosk (online load)",
            POS_ID: "merchant POS",
            BUS_ID: "bus validator",
        }
    )
    gates: dict[str, tuple[Validator, Validator]] = {}
    for n, code in enumerate(STATIONS, 1):
        entry_id, exit_id = f"3100000003{n:02d}", f"3100000004{n:02d}"
        gates[code] = (
            device(entry_id, metro_journal, Mode.METRO_ENTRY.value, station=code),
            device(exit_id, metro_journal, Mode.METRO_EXIT.value, station=code),
        )
        result.roles[entry_id] = f"metro entry {code}"
        result.roles[exit_id] = f"metro exit {code}"

    def top_up(card: Any, amount: int) -> None:
        antenna.insert(card)
        top = kiosk.top_up(amount)
        result.loads.append(top.result)
        out(
            f"   {top.card_number}  {say('txn.EP_LOAD')} {format_fen(amount):>8s}; "
            f"{say('tap.balance', balance=format_fen(top.result.balance_after))}"
        )
        clock.advance(1)

    out("== Kiosk top-ups (online, through the card centre)")
    for i, card in enumerate(result.cards):
        top_up(card, 5_000 if i != n_cards - 1 else 300)

    out("== Merchant POS sales (each journaled before and after the card pays)")
    for card in result.cards:
        antenna.insert(card)
        amount = rng.choice([350, 800, 1250, 1999])
        try:
            sale = pos.charge(amount)
        except YikatongError as exc:
            result.refused[POS_ID] = result.refused.get(POS_ID, 0) + 1
            logging.getLogger(__name__).info("POS sale refused: %s", exc)
            out(f"   {say('tap.red')} {format_fen(amount):>8s}  {sale_refusal(exc)}")
            continue
        assert sale.ep is not None  # the POS pays from the EP only (pay = "ep")
        out(
            f"   {say('tap.green')} {format_fen(amount):>8s}  card {sale.ep.card.card_number}  "
            f"{say('tap.balance', balance=format_fen(sale.balance_after))}"
        )
        clock.advance(3)

    out(
        f"== Bus line 7 and metro, {taps} taps (demo fare file; composite purchase with "
        "trip records)"
    )
    inside: dict[bytes, str] = {}

    def tap(card: Any, validator: Validator, label: str) -> None:
        if card.balance < LOW_BALANCE:  # riders top up at the kiosk when the purse runs low
            out(f"   {'kiosk':<11s} balance low, the rider tops up")
            top_up(card, TOP_UP)
        antenna.insert(card)
        r = validator.tap()
        if not r.green:
            tid = validator.session.sam.terminal_id_hex
            result.refused[tid] = result.refused.get(tid, 0) + 1
        result.recovered += len(r.recovered)
        out(f"   {label:<11s} {tap_line(r, str(validator.config.mode))}")

    with Progress(taps, "   taps", enabled=progress) as bar:
        for n in range(taps):
            card = rng.choice(result.cards)
            if card.serial in inside:
                entry = inside.pop(card.serial)
                code = rng.choice([s for s in STATIONS if s != entry])
                tap(card, gates[code][1], f"exit {code}")
            elif rng.random() < 0.5:
                tap(card, bus, "bus 7")
            else:
                code = rng.choice(STATIONS)
                tap(card, gates[code][0], f"entry {code}")
                inside[card.serial] = code
            if n == taps // 2:
                rider = result.cards[0]
                out("   -- a rider pulls the card away just as DEBIT is sent; the answer is lost")
                antenna.tear_at_ins(Ins.DEBIT_FOR_PURCHASE, AFTER)
                tap(rider, bus, "bus 7")
                antenna.tear_when(None)
                clock.advance(0.1)
                out("   -- the rider taps again: the journal's open row is settled, not re-charged")
                tap(rider, bus, "bus 7")
            clock.advance(rng.uniform(1, 9))
            bar.advance()
    run_modes_demo(result, device, journal("modes"), tap, clock.advance, out)
    run_qr_demo(result, bus, clock.advance, out)
    antenna.remove()
    return result


def card_number(card: Any) -> str:
    """A software card's printed number, read as a terminal reads it."""
    return read_card(card).info.card_number


def read_card(card: Any) -> CardSnapshot:
    """What a software card shows a reader (number, balance, log): read for the report,
    outside any device, through a session without a PSAM."""
    reader = SimReader(card)
    reader.connect()
    return TerminalSession(reader).run(flows.read_card())


def print_report(result: Outcome, out: Out = print) -> bool:
    """Balances, logs, terminal summary and checks; True when everything balances."""
    out("\n== Card balances and logs (newest first)")
    for card in result.cards:
        snap = read_card(card)
        out(f"   {snap.info.card_number}  balance {format_fen(snap.balance)}")
        for n, e in enumerate(snap.log, 1):
            tid = e.terminal_id.hex().upper()
            out(
                f"      {n:>2d}. {e.when:%H:%M:%S}  {txn_words(e.txn_type):<10s} "
                f"{format_fen(e.signed_amount):>9s}  at {result.roles.get(tid, tid)}"
            )

    rows = result.rows()
    tally: dict[str, list[int]] = {tid: [0, 0] for tid in result.roles}
    kiosk = KIOSK_ID.hex().upper()
    for load in result.loads:
        tally[kiosk][0] += 1
        tally[kiosk][1] += load.request.amount
    for r in rows:
        t = tally.setdefault(r.terminal_id, [0, 0])
        t[0] += 1
        t[1] += r.amount
    out("\n== Per-terminal summary (from the journals)")
    out(f"   {'terminal':<14s} {'role':<20s} {'txns':>5s} {'refused':>8s} {'amount':>11s}")
    for tid, (count, amount) in tally.items():
        out(
            f"   {tid:<14s} {result.roles.get(tid, '?'):<20s} {count:>5d} "
            f"{result.refused.get(tid, 0):>8d} {format_fen(amount):>11s}"
        )

    loaded = sum(r.request.amount for r in result.loads)
    spent = sum(r.amount for r in rows)
    opening = sum(result.opening.values())
    closing = sum(c.balance for c in result.cards)
    balanced = opening + loaded - spent == closing
    per_card = all(
        result.opening[c.serial]
        + sum(ld.request.amount for ld in result.loads if ld.request.card_serial == c.serial)
        - sum(r.amount for r in rows if r.card_serial == c.serial.hex().upper())
        == c.balance
        for c in result.cards
    )
    tac_ok = sum(
        result.hsm.purchase_tac_valid(
            issuer_id=bytes.fromhex(r.issuer_id),
            card_serial=bytes.fromhex(r.card_serial),
            amount=r.amount,
            txn_type=r.txn_type,
            terminal_id=bytes.fromhex(r.terminal_id),
            terminal_seq=r.terminal_seq,
            when=r.txn_time,
            tac=bytes.fromhex(r.tac or "00"),
        )
        for r in rows
    )
    open_rows = sum(len(j.open_rows()) for j in result.journals.values())
    out("\n== Checks")
    out(
        f"   opening {format_fen(opening)} + loads {format_fen(loaded)} - journaled debits "
        f"{format_fen(spent)} = {format_fen(opening + loaded - spent)}; cards hold "
        f"{format_fen(closing)}: {'BALANCED' if balanced and per_card else 'MISMATCH'}"
    )
    out(f"   purchase TACs verified by the host security module: {tac_ok}/{len(rows)}")
    out(f"   torn debits recovered: {result.recovered}; journal rows still open: {open_rows}")
    return balanced and per_card and tac_ok == len(rows) and open_rows == 0


def run(args: argparse.Namespace) -> int:
    from terminal.cli.demo_campus import run_campus_demo
    from terminal.cli.demo_clearing import ClearingPath, clear_outcome
    from terminal.cli.demo_subsidy import run_subsidy_demo

    out: Out = _quiet if args.quiet else print
    if args.log_level == "warning":  # the demo narrates the torn tap itself
        logging.getLogger("terminal.roles").setLevel(logging.ERROR)
    tmp = None if args.workdir else Path(tempfile.mkdtemp(prefix="ykt-demo-"))
    workdir = Path(args.workdir) if args.workdir else tmp
    assert workdir is not None
    (workdir / "servers").mkdir(parents=True, exist_ok=True)
    try:
        with ClearingPath(str(workdir / "servers")) as path:
            result = run_demo(
                args.cards,
                args.taps,
                args.seed,
                workdir,
                out=out,
                progress=sys.stderr.isatty() or args.taps >= 200,
                load_host=path.load_host(KIOSK_ID.hex().upper()),
            )
            subsidy_ok = run_subsidy_demo(path, result, KIOSK_ID, out)
            subsidy_ok = run_campus_demo(path, workdir, out) and subsidy_ok
            ok = print_report(result) and subsidy_ok
            ok = clear_outcome(path, result) and ok
            for j in result.journals.values():
                j.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def _quiet(_line: str) -> None:
    return None
