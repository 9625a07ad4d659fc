"""``ykt issue``: the issuance desk - personalise cards, one or a CSV batch, replace lost ones.

The desk's book of cards is a SQLite registry file; its host security module is local
for now (issuer key sets from --keys, the card vendor's transport master from
--transport-master-file, demo keys by default) and becomes the gateway's later.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from terminal.cli.common import add_token_options, print_json
from terminal.cli.desk_parts import DeskParts, discard_if_untouched
from terminal.cli.progress import Progress
from terminal.money import format_fen
from terminal.readers.base import Reader
from terminal.readers.sim import SimReader
from terminal.readers.tracing import TracingReader
from terminal.roles.issuance import BatchRow, IssuanceDesk, Issued
from terminal.roles.registry import Applicant
from terminal.runtime.assembly import NO_SAM
from terminal.runtime.config import TerminalConfig
from terminal.text import arg_code, arg_int

DESCRIPTION = """\
Personalise blank cards at the card centre's issuance desk.

  ykt issue --name 张三 --id-number 11010519491231002X --out card.json
  ykt issue --batch people.csv --out-dir cards/ --report report.json
  ykt issue --replace 3100029000010000001 --out new.json
  ykt issue --export records.json --since 0
  ykt issue --push --gateway URL --token T   send the book's changes to the gateway
  ykt issue --lease 200 --gateway URL --token T   hold 200 more card numbers (for offline)

With the default sim reader, --out (or each row's file in --out-dir) is a software card:
a fresh blank card is made there unless the file already holds one (an interrupted
card is then finished). With a real reader (pcsc:...), put a blank card in it.

One person, one card: an ID number holds one live card of each --card-kind. A lost
card is replaced with --replace: it is reported lost, put in the --hotlist, and its last
known balance is loaded onto the new card through the gateway (--gateway), journaled in
--journal like a kiosk's top-up: a card pulled mid-load is finished at its next visit, so
the balance is carried exactly once. Without --gateway the desk replaces only a card with
nothing to carry.

Batch CSV header: name,id_number,card_kind (optional columns: id_type, card_type, pin).

Card numbers come from the card centre (the gateway), never from the desk: with --gateway
the desk leases blocks of numbers as it needs them (the registry keeps them, so a restart
goes on where it stopped) and checks each holder against the central book before the card
is written. Without --gateway (offline) it issues only from numbers it already holds and
refuses when it has none; its next push reports any card the central book refuses.

With --gateway URL --token T (the desk's credentials, role issuance) every issuance,
replacement or batch ends by pushing the book's changes to the gateway's card book, and
a replacement first takes the lost card's balance from the gateway, which proves it from
verified records only; when it cannot (unverified or inconsistent records, a settling
period after the loss), the replacement is refused with its reason and nothing is carried
(docs/issuance.md §4, docs/security.md).
"""

BATCH_REQUIRED = ("name", "id_number", "card_kind")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "issue",
        help="issuance desk: personalise, batch-issue and replace cards",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--batch", metavar="CSV", help="issue one card per CSV row")
    mode.add_argument("--replace", type=arg_code, metavar="CARDNO", help="replace this lost card")
    mode.add_argument(
        "--abandon", type=arg_code, metavar="CARDNO", help="void a pending card whose chip is gone"
    )
    mode.add_argument("--export", metavar="FILE", help="write issuance records as JSON (-: stdout)")
    mode.add_argument(
        "--push", action="store_true", help="push the book's changes to --gateway, then stop"
    )
    mode.add_argument(
        "--lease",
        type=arg_int,
        metavar="N",
        help="lease N more card numbers from --gateway (to issue offline later), then stop",
    )
    p.add_argument("--name", help="holder's name (written in GBK, at most 10 Chinese characters)")
    p.add_argument("--id-number", help="holder's ID number (GB 11643 checked for --id-type 0)")
    p.add_argument("--id-type", type=arg_int, default=0, help="0x16 ID document type (default 0)")
    p.add_argument("--card-kind", type=lambda s: int(s, 0), default=1, help="0x17 card kind")
    p.add_argument("--card-type", type=lambda s: int(s, 0), default=1, help="0x16 card type")
    p.add_argument("--pin", help="PIN to set (default: the desk's default PIN)")
    p.add_argument("--out", metavar="FILE", help="software card file (sim reader)")
    p.add_argument("--out-dir", metavar="DIR", help="software card files for --batch")
    p.add_argument("--report", metavar="FILE", help="--batch: write the per-row report as JSON")
    p.add_argument("--since", type=arg_int, default=0, help="--export: records after this revision")
    p.add_argument("--registry", default="ykt-cards.db", metavar="PATH", help="card registry")
    p.add_argument("--hotlist", default="ykt-hotlist.db", metavar="PATH", help="hotlist database")
    p.add_argument(
        "--journal",
        default="desk-journal.db",
        metavar="PATH",
        help="the desk's load journal (carried balances, with --gateway)",
    )
    p.add_argument(
        "--replacement-wait-days",
        type=arg_int,
        default=0,
        help="days between a loss report and the replacement (default 0)",
    )
    p.add_argument("--keys", metavar="FILE", help="issuer key sets (JSON); default: demo keys")
    p.add_argument(
        "--transport-master-file",
        metavar="FILE",
        help="card vendor's transport master key (hex in a file); default: the demo vendor",
    )
    p.add_argument("--issuer", default="shanghai", choices=["shanghai", "beijing"])
    p.add_argument("--terminal-id", default="310000000080", help="the desk's terminal number")
    p.add_argument("--reader", default="sim", metavar="SPEC", help="card reader (default sim)")
    p.add_argument("--trace", metavar="FILE", help="record every card exchange to FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--gateway", metavar="URL", help="the gateway whose card book to keep up")
    add_token_options(p, env="YKT_DESK_TOKEN", what="the desk's gateway token")
    p.set_defaults(handler=run)


# -- wiring ---------------------------------------------------------------------------------
def config_of(args: argparse.Namespace) -> TerminalConfig:
    """The desk these options describe, as ``ykt run`` reads one from a file: no PSAM (the
    desk's number is --terminal-id); without --gateway an offline desk, which journals
    nothing since it carries no balance."""
    from simulators.profiles import DEMO_ISSUERS

    return TerminalConfig(
        role="desk",
        journal=args.journal if args.gateway else ":memory:",
        card_reader=args.reader,
        sam_reader=NO_SAM,
        trace=args.trace,
        terminal_id=args.terminal_id,
        hotlist=args.hotlist,
        gateway=args.gateway,
        token=args.token,
        registry=args.registry,
        issuer_id=DEMO_ISSUERS[args.issuer].hex().upper(),
        keys=args.keys,
        transport_master=args.transport_master_file,
        replacement_wait=args.replacement_wait_days,
        offline=not args.gateway,
    )


class _Desk:
    """The desk the one assembly builds from the options: its registry, hotlist, local HSM
    (personalisation), card reader and, with --gateway, its journaled credit path for
    carried balances (confirmations the gateway has not acknowledged are sent first)."""

    def __init__(self, args: argparse.Namespace):
        from terminal.cli.sim_devices import SoftwareDevices
        from terminal.runtime.assembly import assemble

        if args.gateway:
            _need_token(args)
        self.parts = DeskParts()
        self.transport_master = args.transport_master_file
        self.terminal = assemble(config_of(args), SoftwareDevices(), self.parts)
        reader = self.terminal.reader
        if isinstance(reader, TracingReader):
            reader.writer.comment(f"ykt issue --reader {args.reader}")
        self.reader = reader
        card_reader = self.terminal.card_reader
        self.sim = card_reader if isinstance(card_reader, SimReader) else None
        self.desk: IssuanceDesk = self.terminal.role
        self.registry = self.desk.registry
        self.client = self.terminal.client
        if self.desk.credits is not None:
            self.desk.credits.recover_without_card()

    def insert_software_card(self, path: Path) -> None:
        """Put the card file at ``path`` in the sim reader, making a blank card if none."""
        assert self.sim is not None
        self.sim.insert(self.parts.blank_card(str(path), self.transport_master))


def _applicant(args: argparse.Namespace) -> Applicant:
    if not args.name or not args.id_number:
        raise SystemExit("ykt issue: --name and --id-number are required to issue a card")
    return Applicant(args.name, args.id_number, args.card_kind, args.id_type, args.card_type)


def _summary(issued: Issued) -> dict[str, Any]:
    snap = issued.snapshot
    return {
        "record": issued.record.to_json(),
        "balance_fen": snap.balance,
        "resumed": issued.resumed,
        "carried_fen": issued.carried.request.amount if issued.carried else 0,
    }


def _print_issued(issued: Issued, where: str) -> None:
    r = issued.record
    resumed = " (interrupted issuance finished)" if issued.resumed else ""
    print(f"issued card {r.card_number} to {r.holder.name}, kind {r.holder.card_kind}{resumed}")
    if r.replaces:
        print(f"  replaces lost card {r.replaces}, carried {format_fen(r.carry_fen)}")
    print(f"  balance {format_fen(issued.snapshot.balance)}{where}")


# -- modes ----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    if args.export:
        return _export(args)
    if args.push:
        return _push(args)
    desk = _Desk(args)
    if args.lease is not None:
        return _lease(args, desk)
    if args.abandon:
        record = desk.registry.abandon(args.abandon)
        print(f"card {record.card_number} is {record.state.value}")
        return 0
    if args.batch:
        rc = _batch(args, desk)
        if args.gateway:
            _push(args)
        return rc
    out = Path(args.out) if args.out else None
    created = False
    if desk.sim is not None:
        if out is None:
            raise SystemExit("ykt issue: --out FILE is required with the sim reader")
        created = not out.exists()
        desk.insert_software_card(out)
    try:
        if args.replace:
            issued = _replace(args, desk)
        else:
            issued = desk.desk.issue(_applicant(args), pin=args.pin)
    except BaseException:
        if created and out is not None:
            discard_if_untouched(out)
        raise
    if args.json:
        print_json(_summary(issued))
    else:
        _print_issued(issued, f" -> {args.out}" if args.out else "")
    if args.gateway:
        _push(args)
    return 0


def _gateway_client(args: argparse.Namespace) -> Any:
    from terminal.uplink import GatewayClient

    _need_token(args)
    return GatewayClient(args.gateway, args.token)


def _need_token(args: argparse.Namespace) -> None:
    if not args.gateway or not args.token:
        raise SystemExit("ykt issue: the gateway needs --gateway URL and --token")


def _lease(args: argparse.Namespace, desk: _Desk) -> int:
    if desk.client is None:
        raise SystemExit("ykt issue: --lease needs --gateway URL and --token (the card centre)")
    issuer_id = desk.desk.config.issuer_id
    held = desk.desk.lease(issuer_id, args.lease)
    print(
        f"desk {desk.desk.desk_id} holds {held} unused card number(s) of issuer "
        f"{issuer_id.hex().upper()}"
    )
    return 0


def _print_push(result: Any) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    print(
        f"gateway card book: {result.sent} record(s) sent ({counts or 'nothing new'}), "
        f"now at revision {result.cursor}",
        file=sys.stderr,
    )
    if result.refused:
        print(
            f"the card centre refused {len(result.refused)} card(s); settle each at the back "
            "office (void the card issued in error):",
            file=sys.stderr,
        )
    for refused in result.refused:
        print(f"  card {refused['card_number']}: {refused.get('reason', '')}", file=sys.stderr)


def _push(args: argparse.Namespace) -> int:
    """Send the records changed since the gateway's cursor for this desk."""
    from gateway.registry import SqliteCardRegistry
    from terminal.uplink.issuance import GatewayCardBook

    registry = SqliteCardRegistry(args.registry)
    with _gateway_client(args) as client:
        book = GatewayCardBook(
            client, registry.export, pushed=_print_push, desk_id=registry.desk_id
        )
        result = book.push()
    return 1 if result.refused else 0


def _replace(args: argparse.Namespace, desk: _Desk) -> Issued:
    """Replace the lost card; with --gateway its balance is the one the gateway proves."""
    from terminal.uplink.issuance import GatewayCardBook

    if not args.gateway:
        return desk.desk.replace(args.replace, pin=args.pin)
    with _gateway_client(args) as client:
        book = GatewayCardBook(
            client, desk.registry.export, pushed=_print_push, desk_id=desk.registry.desk_id
        )
        return desk.desk.replace(args.replace, pin=args.pin, card_book=book)


def _export(args: argparse.Namespace) -> int:
    from gateway.registry import SqliteCardRegistry

    records = SqliteCardRegistry(args.registry).export(args.since)
    text = json.dumps(records, ensure_ascii=False, indent=1)
    if args.export == "-":
        print(text)
    else:
        Path(args.export).write_text(text + "\n", encoding="utf-8")
        print(f"{len(records)} record(s) -> {args.export}", file=sys.stderr)
    return 0


def _read_batch(path: str) -> list[tuple[int, dict[str, str]]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in BATCH_REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"ykt issue: {path} lacks column(s) {', '.join(missing)}")
        rows = [(reader.line_num, dict(row)) for row in reader]
    return [(n, row) for n, row in rows if any((row.get(c) or "").strip() for c in BATCH_REQUIRED)]


class _SoftwareCards:
    """Batch cards as software card files in ``out_dir``: a blank one per row, renamed
    after its card number once issued, removed again if the row was refused untouched."""

    def __init__(self, desk: _Desk, out_dir: Path):
        self.desk = desk
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)

    def _blank(self, line: int) -> Path:
        return self.out_dir / f".row-{line}.json"

    def present(self, line: int) -> None:
        self.desk.insert_software_card(self._blank(line))

    def refused(self, line: int) -> None:
        discard_if_untouched(self._blank(line))

    def issued(self, line: int, card_number: str) -> str:
        target = self.out_dir / f"{card_number}.json"
        os.replace(self._blank(line), target)
        return str(target)


class _ReaderCards:
    """Batch cards on a real reader: the operator is asked for each blank card."""

    def __init__(self, reader: Reader):
        self.reader = reader

    def present(self, line: int) -> None:
        print(f"row {line}: put a blank card in the reader", file=sys.stderr)
        self.reader.wait_for_card()

    def refused(self, line: int) -> None:
        pass

    def issued(self, line: int, card_number: str) -> None:
        print(f"row {line}: card {card_number} done, take it out", file=sys.stderr)
        self.reader.wait_for_removal()


def _batch(args: argparse.Namespace, desk: _Desk) -> int:
    rows = _read_batch(args.batch)
    out_dir = Path(args.out_dir or ".")
    feeder = _SoftwareCards(desk, out_dir) if desk.sim is not None else _ReaderCards(desk.reader)
    with Progress(len(rows), "issuing", sys.stderr, enabled=not args.json) as progress:
        results = desk.desk.issue_batch(rows, feeder, done=lambda _: progress.advance())
    report = [r.to_json() for r in results]
    if args.report:
        Path(args.report).write_text(
            json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    if args.json:
        print_json(report)
    else:
        _print_batch(results)
    return 0 if all(r.ok for r in results) else 1


def _print_batch(results: list[BatchRow]) -> None:
    for r in results:
        detail = r.card_number if r.ok else r.reason
        print(f"row {r.row:<4d} {r.status:<8s} {r.name:<10s} {detail}")
    ok = sum(r.ok for r in results)
    print(f"{ok} issued, {len(results) - ok} refused")
