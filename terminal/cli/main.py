"""``ykt``: the yikatong command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from terminal.apdu.errors import YikatongError
from terminal.cli.common import resolve_token
from terminal.text import FileError
from terminal.words import LANGS, error_words, say, set_lang

log = logging.getLogger("terminal.cli")

# Each module has register(subparsers); add a module here to add a subcommand.
COMMAND_MODULES = [
    "terminal.cli.demo",
    "terminal.cli.gateway",
    "terminal.cli.clearing",
    "terminal.cli.issue",
    "terminal.cli.kiosk",
    "terminal.cli.pos",
    "terminal.cli.qr",
    "terminal.cli.read",
    "terminal.cli.sim",
    "terminal.cli.subsidy",
    "terminal.cli.campus",
    "terminal.cli.validator",
    "terminal.cli.run",
    "terminal.cli.readers",
]

DESCRIPTION = """\
yikatong - terminal middleware for China's financial IC one cards
(T-Union / JT/T 978 transport cards, resident cards, social security cards).

Commands by who uses them:

 Validator (bus, metro, taxi, bike, coach, parking; campus doors)
  ykt validator            a bus or metro validator: one line per tap (fare, balance)
  ykt run TERMINAL.toml    run a device from its configuration file as a service
                           (ykt upload / ykt journal: send what waits, list the journal)
  ykt qr verify FILE       check a ride QR code offline (ykt sim qr makes one)
 Merchant POS
  ykt pos --amount 12.50   a sale from the T-Union purse or Electronic Cash, a receipt,
                           every sale journaled and uploaded
 Kiosk (self-service)
  ykt kiosk ACTION         balance, top-up, subsidy pickup, loss report (挂失), receipts
 Issuance desk
  ykt issue                personalise blank cards (one, a CSV batch, or the
                           replacement of a lost card)
 Subsidy office
  ykt subsidy check FILE   validate a subsidy roster and print its masked listing
  ykt subsidy import FILE  import a roster into the gateway; review, approve, report
 Operator / card centre
  ykt gateway serve        the card centre's gateway (terminals, loads, hotlist, cards)
  ykt gateway ...          terminals, tokens, hotlist (挂失) administration
  ykt clearing serve       the clearing house
 Developer tools
  ykt demo                 issue software cards, top them up, pay at a POS and a bus,
                           and print balances, logs and a per-terminal summary
  ykt read                 read a card: every application, balances, logs
                           (--replay FILE: the same from a recorded trace)
  ykt readers              list the card readers found (PC/SC, NFC, serial)
  ykt sim                  software cards and PSAMs; ykt sim plug: a virtual reader

Every command that talks to a card takes --reader (sim, replay:FILE, pcsc:NAME,
nfc:usb, nfc:tty:PATH:pn532, nfc:udp:HOST:PORT) and
--trace FILE to record the exchange for replay in a test.
Operator lines are in Chinese or English (--lang zh|en; default from the locale).
Files and environment variables: docs/operators.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ykt", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="diagnostics on stderr (default: warning)",
    )
    parser.add_argument(
        "--lang",
        choices=list(LANGS),
        help="language of operator lines: zh or en (default: from the locale, else en)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    set_lang(args.lang)
    resolve_token(args)
    try:
        return int(args.handler(args) or 0)
    except FileError as exc:
        print(f"ykt: {exc}", file=sys.stderr)
        return 1
    except YikatongError as exc:
        log.info("ykt %s stopped: %s: %s", args.command, type(exc).__name__, exc)
        print(say("error.prefix", command=args.command, text=error_words(exc)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
