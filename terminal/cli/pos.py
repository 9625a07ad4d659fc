"""``ykt pos``: a merchant POS - an amount per sale, the card pays, a receipt, the journal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from terminal.cli.common import (
    add_reader_options,
    add_sam_options,
    add_token_options,
    device_config,
    print_json_line,
)
from terminal.cli.sim_devices import SoftwareDevices
from terminal.journal import Journal
from terminal.money import format_fen, parse_yuan
from terminal.roles.onecard_pos import PaymentRule
from terminal.runtime.assembly import assemble
from terminal.runtime.config import TerminalConfig
from terminal.runtime.pos import SaleOutcome, sell

TOKEN_ENV = "YKT_POS_TOKEN"

DESCRIPTION = """\
A merchant POS. With --amount YUAN it makes one sale; without it, it reads one amount
per line from stdin (an empty line or end of input ends the day). Each sale is paid from
the card's T-Union purse (EP) or its Electronic Cash (EC) by --pay, prints a receipt (or
one JSON object per sale with --json) and is journaled before and after the debit; a card
pulled away mid-payment is completed, not charged twice, when the same sale is made
again with the same card.

--pay ep (default) pays from the T-Union purse; ec from Electronic Cash; auto tries EC,
then EP; a rule such as 'ep<=500,ec' (caps in fen) sets the order and caps. EC sales are
journaled with the card's cryptogram (TC) and uploaded like the others; a card pulled
away during an EC payment is recorded as suspect for checking, not charged again.

With --gateway URL the journal is uploaded in the background during the day and once
more before exit; the token is read from --token-file PATH or $YKT_POS_TOKEN. An
unreachable gateway is no error: the sales stay in the journal and go with the next
upload (ykt upload, or the next ykt pos).

The software PSAM keeps its state (terminal sequence number) in --sam-state (default
next to the journal), so a POS started again on the same journal carries on; a PSAM whose
next sequence number its journal already holds is refused at start with the reason. To
serve a cash register as a long-lived service, see ykt run (examples/pos.toml).

The sim reader (default) holds the software card in --card FILE (changes are saved to
it: ykt sim new-card, ykt sim new-chip-card --kind resident) or a fresh demo card.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "pos",
        help="merchant POS: sell, print a receipt, journal and upload",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--amount", metavar="YUAN", help="one sale of this amount (e.g. 12.50)")
    p.add_argument(
        "--pay",
        default="ep",
        metavar="RULE",
        help="ep (default), ec, auto (EC then EP) or a rule like 'ep<=500,ec'",
    )
    p.add_argument("--journal", default="pos-journal.db", metavar="PATH")
    p.add_argument(
        "--hotlist",
        metavar="PATH",
        help="hotlist database: cards on it are refused (default: in memory; synced from "
        "--gateway)",
    )
    add_reader_options(p)
    add_sam_options(p, terminal_id="310000000101")
    p.add_argument("--merchant", default="yikatong 一卡通", help="name printed on receipts")
    p.add_argument("--json", action="store_true", help="one JSON object per sale")
    p.add_argument("--gateway", metavar="URL", help="upload the journal to this gateway")
    add_token_options(p, env=TOKEN_ENV, what="this POS's gateway token")
    p.add_argument("--terminal-data", metavar="FILE", help="JSON terminal data for EC (kernel)")
    p.add_argument("--ca-keys", metavar="FILE", help="add or replace CA public keys from FILE")
    p.add_argument(
        "--trust-test-keys",
        action="store_true",
        help="accept test CA keys for EC (always on with the sim reader)",
    )
    p.add_argument(
        "--upload-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --gateway: upload settled sales at least this often (default 5)",
    )
    p.add_argument(
        "--flush-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --gateway: time to upload what waits before exit (default 10)",
    )
    p.set_defaults(handler=run)


def _rule(text: str) -> None:
    try:
        PaymentRule.named(text)
    except ValueError as exc:
        raise SystemExit(f"ykt pos: --pay {text!r}: {exc}") from None


def _amounts(args: argparse.Namespace) -> Iterator[str]:
    if args.amount is not None:
        yield args.amount
        return
    for line in sys.stdin:
        if not line.strip():
            return
        yield line.strip()


def config_of(args: argparse.Namespace) -> TerminalConfig:
    """The terminal configuration these options describe (what ``ykt run`` reads from a file)."""
    return TerminalConfig(
        role="pos",
        **device_config(args),
        hotlist=args.hotlist,
        gateway=args.gateway,
        token=args.token,
        upload_interval=args.upload_interval,
        flush_timeout=args.flush_timeout,
        pay=args.pay,
        merchant=args.merchant,
        terminal_data=args.terminal_data,
        ca_keys=args.ca_keys,
        trust_test_keys=args.trust_test_keys,
    )


def run(args: argparse.Namespace) -> int:
    _rule(args.pay)
    if args.amount is not None:
        parse_yuan(args.amount)  # a bad amount is refused before anything is opened
    if args.gateway and not args.token:
        raise SystemExit(f"ykt pos: --gateway needs --token-file PATH or ${TOKEN_ENV}")
    terminal = assemble(config_of(args), SoftwareDevices())
    terminal_id = terminal.session.sam.terminal_id_hex
    if terminal.cards:  # the sim reader: the one card stays in the field all day
        terminal.card_reader.insert(terminal.cards[0])  # type: ignore[attr-defined]
    sales = refused = total = 0
    try:
        terminal.start_background()
        for text in _amounts(args):
            try:
                amount = parse_yuan(text)
                if amount <= 0:
                    raise ValueError(f"{text!r}: a sale is more than 0.00")
            except ValueError as exc:
                print(f"ykt pos: {exc}", file=sys.stderr, flush=True)
                refused += 1
                continue
            if args.reader != "sim":
                print("present the card", file=sys.stderr, flush=True)
                terminal.reader.wait_for_card()
            outcome = sell(terminal.role, amount, terminal_id, merchant=args.merchant)
            terminal.journal.checkpoint()
            if outcome.ok:
                sales += 1
                total += amount
            else:
                refused += 1
            _print(args, outcome)
    finally:
        waiting = terminal.close()
    if waiting and terminal.uploader is not None:
        error = terminal.uploader.uplink.stats.last_error
        print(
            f"upload failed, {waiting} sale(s) kept for the next upload"
            + (f": {error}" if error else ""),
            file=sys.stderr,
            flush=True,
        )
    if not args.json:
        with Journal(args.journal) as after:
            print(
                f"{sales} sale(s), {format_fen(total)}; {refused} refused; journal "
                f"{args.journal}: {len(after.open_rows())} open, "
                f"{after.pending_upload()} awaiting upload"
            )
    return 0 if refused == 0 else 1


def _print(args: argparse.Namespace, outcome: SaleOutcome) -> None:
    if args.json:
        print_json_line(outcome.doc)
    elif outcome.receipt is not None:
        print(outcome.receipt.text(), end="", flush=True)
    else:
        doc = outcome.doc
        print(f"REFUSED {format_fen(doc['amount_fen'])}: {doc['refused']}", flush=True)
