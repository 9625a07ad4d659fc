"""Options and helpers shared by subcommands: --reader, --trace, --json, the PSAM options
(--sam-reader, --terminal-id, --sam-state), gateway tokens, the ride-code times and trust."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from terminal.private_files import read_secret_file
from terminal.qr.checks import IssuerRule, QrPolicy, RootKey
from terminal.qr.params import load_issuers, load_root_keys
from terminal.readers.base import Reader
from terminal.readers.spec import open_reader
from terminal.readers.trace import TraceWriter
from terminal.readers.tracing import TracingReader
from terminal.text import arg_code, arg_int

DEFAULT_DB = "sqlite:///gateway.db"
QR_DEFAULTS = QrPolicy()  # the ride-code times gateway and clearing share unless told otherwise


def command_group(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help: str,
    doc: str | None,
    *,
    metavar: str = "SUBCOMMAND",
    required: bool = False,
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:  # type: ignore[type-arg]
    """A command with subcommands (``ykt NAME SUBCOMMAND``), described by its module's
    docstring: its parser and its subcommands (the chosen one in ``args.NAME_command``)."""
    p = sub.add_parser(
        name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return p, p.add_subparsers(dest=f"{name}_command", metavar=metavar, required=required)


def add_db_option(
    parser: argparse.ArgumentParser, *, what: str = "the gateway's storage URL"
) -> None:
    """--db: the gateway's database, $YKT_GATEWAY_DB unless given."""
    parser.add_argument(
        "--db",
        default=os.environ.get("YKT_GATEWAY_DB", DEFAULT_DB),
        help=f"{what} (default: $YKT_GATEWAY_DB or %(default)s)",
    )


def device_config(args: argparse.Namespace) -> dict[str, Any]:
    """The terminal configuration's journal, reader and PSAM fields as the options give
    them (``--card FILE`` or one demo card)."""
    return {
        "journal": args.journal,
        "card_reader": args.reader,
        "sam_reader": args.sam_reader,
        "trace": args.trace,
        "terminal_id": args.terminal_id,
        "sam_state": args.sam_state,
        "cards": [args.card] if args.card else [],
        "demo_cards": 1,
    }


def add_reader_options(parser: argparse.ArgumentParser, *, default: str = "sim") -> None:
    parser.add_argument(
        "--reader",
        default=default,
        metavar="SPEC",
        help="card reader: sim, replay:FILE, pcsc:NAME, nfc:usb, "
        "nfc:tty:PATH:pn532, nfc:udp:HOST:PORT (default: %(default)s)",
    )
    parser.add_argument(
        "--card",
        metavar="FILE",
        help="software card file for the sim reader (default: a fresh demo card)",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        help="record every card exchange to FILE in the replay trace format",
    )


def sim_card_factory(card_file: str | None) -> Callable[[], Any]:
    """Cards for the sim reader come from the simulators (allowed in the CLI only)."""

    def make() -> Any:
        from simulators.files import load_device
        from simulators.profiles import demo_card

        return load_device(card_file) if card_file else demo_card()

    return make


def open_card_reader(args: argparse.Namespace, sim_card: Callable[[], Any] | None = None) -> Reader:
    """The card reader the options name (``sim_card`` overrides the sim reader's card)."""
    factory = sim_card or sim_card_factory(getattr(args, "card", None))
    reader = open_reader(args.reader, sim_card=factory)
    if getattr(args, "trace", None):
        writer = TraceWriter.open(args.trace)
        writer.comment(
            f"ykt {args.command} --reader {args.reader} at {datetime.now():%Y-%m-%d %H:%M:%S}"
        )
        reader = TracingReader(reader, writer)
    return reader


def add_sam_options(parser: argparse.ArgumentParser, *, terminal_id: str) -> None:
    parser.add_argument(
        "--sam-reader", default="sim", metavar="SPEC", help="PSAM reader (default: a software PSAM)"
    )
    parser.add_argument(
        "--terminal-id",
        type=arg_code,
        default=terminal_id,
        help="terminal number of the software PSAM (sim only; default %(default)s)",
    )
    parser.add_argument(
        "--sam-state",
        metavar="PATH",
        help="software PSAM state file (default: <journal>.psam.json, created if missing)",
    )


def to_jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))


def add_token_options(parser: argparse.ArgumentParser, *, env: str, what: str) -> None:
    """--token-file PATH and $ENV for a terminal's gateway token; --token still works but
    warns, because a token in argv is visible to every user of the machine (``ps``)."""
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"read {what} from PATH (default: ${env})",
    )
    parser.add_argument(
        "--token", help=f"{what} in the command line (visible in ps: prefer --token-file)"
    )
    parser.set_defaults(token_env=env)


def resolve_token(args: argparse.Namespace) -> None:
    """Set ``args.token`` from --token-file, then $ENV, then --token (with a warning)."""
    env = getattr(args, "token_env", None)
    if env is None:
        return
    if getattr(args, "token_file", None):
        args.token = read_secret_file(args.token_file)
    elif args.token:
        print(
            f"ykt: warning: --token on the command line is visible to other users (ps); "
            f"use --token-file PATH or ${env}",
            file=sys.stderr,
        )
    else:
        args.token = os.environ.get(env) or None


def print_json_line(value: Any) -> None:
    """One JSON object on one line (a stream of results: one line each)."""
    print(json.dumps(to_jsonable(value), ensure_ascii=False), flush=True)


def add_qr_time_options(parser: argparse.ArgumentParser, same_as: str) -> None:
    """--qr-skew and --qr-max-validity: the two ride-code times the gateway and clearing
    must agree on (``same_as`` names the other side in the help)."""
    parser.add_argument(
        "--qr-skew",
        type=arg_int,
        default=QR_DEFAULTS.future_skew,
        metavar="SECONDS",
        help=f"ride codes: seconds a code may be generated after its ride ({same_as})",
    )
    parser.add_argument(
        "--qr-max-validity",
        type=arg_int,
        default=QR_DEFAULTS.max_validity,
        metavar="SECONDS",
        help=f"ride codes: the longest validity a code may claim ({same_as})",
    )


def qr_time_policy(args: argparse.Namespace) -> QrPolicy:
    """The QrPolicy of --qr-skew and --qr-max-validity (every other value the default)."""
    return QrPolicy(future_skew=args.qr_skew, max_validity=args.qr_max_validity)


def add_qr_trust_options(parser: argparse.ArgumentParser) -> None:
    """--qr-root-keys and --qr-issuers: the ride-code parameter files (the root keys a code's
    chain must verify with, the issuers' signer IDs), the very files the gateway is given on
    /v1/admin/qr-params and its validators apply."""
    parser.add_argument(
        "--qr-root-keys",
        metavar="FILE",
        help="ride codes: root keys, one IDX:HEX128[:YYYY-MM-DD] a line (the gateway's "
        "root_keys file); without it no ride code verifies",
    )
    parser.add_argument(
        "--qr-issuers",
        metavar="FILE",
        help="ride codes: issuers, one ISSUER:PLATFORM[:TICKET[:SIGNER_ID]] a line (the "
        "gateway's issuers file); an issuer not listed signs with the default SM2 ID",
    )


def qr_trust(args: argparse.Namespace) -> tuple[dict[int, RootKey], list[IssuerRule]]:
    """The root keys and issuer rules of --qr-root-keys and --qr-issuers (none when not
    given); a bad file is a FileError ``<file>:<line>: <what>``."""
    roots = load_root_keys(args.qr_root_keys) if args.qr_root_keys else {}
    issuers = list(load_issuers(args.qr_issuers).values()) if args.qr_issuers else []
    return roots, issuers
