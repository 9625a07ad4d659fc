"""``ykt run``, ``ykt upload``, ``ykt journal``: a device from its configuration file."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal.cli.desk_parts import DeskParts
from terminal.cli.sim_devices import SoftwareDevices
from terminal.csv_cells import csv_writer
from terminal.journal import EcJournalRow, Journal, JournalRow
from terminal.journal.journal import QrJournalRow
from terminal.money import format_fen
from terminal.runtime.assembly import StartRefused, assemble, assemble_door, open_uplink
from terminal.runtime.config import TerminalConfig, load_config
from terminal.runtime.counter import CounterService
from terminal.runtime.desk import DeskService, desk_log_line
from terminal.runtime.door import DoorService, decision_line
from terminal.runtime.kiosk import KioskService, kiosk_log_line
from terminal.runtime.library import LibraryService, library_log_line, library_terminal
from terminal.runtime.pos import PosService, sale_log_line
from terminal.runtime.service import Service, log_line
from terminal.runtime.till import TillService, till_log_line
from terminal.runtime.trips import TripService, trip_log_line
from terminal.text import FileError, arg_int
from terminal.uplink import GatewayRefused, GatewayUnavailable
from terminal.words import say, set_lang

OUT_OF_SERVICE = 3

RUN = """\
Run the device a terminal configuration describes (docs/terminal-config.md) as a
long-lived service: serve cards, upload the journal in the background (batches, capped
back-off while the gateway is down), sync the hotlist, answer /health and /metrics on
127.0.0.1:<status.port>, and print one JSON line per transaction. SIGTERM (or Ctrl-C)
finishes the tap in progress, uploads what waits within gateway.flush_timeout and exits 0;
started again it carries on from its journal. Exit 3: the journal failed (out of service).

A POS (role "pos") takes its sales from the cash register: POST /sale with
{"amount_fen": N, "pay": "ep|ec|auto"} on the status port answers the sale's result as JSON
(approved with the balance and the receipt, or refused with the reason in words); one
sale at a time; SIGTERM finishes the sale in progress first.

A kiosk (role "kiosk") takes its requests from the kiosk's screen application the same
way: POST /top-up with {"amount_fen": N} once the customer has paid N in, POST /pickup
(approved subsidies, with [kiosk] pickup = true) and POST /balance; each loads the card
in the field through the gateway and answers JSON with the receipt. A top-up interrupted
by a card pulled away or a power cut is finished at the card's next visit.

A taxi (without a fixed [ride] meter) takes each trip's fare from its meter: POST /trip
with {"amount_fen": N}; a coach conductor's terminal (without a fixed [ride] destination)
POST /trip with {"destination": "0203"}. The next card in the field pays that trip once;
the answer is the tap's result as JSON.

A canteen till (role "till") takes each meal from the cashier's screen: POST /sale with
{"amount_fen": N, "purse": "allowance|cash"}; the card in the field pays it within the
meal's and the day's limits, from the cash purse (journaled, uploaded) or the allowance at
the gateway, and the answer is the sale's result as JSON.

An issuance desk (role "desk") takes each applicant from the desk clerk's screen: POST
/issue with {"name": ..., "id_number": ..., "card_kind": 1} personalises the blank card in
the reader (card numbers leased from the gateway, one person one card checked against its
book); POST /replace with {"card_number": ...} replaces a lost card and carries its
balance as the gateway proves it. After each card the desk's book is pushed to the
gateway's card book. The personalisation keys are held in the desk's process ([desk] keys,
as with ykt issue).
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="run a terminal from its configuration file (a service)",
        description=RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="TERMINAL.toml")
    p.set_defaults(handler=run)
    u = sub.add_parser(
        "upload",
        help="send what the terminal's journal has waiting, once",
        description="Upload every waiting journal row once; exit 1 if rows still wait.",
    )
    u.add_argument("config", metavar="TERMINAL.toml")
    u.set_defaults(handler=upload)
    j = sub.add_parser(
        "journal",
        help="list a terminal's open, unsent, parked and recent journal rows",
        description="List open, unsent, parked and recent rows; --csv exports every row.",
    )
    j.add_argument("config", metavar="TERMINAL.toml")
    j.add_argument("--recent", type=arg_int, default=10, help="recent rows to list")
    j.add_argument("--csv", metavar="FILE", help="write every row to FILE as CSV")
    j.set_defaults(handler=journal)


@dataclass(frozen=True)
class Counter:
    """A device that takes its work over POST on its status port rather than from taps."""

    service: Callable[..., CounterService]
    log_line: Callable[[str, Any], str]
    counts: str  # the banner's tally: run.banner.counts.<counts>
    device: str  # what the start refusal calls it
    takes: str  # what it takes over POST
    noun: str  # the banner's name for the endpoint
    path: str


COUNTERS = {
    "pos": Counter(PosService, sale_log_line, "pos", "POS", "its sales", "sales", "/sale"),
    "kiosk": Counter(
        KioskService, kiosk_log_line, "kiosk", "kiosk", "its top-ups", "top-ups", "/top-up"
    ),
    "desk": Counter(
        DeskService, desk_log_line, "desk", "desk", "its applicants", "cards", "/issue"
    ),
    "till": Counter(TillService, till_log_line, "pos", "till", "its sales", "sales", "/sale"),
    "library": Counter(
        LibraryService,
        library_log_line,
        "library",
        "library desk",
        "its loans and returns",
        "loans",
        "/loan",
    ),
}


def _counter(config: TerminalConfig) -> Counter | None:
    """How ``config``'s device takes its work when not from taps (None: a tap loop)."""
    if config.takes_trips:
        return Counter(
            TripService, trip_log_line, "trips", config.role, "each trip", "trips", "/trip"
        )
    return COUNTERS.get(config.role)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.lang is None and config.lang is not None:
        set_lang(config.lang)
    counter = _counter(config)
    if counter is not None and not config.status_port:
        raise StartRefused(
            f"{config.source}: a {counter.device} takes {counter.takes} on [status] port "
            f"(POST {counter.path}): set it"
        )
    if config.role == "door":
        return run_door(config)
    desk = DeskParts()
    if config.role == "library":
        terminal: Any = library_terminal(config, SoftwareDevices())
    else:
        terminal = assemble(config, SoftwareDevices(), desk)
    terminal_id = terminal.session.sam.terminal_id_hex

    def banner() -> None:
        status = f"; status http://127.0.0.1:{config.status_port}/health"
        if counter is not None:
            status += f", {counter.noun} POST http://127.0.0.1:{config.status_port}{counter.path}"
        print(
            f"ykt run: {config.role} {terminal_id} from {config.source}; journal "
            f"{config.journal}" + (status if config.status_port else ""),
            file=sys.stderr,
            flush=True,
        )

    service: Service | CounterService
    if counter is not None:
        extra = {"devices": desk} if config.role == "desk" else {}
        service = counter.service(
            terminal,
            lambda outcome: print(counter.log_line(terminal_id, outcome), flush=True),
            on_start=banner,
            **extra,
        )
        counts = f"run.banner.counts.{counter.counts}"
    else:
        service = Service(
            terminal,
            lambda result: print(log_line(terminal_id, result, config.role), flush=True),
            stop_after_taps=False,
            tap_interval=config.tap_interval,
            on_start=banner,
        )
        counts = "run.banner.counts.validator"
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.stop())
    result = service.run()
    if result.fault is not None:
        print(say("run.out_of_service", reason=result.fault), file=sys.stderr)
        return OUT_OF_SERVICE
    tally = say(counts, green=result.green, red=result.red)
    print(say("run.stopped", counts=tally, waiting=result.waiting), file=sys.stderr)
    return 0


def run_door(config: TerminalConfig) -> int:
    """A door reader as a service: one JSON line per decision (docs/campus.md)."""
    device = assemble_door(config, SoftwareDevices())
    terminal_id = device.door.session.sam.terminal_id_hex

    def banner() -> None:
        status = f"; status http://127.0.0.1:{config.status_port}/health"
        print(
            f"ykt run: door {terminal_id} point {device.point} from {config.source}; store "
            f"{config.journal}" + (status if config.status_port else ""),
            file=sys.stderr,
            flush=True,
        )

    service = DoorService(
        device,
        lambda decision: print(decision_line(terminal_id, decision), flush=True),
        stop_after_taps=False,
        on_start=banner,
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.stop())
    result = service.run()
    print(
        f"ykt run: stopped; {result.granted} granted, {result.refused} refused, "
        f"{result.waiting} event(s) awaiting upload",
        file=sys.stderr,
    )
    return 0


def _journal(config: TerminalConfig) -> Journal:
    """The device's existing journal (a wrong path must not create an empty one)."""
    if config.role == "door":
        raise FileError(
            config.source,
            None,
            f"a door keeps its events in its own store ({config.journal}), not a payment "
            "journal: ykt run uploads them (GET /health shows waiting_upload)",
        )
    if config.role == "library":
        raise FileError(
            config.source,
            None,
            f"a library desk keeps its allow list and loan numbers in its own store "
            f"({config.journal}), not a payment journal: its loans are booked at the gateway",
        )
    if not Path(config.journal).is_file():
        raise FileError(config.source, None, f"[journal] path {config.journal} does not exist")
    return Journal(config.journal)


def upload(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _journal(config) as j:
        client, uplink = open_uplink(config, j)
        with client:
            try:
                sent = uplink.drain()
            except (GatewayUnavailable, GatewayRefused) as exc:
                print(f"ykt upload: {exc}", file=sys.stderr)
                sent = uplink.stats.stored + uplink.stats.duplicates
        waiting = j.pending_upload()
        print(
            f"{sent} row(s) sent ({uplink.stats.stored} stored, {uplink.stats.duplicates} "
            f"already held, {uplink.stats.parked} parked); {waiting} waiting"
        )
    return 1 if waiting else 0


COLUMNS = (
    "kind",
    "id",
    "terminal_id",
    "seq",
    "card",
    "txn_type",
    "amount",
    "balance_before",
    "txn_time",
    "state",
    "resolution",
    "uploaded_at",
    "parked_reason",
)
# e-purse purchase, Electronic Cash sale, ride paid by a QR code
KIND_SHOWN = {"purchase": "EP", "ec_purchase": "EC", "qr_ride": "QR"}


def _cell(row: JournalRow | EcJournalRow | QrJournalRow, column: str) -> object:
    return row.kind.name if column == "kind" else getattr(row, column)


def _line(row: JournalRow | EcJournalRow | QrJournalRow) -> str:
    sent = "sent" if row.uploaded_at else ("parked" if row.parked_reason else "unsent")
    if row.upload_seq is None:
        sent = "-"
    return (
        f"  {KIND_SHOWN[row.kind.name]} seq {row.seq:>6d} {row.txn_time:%Y-%m-%d %H:%M:%S}"
        f" {row.card} {format_fen(row.amount):>9s} {row.state:<8s} {sent}"
        + (f"  ({row.parked_reason})" if row.parked_reason else "")
    )


def journal(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _journal(config) as j:
        rows: list[JournalRow | EcJournalRow | QrJournalRow] = sorted(
            [*j.rows(), *j.ec_rows(), *j.qr_rows()], key=lambda r: r.txn_time
        )
        open_rows = [*j.open_rows(), *j.open_ec_rows()]
        unsent = sorted(
            [
                *j.export(limit=1_000_000),
                *j.export_ec(limit=1_000_000),
                *j.export_qr(limit=1_000_000),
            ],
            key=lambda r: r.upload_seq or 0,
        )
        parked = j.parked()
        for title, listed in (
            ("open (resolved at the card's next tap)", open_rows),
            ("unsent", unsent),
            ("parked (refused by the gateway)", parked),
            (f"recent ({min(args.recent, len(rows))} of {len(rows)})", rows[-args.recent :]),
        ):
            print(f"{title}: {len(listed)}" if not title.startswith("recent") else title)
            for row in listed:
                print(_line(row))
        if args.csv:
            with open(args.csv, "w", newline="", encoding="utf-8") as out:
                writer = csv_writer(out)
                writer.writerow(COLUMNS)
                for row in rows:
                    writer.writerow(_cell(row, c) for c in COLUMNS)
            print(f"{len(rows)} row(s) written to {args.csv}")
    return 0
