"""``ykt validator``: run a validator loop (bus, metro, taxi, bike, coach, parking), one line
per tap."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from terminal.cli.common import add_sam_options, add_token_options
from terminal.cli.sim_devices import SoftwareDevices
from terminal.fares import DEMO_FARES, Mode
from terminal.journal import Journal
from terminal.money import format_fen
from terminal.runtime.assembly import assemble, assemble_door
from terminal.runtime.config import TerminalConfig
from terminal.runtime.door import DoorService, decision_text
from terminal.runtime.service import Service
from terminal.text import arg_code, arg_int
from terminal.words import CATALOGUE, say, tap_line

OUT_OF_SERVICE = 3  # exit status: the journal failed, the validator stopped taking cards

DESCRIPTION = """\
Run a validator: wait for a card, compute the fare from the fare file, debit the purse
(composite purchase with trip records), print one line per tap (green/red, fare, balance,
time taken), and carry on after any card's failure. Every debit is journaled before DEBIT
and after; a card pulled away mid-payment is settled or voided at its next tap.

Modes: bus, metro-entry/metro-exit, taxi (pays --meter FEN; --driver and --vehicle go in
the card's record and the journal), bike-rent/bike-return (--vehicle: the bike), coach (a
ticket at boarding from --station to --to), parking-entry/parking-exit. Fares of every
mode are in the fare file (docs/fares.md).

With the default sim reader, --cards software cards (or the --card files) are tapped in
random order --taps times. With a real reader (pcsc:..., nfc:...) it serves taps until
Ctrl-C.

With --gateway URL (and its token from --token-file or $YKT_VALIDATOR_TOKEN) what the
validator settles is uploaded in the background (batches, back-off while the gateway is
down, refused rows parked) and once more before exit; the summary says what was sent and
what waits. The hotlist (挂失) is synced from the gateway's deltas before the first tap and
every --hotlist-sync seconds; a card reported lost is refused and blocked from the first
tap after the sync that brought it. Without the gateway the validator works offline.

The software PSAM keeps its state (terminal sequence number) in --sam-state (default
next to the journal), so a validator started again on the same journal carries on. A PSAM
whose next sequence number its journal already holds (reset, restored, swapped) is
refused at start with the reason.

The journal is checked at start and in idle time: removed, replaced or damaged (or a
write to it failing), the validator prints RED "out of service" with the reason, stops
taking cards and exits with status 3.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "validator",
        help="run a validator loop (bus, metro, taxi, bike, coach, parking)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--mode", choices=[*(m.value for m in Mode), "door"], default="bus")
    p.add_argument("--rules", metavar="FILE", help="door: the door rules file (docs/campus.md)")
    p.add_argument("--point", metavar="NAME", help="door: which of the rules' doors this is")
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
    p.add_argument(
        "--meter", type=arg_int, metavar="FEN", help="taxi: the meter's amount each tap pays"
    )
    p.add_argument("--driver", default="", help="taxi: the driver's id (8 characters)")
    p.add_argument("--vehicle", default="", help="taxi plate or bike number (8 characters)")
    p.add_argument("--to", type=arg_code, metavar="STATION", help="coach: the destination")
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
    p.add_argument(
        "--gateway", metavar="URL", help="gateway to upload to and sync the hotlist from"
    )
    p.add_argument(
        "--upload-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="upload settled rows at least this often (default 5)",
    )
    p.add_argument(
        "--flush-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time to upload what waits before exit (default 10)",
    )
    add_token_options(p, env="YKT_VALIDATOR_TOKEN", what="this validator's gateway token")
    p.add_argument(
        "--hotlist-sync", type=float, default=60.0, metavar="SECONDS", help="sync interval"
    )
    p.set_defaults(handler=run)


def config_of(args: argparse.Namespace) -> TerminalConfig:
    """The terminal configuration these options describe (what ``ykt run`` reads from a file)."""
    return TerminalConfig(
        role=args.mode,
        journal=args.journal,
        card_reader=args.reader,
        sam_reader=args.sam_reader,
        trace=args.trace,
        station=args.station,
        line=args.line,
        terminal_id=args.terminal_id,
        sam_state=args.sam_state,
        cards=args.card or [],
        demo_cards=args.cards,
        taps=args.taps,
        seed=args.seed,
        journal_check=args.journal_check,
        fares=args.fares,
        meter=args.meter,
        driver=args.driver,
        vehicle=args.vehicle,
        destination=args.to,
        hotlist=args.hotlist,
        hotlist_sync=args.hotlist_sync,
        gateway=args.gateway,
        token=args.token,
        upload_interval=args.upload_interval,
        flush_timeout=args.flush_timeout,
        door_rules=args.rules,
        door_point=args.point,
    )


def run(args: argparse.Namespace) -> int:
    if args.gateway and not args.token:
        raise SystemExit(
            "ykt validator: --gateway needs a token (--token-file or $YKT_VALIDATOR_TOKEN)"
        )
    config = config_of(args)
    if args.mode == "door":
        return run_door(config)
    terminal = assemble(config, SoftwareDevices())

    def banner() -> None:
        journal, hotlist = terminal.journal, terminal.hotlist
        print(
            say(
                "banner.validator.station"
                if args.mode.startswith("metro")
                else "banner.validator.line",
                mode=say(f"mode.{args.mode}") if f"mode.{args.mode}" in CATALOGUE else args.mode,
                terminal=terminal.session.sam.terminal_id_hex,
                line=args.line,
                station=args.station,
                fares=Path(args.fares).name,
                journal=args.journal,
                open=len(journal.open_rows()),
                version=hotlist.version,
                cards=len(hotlist),
            ),
            flush=True,
        )

    service = Service(
        terminal, lambda result: print(tap_line(result, args.mode), flush=True), on_start=banner
    )
    for signum in (signal.SIGINT, signal.SIGTERM):  # finish the tap, upload, then stop
        signal.signal(signum, lambda *_: service.stop())
    result = service.run()
    if result.fault is not None:
        print(f"{say('tap.red')} {say('tap.out_of_service', reason=result.fault)}", flush=True)
        print(f"ykt validator: out of service: {result.fault}", file=sys.stderr)
        return OUT_OF_SERVICE
    with Journal(config.journal) as after:
        settled = after.totals()["settled"]
        sent = (
            ""
            if terminal.uploader is None
            else say("validator.uploaded", count=terminal.uploader.uplink.stats.stored)
        )
        tally = say("run.banner.counts.validator", green=result.green, red=result.red)
        print(
            say(
                "validator.summary",
                counts=tally,
                settled=settled[0],
                amount=format_fen(settled[1]),
                open=len(after.open_rows()),
                sent=sent,
                waiting=result.waiting,
                parked=len(after.parked()),
            )
        )
    return 0


def run_door(config: TerminalConfig) -> int:
    """A door reader (docs/campus.md): one line per decision, then the counts."""
    if not config.door_rules or not config.door_point:
        raise SystemExit("ykt validator: --mode door needs --rules FILE and --point NAME")
    device = assemble_door(config, SoftwareDevices())

    def banner() -> None:
        door = device.door
        print(
            f"door {door.session.sam.terminal_id_hex} point {device.point} rules "
            f"{Path(config.door_rules or '').name}; store {config.journal} "
            f"({door.journal.count(uploaded=False)} event(s) waiting); allow list version "
            f"{door.access.version}, hotlist version {door.hotlist.version}",
            flush=True,
        )

    service = DoorService(
        device, lambda decision: print(decision_text(decision), flush=True), on_start=banner
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.stop())
    result = service.run()
    print(f"{result.granted} granted, {result.refused} refused; {result.waiting} awaiting upload")
    return 0
