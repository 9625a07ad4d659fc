"""``ykt gateway``: run the gateway, a forwarder worker, and its admin commands.

  ykt gateway serve --db URL [--keys FILE | --demo-keys] [--clearing URL]
  ykt gateway forward --db URL --clearing URL      a forwarder-only worker process
  ykt gateway terminal add|revoke|rotate|list ...  the terminal registry
  ykt gateway hotlist add|remove|show ...          挂失 / 解挂
  ykt gateway reconcile --db URL --clearing URL    what clearing accepted vs what was sent
  ykt gateway quarantine --db URL                  rides stored twice for one code, taken out
  ykt gateway conflicts --db URL [--terminal ID]   records held aside: other content, same id
  ykt gateway late-after-carry --db URL [--card NUMBER]
                                                   a replaced card's purchases uploaded late
  ykt gateway numbers stale|release|releases ...   card numbers claimed and never pushed

--db takes sqlite:///FILE (default sqlite:///gateway.db) or postgresql://...
The admin API (/v1/admin) is enabled by a token in --admin-token-file PATH or
$YKT_ADMIN_TOKEN (never on the command line, where `ps` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
from typing import Any

from terminal.cli.common import (
    add_db_option,
    add_qr_time_options,
    qr_time_policy,
    read_secret_file,
)
from terminal.text import arg_int
from terminal.words import say

ADMIN_TOKEN_ENV = "YKT_ADMIN_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "gateway",
        help="run the gateway (batch ingest, hotlist, online load, forwarder) and admin it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gsub = p.add_subparsers(dest="gateway_command", metavar="ACTION", required=True)

    s = gsub.add_parser("serve", help="serve the HTTP API with uvicorn")
    add_db_option(s, what="storage URL")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=arg_int, default=8978)
    keys = s.add_mutually_exclusive_group()
    keys.add_argument("--keys", metavar="FILE", help="issuer key sets (JSON) for the HSM")
    keys.add_argument("--demo-keys", action="store_true", help="use the demo issuers' test keys")
    s.add_argument("--clearing", metavar="URL", help="clearing service to forward to")
    s.add_argument("--gateway-id", default="gateway")
    s.add_argument(
        "--forwarders", type=arg_int, default=1, help="forwarder threads (with --clearing)"
    )
    s.add_argument("--lease-ms", type=arg_int, default=30_000, help="forwarding lease (ms)")
    s.add_argument("--forward-batch", type=arg_int, default=500, help="records per clearing post")
    s.add_argument("--pool", type=arg_int, default=8, help="PostgreSQL connections per worker")
    s.add_argument(
        "--workers",
        type=arg_int,
        default=None,
        help="worker processes (default: one per CPU; forwarders run in the first)",
    )
    s.add_argument("--max-batch", type=arg_int, default=1000, help="records per upload at most")
    s.add_argument(
        "--admin-token-file",
        metavar="PATH",
        help=f"enables /v1/admin with the token in PATH (default: ${ADMIN_TOKEN_ENV})",
    )
    s.add_argument("--admin-token", help=argparse.SUPPRESS)
    s.add_argument(
        "--subsidy-catalogue", metavar="FILE", help="subsidy items, TOML or JSON (default: demo)"
    )
    s.add_argument(
        "--no-subsidy-card-check",
        action="store_true",
        help="import rosters without checking their cards against the card book",
    )
    banks = s.add_mutually_exclusive_group()
    banks.add_argument(
        "--bank-key",
        metavar="FILE",
        help="the agent bank's key file: how its result files are signed (docs/subsidy.md)",
    )
    banks.add_argument(
        "--banks",
        metavar="FILE",
        help="several agent banks: codes, names, key files, formats, rules (docs/subsidy.md)",
    )
    s.add_argument(
        "--library-limits",
        metavar="FILE",
        help="books a person may hold at once: site = N, [groups] name = N (docs/campus.md)",
    )
    add_qr_time_options(s, same_as="clearing's value")
    s.set_defaults(handler=serve)

    f = gsub.add_parser("forward", help="run only the forwarder (one more worker process)")
    add_db_option(f, what="storage URL")
    f.add_argument("--clearing", metavar="URL", required=True)
    f.add_argument("--gateway-id", default="gateway")
    f.add_argument("--lease-ms", type=arg_int, default=30_000)
    f.add_argument("--batch", type=arg_int, default=500)
    f.add_argument("--once", action="store_true", help="drain what is due, then exit")
    f.set_defaults(handler=forward)

    t = gsub.add_parser("terminal", help="terminal registry")
    tsub = t.add_subparsers(dest="terminal_command", metavar="ACTION", required=True)
    ta = tsub.add_parser("add", help="register a terminal; prints its token once")
    add_db_option(ta, what="storage URL")
    ta.add_argument("terminal_id", help="PSAM terminal id, 12 hex digits")
    ta.add_argument("--operator", required=True, help="operator the terminal belongs to")
    ta.add_argument("--role", default="pos", help="pos, validator, kiosk, issuance")
    ta.add_argument("--name", default="")
    ta.set_defaults(handler=terminal_add)
    for name, handler, text in (
        ("revoke", terminal_revoke, "refuse this terminal from now on"),
        ("rotate", terminal_rotate, "issue a new token (the old one stops working)"),
    ):
        q = tsub.add_parser(name, help=text)
        add_db_option(q, what="storage URL")
        q.add_argument("terminal_id")
        q.set_defaults(handler=handler)
    tl = tsub.add_parser("list", help="list terminals")
    add_db_option(tl, what="storage URL")
    tl.set_defaults(handler=terminal_list)

    h = gsub.add_parser("hotlist", help="hotlist (挂失 add / 解挂 remove)")
    hsub = h.add_subparsers(dest="hotlist_command", metavar="ACTION", required=True)
    for action in ("add", "remove"):
        q = hsub.add_parser(
            action, help=f"{action} a card ({'挂失' if action == 'add' else '解挂'})"
        )
        add_db_option(q, what="storage URL")
        q.add_argument(
            "card",
            nargs="+",
            metavar="CARD",
            help="the 19-digit card number (as printed), or ISSUER_ID SERIAL (16 hex digits "
            "each: the application's issuer id and serial)",
        )
        q.add_argument("--reason", default="")
        q.set_defaults(handler=hotlist_change, action=action)
    hs = hsub.add_parser("show", help="changes after a version")
    add_db_option(hs, what="storage URL")
    hs.add_argument("--since", type=arg_int, default=0)
    hs.set_defaults(handler=hotlist_show)

    r = gsub.add_parser("reconcile", help="compare posted records with clearing's books")
    add_db_option(r, what="storage URL")
    r.add_argument("--clearing", metavar="URL", required=True)
    r.add_argument("--gateway-id", default="gateway")
    r.add_argument("--day", help="business day YYYY-MM-DD (default: all)")
    r.set_defaults(handler=reconcile)

    qr = gsub.add_parser("quarantine", help="rides stored twice for one code, taken out")
    add_db_option(qr, what="storage URL")
    qr.set_defaults(handler=quarantine)

    cf = gsub.add_parser("conflicts", help="records held aside: other content, same identity")
    add_db_option(cf, what="storage URL")
    cf.add_argument("--terminal", metavar="ID", help="one terminal's only")
    cf.set_defaults(handler=show_conflicts)

    lc = gsub.add_parser(
        "late-after-carry", help="replaced cards' purchases uploaded after the carry, by card"
    )
    add_db_option(lc, what="storage URL")
    lc.add_argument("--card", metavar="NUMBER", help="one lost or replacement card's only")
    lc.set_defaults(handler=show_late_after_carry)

    _register_numbers(gsub)

    m = gsub.add_parser("migrate", help="create or upgrade the schema")
    add_db_option(m, what="storage URL")
    m.set_defaults(handler=migrate)


def _register_numbers(gsub: Any) -> None:
    """``ykt gateway numbers``: claims a desk made and never pushed a card for."""
    from gateway.numbers import STALE_CLAIM_MS

    n = gsub.add_parser("numbers", help="card number claims a desk never pushed a card for")
    nsub = n.add_subparsers(dest="numbers_command", metavar="ACTION", required=True)
    hours = STALE_CLAIM_MS // 3_600_000
    for name, text in (
        ("stale", "claims with no card pushed after --older-than hours"),
        ("release", "release a stale claim so the holder can be issued at another desk"),
        ("releases", "released claims: who, when and why"),
    ):
        q = nsub.add_parser(name, help=text)
        add_db_option(q, what="storage URL")
        if name != "releases":
            q.add_argument("--older-than", type=arg_int, default=hours, metavar="HOURS")
        if name == "release":
            q.add_argument("card", metavar="CARD", help="the 19-digit card number")
            q.add_argument("--by", required=True, help="who at the card centre releases it")
            q.add_argument("--reason", required=True, help="why (which desk went away)")
        q.set_defaults(handler=numbers_command, numbers_step=name)


def _db(args: argparse.Namespace, pool: int = 8) -> Any:
    from gateway.storage import open_storage

    return open_storage(args.db, pool_size=pool)


def _hsm(args: argparse.Namespace) -> Any:
    from gateway.hsm import HostSecurityModule

    if args.keys:
        from terminal.crypto.keyset import load_keysets

        return HostSecurityModule(load_keysets(args.keys).values())
    if args.demo_keys:
        from simulators.profiles import DEMO_ISSUERS, demo_keyset

        return HostSecurityModule(demo_keyset(i) for i in DEMO_ISSUERS.values())
    return None


def admin_token(args: argparse.Namespace) -> str | None:
    """The admin token from --admin-token-file or $YKT_ADMIN_TOKEN; never from argv, where
    every user of the machine could read it in ``ps``."""
    if args.admin_token is not None:
        raise SystemExit(
            "ykt gateway serve: --admin-token would show the token to every user (ps); "
            f"use --admin-token-file PATH or ${ADMIN_TOKEN_ENV}"
        )
    if args.admin_token_file:
        return read_secret_file(args.admin_token_file)
    return os.environ.get(ADMIN_TOKEN_ENV) or None


def serve(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway import workers
    from gateway.app import GatewaySettings, create_app
    from gateway.campus.library import LoanLimits, load_loan_limits
    from gateway.subsidy.bank import load_bank_key, load_banks

    settings = GatewaySettings(
        gateway_id=args.gateway_id,
        admin_token=admin_token(args),
        clearing_url=args.clearing,
        forwarders=args.forwarders,
        lease_ms=args.lease_ms,
        forward_batch=args.forward_batch,
        max_batch_records=args.max_batch,
        subsidy_catalogue=args.subsidy_catalogue,
        subsidy_check_cards=not args.no_subsidy_card_check,
        bank_key=load_bank_key(args.bank_key) if args.bank_key else None,
        banks=load_banks(args.banks) if args.banks else None,
        library=load_loan_limits(args.library_limits) if args.library_limits else LoanLimits(),
        qr=qr_time_policy(args),
    )
    count = workers.default_workers() if args.workers is None else max(1, args.workers)
    hsm = _hsm(args)
    _db(args, 1).close()  # migrated once, before any worker opens its own handle

    def make_app(index: int) -> Any:
        own = settings if index == 0 else dataclasses.replace(settings, forwarders=0)
        return create_app(_db(args, args.pool), hsm=hsm, settings=own)

    keys = args.keys or ("demo test keys" if args.demo_keys else say("serve.none"))
    admin = say("serve.on") if settings.admin_token else say("serve.off")
    print(
        say(
            "serve.gateway",
            host=args.host,
            port=args.port,
            storage=storage_words(args.db),
            keys=keys,
            admin=admin,
        ),
        flush=True,
    )
    return workers.serve(make_app, args.host, args.port, count)


def storage_words(url: str) -> str:
    """Where a storage URL keeps its data, without the password in it."""
    if "://" not in url:
        return f"SQLite {url}"
    scheme, rest = url.split("://", 1)
    return f"{scheme} {rest.split('@')[-1]}"


def forward(args: argparse.Namespace) -> int:
    from gateway.forwarder import Forwarder

    fwd = Forwarder(
        _db(args, 2),
        args.clearing,
        gateway_id=args.gateway_id,
        lease_ms=args.lease_ms,
        batch_size=args.batch,
    )
    if args.once:
        print(json.dumps({"posted": fwd.drain()}))
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fwd.start()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    fwd.stop()
    return 0


def terminal_add(args: argparse.Namespace) -> int:
    from gateway.auth import register_terminal

    token = register_terminal(
        _db(args), args.terminal_id, args.operator, role=args.role, name=args.name
    )
    print(token)
    return 0


def terminal_revoke(args: argparse.Namespace) -> int:
    from gateway.auth import revoke_terminal

    revoke_terminal(_db(args), args.terminal_id)
    print(f"terminal {args.terminal_id.upper()} revoked")
    return 0


def terminal_rotate(args: argparse.Namespace) -> int:
    from gateway.auth import rotate_token

    print(rotate_token(_db(args), args.terminal_id))
    return 0


def terminal_list(args: argparse.Namespace) -> int:
    from gateway.auth import list_terminals

    for t in list_terminals(_db(args)):
        state = "revoked" if t.revoked else "active"
        print(f"{t.terminal_id}  {t.operator_id:<12s} {t.role:<10s} {state:<8s} {t.name}")
    return 0


def hotlist_change(args: argparse.Namespace) -> int:
    from gateway.cards import card_number_of, get_card
    from gateway.errors import Invalid, NotFound
    from gateway.hotlist import change

    db = _db(args)
    if len(args.card) == 1:
        card = get_card(db, card_number_of(args.card[0]))
        if card is None:
            raise NotFound("unknown_card", f"card {args.card[0]} is not in the card book")
        issuer_id, serial = card.issuer_id, card.serial
    elif len(args.card) == 2:
        issuer_id, serial = args.card
    else:
        raise Invalid("bad_card", "give the card number, or the issuer id and the serial")
    version = change(db, args.action, issuer_id, serial, reason=args.reason, actor="cli")
    print("no change" if version is None else f"hotlist version {version}")
    return 0


def hotlist_show(args: argparse.Namespace) -> int:
    from gateway.hotlist import delta

    latest, changes = delta(_db(args), args.since)
    print(f"hotlist version {latest}")
    for c in changes:
        print(f"  v{c.version:<6d} {c.action:<6s} {c.issuer_id} {c.card_serial}  {c.reason}")
    return 0


def reconcile(args: argparse.Namespace) -> int:
    from gateway.reconcile import reconcile as run

    report = run(_db(args), args.clearing, args.gateway_id, args.day)
    print(json.dumps(report, indent=2))
    return 0 if report["matched"] else 1


def quarantine(args: argparse.Namespace) -> int:
    from gateway.reconcile import quarantined_rides

    print(json.dumps({"rides": quarantined_rides(_db(args))}, indent=2, ensure_ascii=False))
    return 0


def show_conflicts(args: argparse.Namespace) -> int:
    from gateway.conflicts import held

    found = held(_db(args), terminal_id=args.terminal)
    print(json.dumps({"conflicts": found}, indent=2, ensure_ascii=False))
    return 0


def show_late_after_carry(args: argparse.Namespace) -> int:
    from gateway.carried_late import late_after_carry

    found = late_after_carry(_db(args), card=args.card)
    print(json.dumps(found, indent=2, ensure_ascii=False))
    return 0


def numbers_command(args: argparse.Namespace) -> int:
    from gateway import numbers
    from gateway.cards import card_number_of

    db = _db(args)
    if args.numbers_step == "stale":
        doc: Any = numbers.stale_claims(db, args.older_than * 3_600_000)
    elif args.numbers_step == "release":
        age = args.older_than * 3_600_000
        doc = numbers.release(db, card_number_of(args.card), args.by, args.reason, age)
    else:
        doc = numbers.releases(db)
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


def migrate(args: argparse.Namespace) -> int:
    _db(args)
    print(f"schema up to date: {args.db.split('@')[-1]}")
    return 0
