"""``ykt clearing``: the clearing service simulator and its settlement report.

ykt clearing serve [--db FILE] [--keys FILE | --demo-keys] [--ec-layouts FILE] [--port 8979]
                   [--qr-skew SECONDS] [--qr-max-validity SECONDS]
                   [--qr-root-keys FILE] [--qr-issuers FILE]
ykt clearing settlement --url URL [--day YYYY-MM-DD] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from terminal.cli.common import add_qr_time_options, add_qr_trust_options, qr_time_policy, qr_trust
from terminal.text import arg_int
from terminal.words import say


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "clearing",
        help="run the clearing service simulator (TAC checks, settlement, reconciliation)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csub = p.add_subparsers(dest="clearing_command", metavar="ACTION", required=True)
    s = csub.add_parser("serve", help="serve the clearing HTTP API with uvicorn")
    s.add_argument("--db", default="clearing.db", help="ledger file (default %(default)s)")
    keys = s.add_mutually_exclusive_group()
    keys.add_argument("--keys", metavar="FILE", help="issuer key sets (JSON)")
    keys.add_argument("--demo-keys", action="store_true", help="the demo issuers' test keys")
    s.add_argument(
        "--ec-layouts",
        metavar="FILE",
        help="the EC issuers' AC layouts by BIN (TOML, docs/operators.md); default: every "
        "EC card is read by the software card's layout",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=arg_int, default=8979)
    s.add_argument("--delay", type=float, default=0.0, help="seconds to hold every post")
    add_qr_time_options(s, same_as="every gateway's value")
    add_qr_trust_options(s)
    s.set_defaults(handler=serve)

    t = csub.add_parser("settlement", help="print the settlement table")
    t.add_argument("--url", default="http://127.0.0.1:8979")
    t.add_argument("--day")
    t.add_argument("--json", action="store_true")
    t.set_defaults(handler=settlement)


def _keysets(args: argparse.Namespace) -> list[Any]:
    if args.keys:
        from terminal.crypto.keyset import load_keysets

        return list(load_keysets(args.keys).values())
    from simulators.profiles import DEMO_ISSUERS, demo_keyset

    return [demo_keyset(i) for i in DEMO_ISSUERS.values()]


def _ec_issuers(args: argparse.Namespace) -> list[Any]:
    """The EMV issuers whose TCs clearing checks: the software cards' issuer with the demo
    keys (a key file holds no AC keys)."""
    if args.keys:
        return []
    from simulators.emv_profiles import default_issuer

    return [default_issuer()]


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from simulators.clearing.ac_layouts import load_ec_layouts
    from simulators.clearing.app import create_app
    from simulators.clearing.ledger import Ledger
    from simulators.clearing.verify import TacVerifier

    layouts = load_ec_layouts(args.ec_layouts) if args.ec_layouts else {}
    roots, issuers = qr_trust(args)
    verifier = TacVerifier(
        _keysets(args),
        _ec_issuers(args),
        layouts,
        qr_roots=roots,
        qr_issuers=issuers,
        qr_policy=qr_time_policy(args),
    )
    ledger = Ledger(args.db, verifier)
    print(
        say("serve.clearing", host=args.host, port=args.port, storage=f"SQLite {args.db}"),
        flush=True,
    )
    uvicorn.run(
        create_app(ledger, delay=args.delay), host=args.host, port=args.port, log_level="warning"
    )
    return 0


def settlement(args: argparse.Namespace) -> int:
    import httpx

    from simulators.clearing.report import format_settlement

    params = {"day": args.day} if args.day else {}
    doc = httpx.get(args.url.rstrip("/") + "/v1/settlement", params=params, timeout=30).json()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for line in format_settlement(doc):
            print(line)
    return 0
