"""``ykt kiosk``: the self-service kiosk - balance and history, top-up, subsidy pickup, 挂失.

Every action that moves money goes through the gateway (--gateway URL --token TOKEN, the
kiosk's terminal credentials): the top-up is a normal online load (MAC1 checked by the
gateway's HSM, MAC2, TAC confirmed), the subsidy pickup the same load paying approved
roster lines. Both are built by the runtime's assembly from the options, exactly as ``ykt
run`` builds a kiosk from its file, so every load is journaled (--journal) on the one
credit path. Each action prints a text receipt (or writes it with --receipt FILE).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from terminal.apdu.errors import FileNotFound, YikatongError
from terminal.cli.common import (
    add_reader_options,
    add_sam_options,
    add_token_options,
    device_config,
    open_card_reader,
    print_json,
)
from terminal.epurse import flows
from terminal.epurse.model import CardSnapshot, LogEntry
from terminal.identity import holder_answer
from terminal.money import format_fen, parse_yuan
from terminal.roles.kiosk import Kiosk, KioskConfig
from terminal.roles.receipt import (
    Receipt,
    balance_receipt,
    loss_receipt,
    pickup_receipt,
    top_up_receipt,
)
from terminal.roles.session import TerminalSession
from terminal.runtime.assembly import Terminal
from terminal.runtime.config import TerminalConfig
from terminal.text import arg_code
from terminal.words import say, txn_words

log = logging.getLogger(__name__)

KIOSK_ID = "310000000090"

DESCRIPTION = """\
The self-service kiosk.

  ykt kiosk balance                                   balance and last transactions
  ykt kiosk top-up 50.00 --gateway URL --token T      online top-up through the gateway
  ykt kiosk pickup --gateway URL --token T            pick up approved subsidies (惠民补贴);
                                                      the holder types the ID number
  ykt kiosk report-loss CARDNO IDNUMBER --gateway ... report a card lost (挂失)

The sim reader (default) uses the software card in --card FILE (changes are saved to
it), or a fresh demo card. --reader pcsc:NAME / nfc:... use a real reader. Top-ups and
pickups are journaled in --journal (default kiosk-journal.db): a card pulled mid-load is
finished at its next visit, like at a kiosk under ykt run. Top-up
limits and the purse ceiling come from --config FILE ([kiosk] min_top_up_fen,
max_top_up_fen, max_balance_fen) or the options below; the ceiling is checked before
the card is asked to load. The token is the kiosk's gateway credential (role kiosk), also
read from $YKT_KIOSK_TOKEN.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "kiosk",
        help="self-service kiosk: balance, top-up, subsidy pickup, loss report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ksub = p.add_subparsers(dest="kiosk_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser, *, card: bool = True, loads: bool = False) -> None:
        if card:
            add_reader_options(q)
            q.add_argument("--pin", help="card PIN, when the card asks for one to load")
        q.add_argument("--gateway", metavar="URL", help="the gateway (needed to move money)")
        add_token_options(q, env="YKT_KIOSK_TOKEN", what="the kiosk's gateway token")
        if loads:
            q.add_argument("--journal", default="kiosk-journal.db", metavar="PATH")
            add_sam_options(q, terminal_id=KIOSK_ID)
        else:
            q.add_argument("--terminal-id", default=KIOSK_ID, help="this kiosk's terminal id")
        q.add_argument("--config", metavar="FILE", help="TOML with a [kiosk] table of limits")
        q.add_argument("--max-balance", metavar="YUAN", help="purse ceiling (default 1000.00)")
        q.add_argument("--receipt", metavar="FILE", help="write the receipt here, not stdout")
        q.add_argument("--json", action="store_true", help="print JSON instead of a receipt")

    b = ksub.add_parser("balance", help="balance and the last transactions")
    common(b)
    b.set_defaults(handler=run_balance)

    t = ksub.add_parser("top-up", help="online top-up through the gateway")
    t.add_argument("amount", metavar="YUAN", help="e.g. 50 or 50.00")
    common(t, loads=True)
    t.add_argument("--min-top-up", metavar="YUAN", help="smallest top-up (default 1.00)")
    t.add_argument("--max-top-up", metavar="YUAN", help="largest top-up (default 1000.00)")
    t.set_defaults(handler=run_top_up)

    u = ksub.add_parser("pickup", help="load the card's approved subsidies")
    common(u, loads=True)
    u.add_argument(
        "--holder",
        type=arg_holder,
        metavar="ID",
        help="the holder's ID number (asked for when interactive; on the command line it is "
        "visible to other users, so prefer the prompt)",
    )
    u.set_defaults(handler=run_pickup)

    lost = ksub.add_parser("report-loss", help="report a card lost (挂失); no card needed")
    lost.add_argument("card_number", type=arg_code, help="the 19 printed digits")
    lost.add_argument("id_number", help="the holder's ID number")
    common(lost, card=False)
    lost.set_defaults(handler=run_report_loss)


# -- wiring ---------------------------------------------------------------------------------
def _config(args: argparse.Namespace) -> KioskConfig:
    cfg = KioskConfig.from_toml(args.config) if args.config else KioskConfig()
    values = {
        "min_top_up": cfg.min_top_up,
        "max_top_up": cfg.max_top_up,
        "max_balance": cfg.max_balance,
    }
    for name in values:
        text = getattr(args, name, None)
        if text:
            values[name] = parse_yuan(text)
    return KioskConfig(**values)


def _client(args: argparse.Namespace) -> Any:
    from terminal.uplink import GatewayClient

    if not args.gateway or not args.token:
        raise SystemExit(f"ykt kiosk {args.kiosk_command}: needs --gateway URL and --token")
    return GatewayClient(args.gateway, args.token)


def config_of(args: argparse.Namespace) -> TerminalConfig:
    """The terminal configuration these options describe (what ``ykt run`` reads from a file)."""
    limits = _config(args)
    return TerminalConfig(
        role="kiosk",
        **device_config(args),
        gateway=args.gateway,
        token=args.token,
        min_top_up=limits.min_top_up,
        max_top_up=limits.max_top_up,
        max_balance=limits.max_balance,
        pickup=args.kiosk_command == "pickup",
    )


def _kiosk(args: argparse.Namespace) -> Terminal:
    """The kiosk assembled from the options, its card in the field and its journal's loads
    whose confirmation the gateway has not acknowledged sent again."""
    from terminal.cli.sim_devices import SoftwareDevices
    from terminal.runtime.assembly import assemble

    if not args.gateway or not args.token:
        raise SystemExit(f"ykt kiosk {args.kiosk_command}: needs --gateway URL and --token")
    terminal = assemble(config_of(args), SoftwareDevices())
    try:
        if terminal.cards:
            terminal.card_reader.insert(terminal.cards[0])  # type: ignore[attr-defined]
        else:
            print("put the card on the reader", file=sys.stderr, flush=True)
            terminal.reader.wait_for_card()
        kiosk: Kiosk = terminal.role
        assert kiosk.credits is not None
        kiosk.credits.recover_without_card()
    except BaseException:
        terminal.close()
        raise
    return terminal


def _emit(args: argparse.Namespace, receipt: Receipt, doc: dict[str, Any]) -> None:
    if args.json:
        print_json(doc)
        return
    text = receipt.text()
    if args.receipt:
        Path(args.receipt).write_text(text, encoding="utf-8")
        print(f"receipt -> {args.receipt}")
    else:
        print(text, end="")


def _history(entries: list[LogEntry]) -> list[str]:
    out = [say("receipt.history")] if entries else [say("receipt.no_history")]
    for e in entries[:5]:
        when = f"{e.when:%m-%d %H:%M}" if e.when else "-"
        out.append(f"  {when} {txn_words(e.txn_type):<13s}{format_fen(e.signed_amount):>11s}")
    return out


def _snapshot_json(snap: CardSnapshot) -> dict[str, Any]:
    return {
        "card_number": snap.info.card_number,
        "balance_fen": snap.balance,
        "log": [
            {
                "atc": e.atc,
                "type": e.type_name,
                "amount_fen": e.signed_amount,
                "terminal_id": e.terminal_id.hex().upper(),
                "when": e.when.isoformat() if e.when else None,
            }
            for e in snap.log
        ],
    }


def _no_epurse(session: TerminalSession, args: argparse.Namespace) -> SystemExit:
    """A card without the T-Union purse (a social security or bank card): say so, and what
    its financial application holds, read as ``ykt read`` reads it."""
    from terminal.roles.inspect import inspect_card
    from terminal.runtime.assembly import ca_store, kernel_config

    ec = None
    try:
        config = kernel_config(None, trust_test_keys=args.reader == "sim", card_reader=args.reader)
        report = session.run(
            inspect_card(config, ca_store(config, None), interface="contact", fallback=True)
        )
        ec = next(
            (a.emv.ec.balance for a in report.apps if a.emv is not None and a.emv.ec.present),
            None,
        )
    except YikatongError as exc:
        log.info("kiosk: the card's other applications could not be read: %s", exc)
    more = (
        say("kiosk.no_epurse.ec", balance=format_fen(ec))
        if ec is not None
        else say("kiosk.no_epurse.none")
    )
    return SystemExit(f"ykt kiosk: {say('kiosk.no_epurse', more=more)}")


# -- actions --------------------------------------------------------------------------------
def run_balance(args: argparse.Namespace) -> int:
    reader = open_card_reader(args)
    if args.reader != "sim":
        print("put the card on the reader", file=sys.stderr, flush=True)
        reader.wait_for_card()
    session = TerminalSession(reader)
    try:
        snap = session.run(flows.read_card())
    except FileNotFound as exc:
        log.info("kiosk: no e-purse on the card: %s", exc)
        raise _no_epurse(session, args) from None
    receipt = balance_receipt(
        snap.info.card_number,
        bytes.fromhex(args.terminal_id),
        datetime.now(),
        snap.balance,
        _history(snap.log),
    )
    _emit(args, receipt, _snapshot_json(snap))
    return 0


def run_top_up(args: argparse.Namespace) -> int:
    amount = parse_yuan(args.amount)
    terminal = _kiosk(args)
    try:
        try:
            top = terminal.role.top_up(amount, pin=args.pin)
        except FileNotFound as exc:
            log.info("kiosk: no e-purse on the card: %s", exc)
            raise _no_epurse(terminal.role.session, args) from None
    finally:
        terminal.close()
    r = top.result
    doc = {
        "card_number": top.card_number,
        "amount_fen": r.request.amount,
        "balance_fen": r.balance_after,
        "tac": r.tac.hex().upper(),
        "reference": r.authorization.reference,
        "terminal_id": r.request.terminal_id.hex().upper(),
        "time": r.authorization.when.isoformat(),
        "confirmed": top.credit.confirmed,
    }
    _emit(args, top_up_receipt(top.card_number, r), doc)
    return 0


def arg_holder(text: str) -> str:
    try:
        return holder_answer(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _holder(args: argparse.Namespace) -> str | None:
    """The holder's answer: ``--holder``, or typed at the prompt (not echoed)."""
    if args.holder is not None:
        return str(args.holder)
    if not sys.stdin.isatty():
        return None
    try:
        return holder_answer(getpass.getpass("the holder's ID number: "))
    except ValueError as exc:
        print(f"ykt kiosk pickup: {exc}", file=sys.stderr)
        return None


def run_pickup(args: argparse.Namespace) -> int:
    holder = _holder(args)
    if holder is None:
        print(
            "ykt kiosk pickup: the holder must type their ID number (--holder, or at the prompt)",
            file=sys.stderr,
        )
        return 2
    terminal = _kiosk(args)
    try:
        kiosk: Kiosk = terminal.role
        got = kiosk.pick_up(holder, pin=args.pin)
    finally:
        terminal.close()
    doc = {
        "card_number": got.card_number,
        "message": got.message(),
        "paid": got.paid,
        "paid_fen": got.paid_fen,
        "completed": got.completed,
        "left": got.left,
        "awaiting_approval": got.awaiting,
        "balance_fen": got.balance_after,
        "tac": got.load.tac.hex().upper() if got.load else None,
        "reference": got.load.authorization.reference if got.load else None,
    }
    receipt = pickup_receipt(
        got.card_number, kiosk.terminal_id, datetime.now(), got.load, got.paid, [got.message()]
    )
    _emit(args, receipt, doc)
    return 0


def run_report_loss(args: argparse.Namespace) -> int:
    from terminal.roles.kiosk_host import report_loss

    client = _client(args)
    try:
        doc = report_loss(client, args.card_number, args.id_number)
    finally:
        client.close()
    receipt = loss_receipt(
        args.card_number, bytes.fromhex(args.terminal_id), datetime.now(), doc["hotlist_version"]
    )
    _emit(args, receipt, doc)
    return 0
