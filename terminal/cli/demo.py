"""``ykt demo``: the whole life of a few software T-Union cards, end to end, with real crypto.

Issue cards for two issuers, top them up at a kiosk through the host security module,
pay at a merchant POS and a bus validator through software PSAMs, then print balances,
each card's log, a per-terminal summary, and check every TAC and the money balance.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

from terminal.apdu.errors import CardError, YikatongError
from terminal.cli.progress import Progress
from terminal.epurse import flows
from terminal.money import format_fen
from terminal.readers.sim import SimReader
from terminal.roles.kiosk import Kiosk
from terminal.roles.pos import PointOfSale
from terminal.roles.session import TerminalSession

KIOSK_ID = bytes.fromhex("310000000090")
POS_ID = "310000000101"
BUS_ID = "310000000201"
BUS_FARE = 200


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on software cards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cards", type=int, default=6, help="number of cards to issue (default 6)")
    p.add_argument(
        "--taps", type=int, default=24, help="bus taps spread over the cards (default 24)"
    )
    p.add_argument("--seed", type=int, default=978, help="random seed for amounts and order")
    p.add_argument("--quiet", action="store_true", help="only the summary tables")
    p.set_defaults(handler=run)


@dataclass
class TerminalTally:
    role: str
    count: int = 0
    amount: int = 0
    refused: int = 0


@dataclass
class DemoOutcome:
    """What the demo did, for the tables and for tests."""

    cards: list = field(default_factory=list)  # SoftEPurseCard
    opening: dict[str, int] = field(default_factory=dict)
    loads: list = field(default_factory=list)  # LoadResult
    sales: list = field(default_factory=list)  # Sale
    tallies: dict[str, TerminalTally] = field(default_factory=dict)
    tac_failures: int = 0


def run_demo(  # type: ignore[no-untyped-def]
    n_cards: int, taps: int, seed: int, out=print, progress: bool = True, load_host=None
) -> DemoOutcome:
    from gateway.hsm import HostSecurityModule, LocalLoadHost
    from simulators.profiles import DEMO_ISSUERS, demo_card, demo_keyset, demo_psam

    rng = random.Random(seed)
    result = DemoOutcome()
    issuers = list(DEMO_ISSUERS)
    hsm = HostSecurityModule(demo_keyset(DEMO_ISSUERS[name]) for name in issuers)
    host = load_host or LocalLoadHost(hsm)

    out(f"== Issuing {n_cards} software T-Union cards")
    for i in range(n_cards):
        card = demo_card(i + 1, balance=0, issuer=issuers[i % len(issuers)])
        result.cards.append(card)
        result.opening[card.serial.hex()] = card.balance
        out(
            f"   card {card.public_info[10:20].hex().upper()[1:]}  issuer "
            f"{card.issuer_id.hex().upper()}  serial {card.serial.hex().upper()}"
        )

    card_reader = SimReader(name="antenna")
    kiosk = Kiosk(TerminalSession(card_reader), host, KIOSK_ID)
    pos = PointOfSale(TerminalSession(card_reader, SimReader(demo_psam(POS_ID))), name="POS")
    bus = PointOfSale(TerminalSession(card_reader, SimReader(demo_psam(BUS_ID))), name="bus")
    tallies = result.tallies
    tallies[KIOSK_ID.hex().upper()] = TerminalTally("kiosk (load)")
    tallies[pos.session.sam.terminal_id_hex] = TerminalTally("merchant POS")
    tallies[bus.session.sam.terminal_id_hex] = TerminalTally("bus validator")

    out("== Kiosk top-ups (online load: card MAC1 -> HSM MAC2 -> card TAC)")
    for i, card in enumerate(result.cards):
        amount = 5_000 if i != n_cards - 1 else 300  # the last card gets only 3 yuan
        card_reader.insert(card)
        top = kiosk.top_up(amount)
        result.loads.append(top.result)
        t = tallies[KIOSK_ID.hex().upper()]
        t.count += 1
        t.amount += amount
        out(
            f"   {top.card_number}  +{format_fen(amount):>8s}  balance "
            f"{format_fen(top.result.balance_after):>8s}  TAC {top.result.tac.hex().upper()}"
        )

    def charge(terminal: PointOfSale, card, amount: int) -> None:  # type: ignore[no-untyped-def]
        card_reader.insert(card)
        tally = tallies[terminal.session.sam.terminal_id_hex]
        try:
            sale = terminal.charge(amount)
        except (CardError, YikatongError) as exc:
            tally.refused += 1
            out(f"   RED   {terminal.name:<4s} {format_fen(amount):>8s}  {exc}")
            return
        result.sales.append((terminal.name, sale))
        tally.count += 1
        tally.amount += amount
        r = sale.result
        ok = hsm.purchase_tac_valid(
            issuer_id=r.pending.issuer_id,
            card_serial=r.pending.card_serial,
            amount=amount,
            txn_type=r.pending.txn_type,
            terminal_id=r.pending.terminal_id,
            terminal_seq=r.pending.terminal_seq,
            when=r.pending.when,
            tac=r.tac,
        )
        result.tac_failures += not ok
        out(
            f"   GREEN {terminal.name:<4s} {format_fen(amount):>8s}  card "
            f"{sale.card.card_number}  balance {format_fen(r.balance_after):>8s}  "
            f"TSN {r.pending.terminal_seq:<4d} TAC {r.tac.hex().upper()}"
        )

    out("== Merchant POS purchases (INIT -> PSAM MAC1 -> DEBIT -> PSAM MAC2 check)")
    for card in result.cards:
        for _ in range(rng.randint(1, 2)):
            charge(pos, card, rng.choice([350, 800, 1250, 1999]))

    out(f"== Bus validator, flat fare {format_fen(BUS_FARE)}, {taps} taps")
    with Progress(taps, "   taps", enabled=progress and taps >= 200) as bar:
        for _ in range(taps):
            charge(bus, rng.choice(result.cards), BUS_FARE)
            bar.advance()
    card_reader.remove()
    return result


def print_report(result: DemoOutcome, out=print) -> bool:  # type: ignore[no-untyped-def]
    """Balances, logs, terminal summary and checks; True when everything balances."""
    out("\n== Card balances and logs (newest first)")
    for card in result.cards:
        reader = SimReader(card)
        session = TerminalSession(reader)
        reader.connect()
        snap = session.run(flows.read_card())
        out(f"   {snap.info.card_number}  balance {format_fen(snap.balance)}")
        for e in snap.log:
            out(
                f"      #{e.atc:<3d} {e.when:%Y-%m-%d %H:%M:%S}  {e.type_name:<12s} "
                f"{format_fen(e.signed_amount):>9s}  terminal {e.terminal_id.hex().upper()}"
            )

    out("\n== Per-terminal summary")
    out(f"   {'terminal':<14s} {'role':<15s} {'txns':>5s} {'refused':>8s} {'amount':>11s}")
    for tid, t in result.tallies.items():
        out(
            f"   {tid:<14s} {t.role:<15s} {t.count:>5d} {t.refused:>8d} {format_fen(t.amount):>11s}"
        )

    loaded = sum(r.request.amount for r in result.loads)
    spent = sum(s.result.pending.amount for _, s in result.sales)
    opening = sum(result.opening.values())
    closing = sum(c.balance for c in result.cards)
    balanced = opening + loaded - spent == closing
    out("\n== Checks")
    out(
        f"   opening {format_fen(opening)} + loads {format_fen(loaded)} - purchases "
        f"{format_fen(spent)} = {format_fen(opening + loaded - spent)}; cards hold "
        f"{format_fen(closing)}: {'BALANCED' if balanced else 'MISMATCH'}"
    )
    out(
        f"   purchase TACs verified by the host security module: "
        f"{len(result.sales) - result.tac_failures}/{len(result.sales)}"
    )
    return balanced and result.tac_failures == 0


def run(args: argparse.Namespace) -> int:
    from terminal.cli.demo_clearing import run_with_clearing  # gateway and clearing (issue 4)

    return run_with_clearing(args, run_demo, print_report)
