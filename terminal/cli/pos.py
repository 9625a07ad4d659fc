"""``ykt pos``: a merchant POS - an amount per sale, the card pays, a receipt, the journal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from terminal.apdu.errors import (
    CardError,
    InsufficientBalance,
    MalformedResponse,
    TlvError,
    TransportError,
)
from terminal.cli.common import (
    add_reader_options,
    add_sam_options,
    add_token_options,
    open_card_reader,
    open_session,
    print_json_line,
)
from terminal.epurse.flows import BalanceFlagSet
from terminal.journal import Journal
from terminal.money import format_fen, parse_yuan
from terminal.roles.debit import PaymentInterrupted
from terminal.roles.onecard_pos import (
    SOURCE_EC,
    SOURCE_EP,
    OneCardPos,
    OneCardSale,
    PaymentRefused,
    PaymentRule,
)
from terminal.roles.pos import CardRefused
from terminal.roles.receipt import Receipt, sale_receipt

TOKEN_ENV = "YKT_POS_TOKEN"
PAY_RULES = {"ep": "ep", "ec": "ec", "auto": "ec,ep"}
PAID_FROM = {SOURCE_EP: "T-Union purse", SOURCE_EC: "Electronic Cash"}

DESCRIPTION = """\
A merchant POS. With --amount YUAN it makes one sale; without it, it reads one amount
per line from stdin (an empty line or end of input ends the day). Each sale is paid from
the card's T-Union purse (EP) or its Electronic Cash (EC) by --pay, prints a receipt (or
one JSON object per sale with --json) and is journaled before and after the debit; a card
pulled away mid-payment is completed, not charged twice, when the same sale is made
again with the same card.

--pay ep (default) pays from the T-Union purse; ec from Electronic Cash; auto tries EC,
then EP; a rule such as 'ep<=500,ec' (caps in fen) sets the order and caps. EC sales are
not journaled yet (the journal has no EC record): they are not uploaded or cleared, and
their receipt says so.

With --gateway URL the journal is uploaded after each sale and before exit; the token is
read from --token-file PATH or $YKT_POS_TOKEN. An unreachable gateway is no error: the
sales stay in the journal and go with the next upload.

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
    p.set_defaults(handler=run, unpredictable_number=None)


def _rule(text: str) -> PaymentRule:
    try:
        return PaymentRule.parse(PAY_RULES.get(text, text))
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


def refusal(exc: Exception) -> str:
    """What the cashier tells the customer, in words (the status word stays in the log)."""
    if isinstance(exc, InsufficientBalance):
        return "insufficient balance"
    if isinstance(exc, PaymentRefused):
        if exc.insufficient_balance:
            return "insufficient balance (" + "; ".join(exc.attempts) + ")"
        return "card cannot pay: " + "; ".join(exc.attempts or ["no payment application"])
    if isinstance(exc, PaymentInterrupted):
        return "card removed during payment: present the same card and make the same sale again"
    if isinstance(exc, TransportError):
        return f"card not read, present it again ({exc})"
    if isinstance(exc, BalanceFlagSet | CardRefused):
        return f"card refused: {exc}"
    if isinstance(exc, CardError):
        return f"card refused the payment ({type(exc).__name__})"
    return f"card answer not understood, present it again ({exc})"


class Uploads:
    """The journal's uplink when --gateway is given; failures are reported, not raised."""

    def __init__(self, args: argparse.Namespace, journal: Journal, terminal_id: str):
        self.uplink: Any = None
        self.client: Any = None
        if args.gateway:
            from terminal.uplink import GatewayClient, Uplink

            self.client = GatewayClient(args.gateway, args.token)
            self.uplink = Uplink(journal, {terminal_id: self.client})

    def send(self) -> str | None:
        """Upload what waits; a line for the operator when the gateway did not take it."""
        if self.uplink is None:
            return None
        from terminal.uplink import GatewayRefused, GatewayUnavailable

        try:
            self.uplink.drain()
        except (GatewayUnavailable, GatewayRefused) as exc:
            waiting = self.uplink.journal.pending_upload()
            return f"upload failed, {waiting} sale(s) kept for the next upload: {exc}"
        return None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _document(sale: OneCardSale, terminal_id: str, card_number: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ok": True,
        "source": sale.source,
        "amount_fen": sale.amount,
        "balance_fen": sale.balance_after,
        "card_number": card_number,
        "terminal_id": terminal_id,
        "journaled": sale.journaled,
        "attempts": list(sale.attempts),
    }
    if sale.ep is not None:
        row = sale.ep.row
        doc.update(
            terminal_seq=row.terminal_seq,
            tac=row.tac,
            state=row.state,
            completed=sale.ep.completed,
            time=row.txn_time.isoformat(),
        )
    if sale.ec is not None and sale.ec.cryptogram is not None:
        doc.update(cryptogram=sale.ec.cryptogram.cryptogram, atc=sale.ec.cryptogram.atc)
    return doc


def _receipt(args: argparse.Namespace, sale: OneCardSale, terminal_id: str, now: Any) -> Receipt:
    notes: list[str] = []
    if sale.ep is not None:
        row = sale.ep.row
        card_number, when = sale.ep.card.card_number, row.txn_time
        proof = [("TSN", str(row.terminal_seq)), ("TAC", row.tac or "-")]
        if sale.ep.completed:
            notes.append("An interrupted payment was completed: charged once.")
        if not sale.ep.verified:
            notes.append("Card proof not verified by the PSAM: sent for checking.")
    else:
        app = sale.ec
        assert app is not None
        card_number, when = app.pan, now
        crypt = app.cryptogram
        proof = []
        if crypt is not None:
            proof = [("ATC", crypt.atc.hex().upper()), ("TC", crypt.cryptogram.hex().upper())]
        notes.append("Electronic Cash sale: not journaled yet.")
    return sale_receipt(
        card_number,
        terminal_id,
        when,
        sale.amount,
        PAID_FROM[sale.source],
        sale.balance_after,
        proof,
        notes,
        merchant=args.merchant,
    )


def run(args: argparse.Namespace) -> int:
    from terminal.cli.read import load_config, load_store

    rule = _rule(args.pay)
    if args.amount is not None:
        parse_yuan(args.amount)  # a bad amount is refused before anything is opened
    if args.gateway and not args.token:
        raise SystemExit(f"ykt pos: --gateway needs --token-file PATH or ${TOKEN_ENV}")
    reader = open_card_reader(args)
    session = open_session(args, reader)
    terminal_id = session.sam.terminal_id_hex
    config = load_config(args)
    journal = Journal(args.journal)
    uploads = Uploads(args, journal, terminal_id)
    pos = OneCardPos(session, journal, config, load_store(args, config), rule)
    sales = refused = total = 0
    try:
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
                reader.wait_for_card()
            try:
                sale = pos.charge(amount)
            except (
                CardError,
                TransportError,
                MalformedResponse,
                TlvError,
                PaymentRefused,
                BalanceFlagSet,
                CardRefused,
            ) as exc:
                refused += 1
                _refused(args, amount, terminal_id, refusal(exc))
                continue
            sales += 1
            total += amount
            _paid(args, sale, terminal_id, session.now())
            problem = uploads.send()
            if problem:
                print(problem, file=sys.stderr, flush=True)
        problem = uploads.send()
        if problem:
            print(problem, file=sys.stderr, flush=True)
        if not args.json:
            print(
                f"{sales} sale(s), {format_fen(total)}; {refused} refused; journal "
                f"{args.journal}: {len(journal.open_rows())} open, "
                f"{journal.pending_upload()} awaiting upload"
            )
    finally:
        uploads.close()
        journal.close()
    return 0 if refused == 0 else 1


def _paid(args: argparse.Namespace, sale: OneCardSale, terminal_id: str, now: Any) -> None:
    receipt = _receipt(args, sale, terminal_id, now)
    if args.json:
        print_json_line(_document(sale, terminal_id, receipt.card_number))
    else:
        print(receipt.text(), end="", flush=True)


def _refused(args: argparse.Namespace, amount: int, terminal_id: str, why: str) -> None:
    if args.json:
        doc = {"ok": False, "amount_fen": amount, "terminal_id": terminal_id, "refused": why}
        print_json_line(doc)
    else:
        print(f"REFUSED {format_fen(amount)}: {why}", flush=True)
