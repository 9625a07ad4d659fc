"""``ykt validator``: run a bus or metro validator loop, one line per tap."""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import threading
from pathlib import Path

from terminal.cli.common import add_sam_options, add_token_options, open_session
from terminal.fares import DEMO_FARES, Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.money import format_fen
from terminal.readers.sim import SimReader
from terminal.roles.loop import TapLoop
from terminal.roles.validator import Validator, ValidatorConfig
from terminal.text import arg_code, arg_int, hex_bytes

OUT_OF_SERVICE = 3  # exit status: the journal failed, the validator stopped taking cards

DESCRIPTION = """\
Run a validator: wait for a card, compute the fare from the fare file, debit the purse
(composite purchase with trip records), print one line per tap (green/red, fare, balance,
time taken), and carry on after any card's failure. Every debit is journaled before DEBIT
and after; a card pulled away mid-payment is settled or voided at its next tap.

With the default sim reader, --cards software cards (or the --card files) are tapped in
random order --taps times. With a real reader (pcsc:..., nfc:...) it serves taps until
Ctrl-C.

With --gateway URL --token T the hotlist (挂失) is synced from the gateway's deltas before
the first tap and every --hotlist-sync seconds; a card reported lost is refused and
blocked from the first tap after the sync that brought it. Without the gateway the
validator works offline with the hotlist it has.

The journal is checked at start and in idle time: removed, replaced or damaged (or a
write to it failing), the validator prints RED "out of service" with the reason, stops
taking cards and exits with status 3.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "validator",
        help="run a bus/metro validator loop",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--mode", choices=[m.value for m in Mode], default="bus")
    p.add_argument(
        "--fares",
        default=str(DEMO_FARES),
        metavar="FILE",
        help="TOML fare file (default: the demo fares)",
    )
    p.add_argument(
        "--station", type=arg_code, default="0101", help="this gate's station code (4 hex digits)"
    )
    p.add_argument("--line", type=arg_code, default="0001", help="line code (2 bytes hex)")
    p.add_argument("--journal", default="validator-journal.db", metavar="PATH")
    p.add_argument(
        "--journal-check",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="check the journal file for damage this often, in idle time (default 10)",
    )
    p.add_argument(
        "--hotlist",
        default=None,
        metavar="PATH",
        help="hotlist database (default: in memory, empty)",
    )
    p.add_argument("--reader", default="sim", metavar="SPEC", help="card reader (default sim)")
    add_sam_options(p, terminal_id="310000000201")
    p.add_argument(
        "--card",
        action="append",
        metavar="FILE",
        help="software card file to tap (sim reader; repeatable)",
    )
    p.add_argument("--cards", type=arg_int, default=5, help="demo cards to tap (sim reader)")
    p.add_argument("--taps", type=arg_int, default=10, help="taps to simulate (sim reader)")
    p.add_argument("--seed", type=arg_int, default=1)
    p.add_argument("--trace", metavar="FILE", help="record card exchanges to FILE")
    p.add_argument("--gateway", metavar="URL", help="gateway to sync the hotlist from")
    add_token_options(p, env="YKT_VALIDATOR_TOKEN", what="this validator's gateway token")
    p.add_argument(
        "--hotlist-sync", type=float, default=60.0, metavar="SECONDS", help="sync interval"
    )
    p.set_defaults(handler=run)


def _cards(args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    from simulators.files import load_device
    from simulators.profiles import demo_card

    if args.card:
        return [load_device(path) for path in args.card]
    return [demo_card(i + 1, balance=2_000) for i in range(args.cards)]


def _sync_hotlist(args: argparse.Namespace, hotlist: Hotlist, stop: threading.Event) -> None:
    """Sync now, then every --hotlist-sync seconds until ``stop``; offline is no error."""
    from terminal.uplink import GatewayClient, GatewayUnavailable, sync_local_hotlist

    client = GatewayClient(args.gateway, args.token)

    def once() -> None:
        try:
            sync_local_hotlist(client, hotlist)
        except GatewayUnavailable as exc:
            logging.getLogger(__name__).warning("hotlist sync: %s", exc)

    once()

    def every() -> None:
        while not stop.wait(args.hotlist_sync):
            once()
        client.close()

    threading.Thread(target=every, name="hotlist-sync", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    rules = load_rules(args.fares)
    sim = args.reader == "sim"
    cards = _cards(args) if sim else []  # card file errors before anything is opened
    card_reader = SimReader(name="antenna") if sim else None
    if card_reader is None:
        from terminal.readers.spec import open_reader

        card_reader = open_reader(args.reader)
    reader = card_reader
    if args.trace:
        from terminal.readers.trace import TraceWriter
        from terminal.readers.tracing import TracingReader

        reader = TracingReader(card_reader, TraceWriter.open(args.trace))
    session = open_session(args, reader)
    journal = Journal(args.journal, autocheckpoint=False)
    hotlist = Hotlist(args.hotlist)
    stop_sync = threading.Event()
    if args.gateway:
        if not args.token:
            raise SystemExit("ykt validator: --gateway needs --token")
        _sync_hotlist(args, hotlist, stop_sync)
    config = ValidatorConfig(
        mode=Mode(args.mode),
        rules=rules,
        station=hex_bytes(args.station, "--station", size=2).hex().upper(),
        line=hex_bytes(args.line, "--line", size=2),
    )
    validator = Validator(session, journal, hotlist, config)
    print(
        f"validator {session.sam.terminal_id_hex} mode {args.mode} station {args.station} "
        f"fares {Path(args.fares).name}; journal {args.journal} "
        f"({len(journal.open_rows())} open row(s)); hotlist version {hotlist.version} "
        f"({len(hotlist)} card(s))"
    )
    served = [0, 0]

    def show(result) -> None:  # type: ignore[no-untyped-def]
        served[0 if result.green else 1] += 1
        print(result.line(), flush=True)

    loop = TapLoop(validator, reader, show, poll=0.2, verify_every=args.journal_check)
    if sim:
        rng = random.Random(args.seed)

        def feed() -> None:
            for i in range(args.taps):
                card_reader.insert(rng.choice(cards))
                served = loop.wait_for_taps(i + 1)
                card_reader.remove()
                if not served:
                    return
            loop.stop()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        loop.run()
        feeder.join()
        for card in cards:
            card.save()
    else:
        with contextlib.suppress(KeyboardInterrupt):
            loop.run()
    if loop.fault is not None:
        stop_sync.set()
        print(f"RED   out of service: {loop.fault}", flush=True)
        print(f"ykt validator: out of service: {loop.fault}", file=sys.stderr)
        return OUT_OF_SERVICE
    settled = journal.totals()["settled"]
    print(
        f"{served[0]} green, {served[1]} red; journal: {settled[0]} settled "
        f"({format_fen(settled[1])}), {len(journal.open_rows())} open, "
        f"{journal.pending_upload()} awaiting upload"
    )
    stop_sync.set()
    journal.close()
    return 0
