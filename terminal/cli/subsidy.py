"""``ykt subsidy``: subsidy rosters (分户清册) - check, import, approve, publish, report.

``check`` is pure validation (nothing stored). The other actions work on the gateway's
database (--db, like ``ykt gateway``): ``import`` stores a roster's valid lines as a
declared roster; ``review``, ``approve`` and ``reject`` move it through the workflow with
the acting person named (--by); ``show`` prints a roster with its audit trail;
``publication`` writes its masked 公示 listing; ``report`` says what was paid and what is
pending. The same operations are on the gateway's admin HTTP API (docs/subsidy.md).
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from terminal.cli.common import print_json
from terminal.money import format_fen
from terminal.text import arg_int

DEFAULT_DB = "sqlite:///gateway.db"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "subsidy",
        help="subsidy rosters: validate, import, approve, publish, paid/pending report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = p.add_subparsers(dest="subsidy_command", metavar="SUBCOMMAND")
    check = ssub.add_parser(
        "check",
        help="validate a roster CSV and report every rejected row",
        description="Validate a roster with the header "
        "name,id_number,card_number,item,amount_fen,period: ID numbers (GB 11643), card "
        "numbers, items from the catalogue, amounts in whole fen, periods, duplicates and "
        "one person one card. Exit status 1 when any row is rejected.",
    )
    check.add_argument("roster", metavar="ROSTER.csv")
    check.add_argument("--catalogue", metavar="FILE", help="TOML or JSON catalogue (default demo)")
    check.add_argument(
        "--registry", metavar="PATH", help="card registry: cards must be active and the holder's"
    )
    check.add_argument("--publication", metavar="FILE", help="write the masked 公示 listing (CSV)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=run_check)

    def db_opt(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--db",
            default=os.environ.get("YKT_GATEWAY_DB", DEFAULT_DB),
            help="the gateway's storage URL (default: $YKT_GATEWAY_DB or %(default)s)",
        )

    imp = ssub.add_parser(
        "import",
        help="import a roster into the gateway (declared); report every rejected row",
        description="Validate a roster as 'check' does, against the gateway's card book "
        "(cards must be active and the holder's), refuse lines already declared in another "
        "roster (same ID number, item and period), and store the valid lines as a roster "
        "in state 'declared'. Exit status 1 when any row is rejected (the valid lines are "
        "imported all the same).",
    )
    imp.add_argument("roster", metavar="ROSTER.csv")
    imp.add_argument("--by", required=True, help="who declares the roster (name or staff id)")
    imp.add_argument("--title", default="", help="a title for the roster")
    imp.add_argument("--catalogue", metavar="FILE", help="TOML or JSON catalogue (default demo)")
    imp.add_argument(
        "--no-card-check", action="store_true", help="do not check cards against the card book"
    )
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    db_opt(imp)
    imp.set_defaults(handler=run_import)

    for name, text in (
        ("review", "declared -> reviewed (not by the declarer)"),
        ("approve", "reviewed -> approved (neither by the declarer nor the reviewer)"),
        ("reject", "declared/reviewed -> rejected; its lines are withdrawn"),
    ):
        q = ssub.add_parser(name, help=text)
        q.add_argument("roster_id", type=arg_int)
        q.add_argument("--by", required=True, help="who does it (name or staff id)")
        if name == "reject":
            q.add_argument("--reason", required=True, help="why")
        else:
            q.add_argument("--note", default="", help="a note for the audit trail")
        q.add_argument("--json", action="store_true")
        db_opt(q)
        q.set_defaults(handler=run_step, step=name)

    ls = ssub.add_parser("list", help="rosters and their states")
    ls.add_argument("--json", action="store_true")
    db_opt(ls)
    ls.set_defaults(handler=run_list)

    show = ssub.add_parser("show", help="a roster, its audit trail and its rejected rows")
    show.add_argument("roster_id", type=arg_int)
    show.add_argument("--json", action="store_true")
    db_opt(show)
    show.set_defaults(handler=run_show)

    pub = ssub.add_parser("publication", help="the masked 公示 listing of a roster (CSV)")
    pub.add_argument("roster_id", type=arg_int)
    pub.add_argument("--out", metavar="FILE", help="write it here (default: stdout)")
    db_opt(pub)
    pub.set_defaults(handler=run_publication)

    rep = ssub.add_parser("report", help="what was paid and what is pending")
    rep.add_argument("--roster", type=arg_int, help="one roster (default: all)")
    rep.add_argument("--json", action="store_true")
    db_opt(rep)
    rep.set_defaults(handler=run_report)
    p.set_defaults(handler=lambda a: p.print_help() or 2)


def _db(args: argparse.Namespace) -> Any:
    from gateway.storage import open_storage

    return open_storage(args.db, pool_size=2)


def _when(ms: int | None) -> str:
    return "-" if ms is None else f"{datetime.fromtimestamp(ms / 1000):%Y-%m-%d %H:%M:%S}"


def _print_report_rows(report: Any) -> None:
    print(
        f"{report.rows} row(s): {len(report.lines)} accepted "
        f"({format_fen(report.total_fen)}), {len(report.rejected)} rejected"
    )
    for code, item in report.by_item().items():
        amount = format_fen(item["amount_fen"])
        print(f"  {code} {item['name']}: {item['lines']} line(s), {amount}")
    for r in report.rejected:
        print(f"row {r.row}: " + "; ".join(r.reasons))


def run_check(args: argparse.Namespace) -> int:
    from gateway.subsidy.catalogue import DEMO_CATALOGUE, load_catalogue
    from gateway.subsidy.publication import publication_csv
    from gateway.subsidy.roster import read_roster, registry_lookup, validate_roster

    catalogue = load_catalogue(args.catalogue or DEMO_CATALOGUE)
    cards = None
    if args.registry:
        from gateway.registry import SqliteCardRegistry

        cards = registry_lookup(SqliteCardRegistry(args.registry).get)
    report = validate_roster(read_roster(args.roster), catalogue, cards=cards)
    if args.publication:
        Path(args.publication).write_text(publication_csv(report), encoding="utf-8")
    if args.json:
        print_json(report.to_json())
    else:
        _print_report_rows(report)
    return 1 if report.rejected else 0


def run_import(args: argparse.Namespace) -> int:
    from gateway.cards import registry_lookup
    from gateway.subsidy.catalogue import DEMO_CATALOGUE, load_catalogue
    from gateway.subsidy.store import import_roster

    db = _db(args)
    try:
        result = import_roster(
            db,
            Path(args.roster).read_bytes(),
            load_catalogue(args.catalogue or DEMO_CATALOGUE),
            declared_by=args.by,
            title=args.title,
            source=Path(args.roster).name,
            cards=None if args.no_card_check else registry_lookup(db),
        )
    finally:
        db.close()
    if args.json:
        print_json(result.to_json())
    else:
        _print_report_rows(result.report)
        if result.roster is None:
            print("nothing imported: no valid line")
        else:
            r = result.roster
            print(f"roster #{r.id} declared by {r.declared_by}: {r.line_count} line(s)")
    return 1 if result.report.rejected else 0


def run_step(args: argparse.Namespace) -> int:
    from gateway.subsidy import store

    db = _db(args)
    try:
        if args.step == "review":
            roster = store.review(db, args.roster_id, args.by, args.note)
        elif args.step == "approve":
            roster = store.approve(db, args.roster_id, args.by, args.note)
        else:
            roster = store.reject(db, args.roster_id, args.by, args.reason)
    finally:
        db.close()
    if args.json:
        print_json(roster.to_json())
    else:
        print(f"roster #{roster.id} is {roster.state} ({args.by})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from gateway.subsidy import store

    db = _db(args)
    try:
        rosters = store.list_rosters(db)
    finally:
        db.close()
    if args.json:
        print_json([r.to_json() for r in rosters])
        return 0
    for r in rosters:
        print(
            f"#{r.id:<5d} {r.state:<9s} {r.line_count:>5d} line(s) {format_fen(r.total_fen):>12s}"
            f"  {r.title}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from gateway.subsidy import store

    db = _db(args)
    try:
        roster = store.get_roster(db, args.roster_id)
        trail = store.events(db, args.roster_id)
        imported = store.stored_report(db, args.roster_id)
    finally:
        db.close()
    if args.json:
        print_json({"roster": roster.to_json(), "events": trail, "import_report": imported})
        return 0
    print(
        f"roster #{roster.id} {roster.title!r} from {roster.source or '-'}: {roster.state}, "
        f"{roster.line_count} line(s), {format_fen(roster.total_fen)}"
    )
    for e in trail:
        note = f"  {e['note']}" if e["note"] else ""
        print(f"  {_when(e['at_ms'])}  {e['action']:<9s} by {e['actor']}{note}")
    for r in imported["rejections"]:
        print(f"  row {r['row']} rejected at import: " + "; ".join(r["reasons"]))
    return 0


def run_publication(args: argparse.Namespace) -> int:
    from gateway.subsidy import store
    from gateway.subsidy.publication import publication_csv

    db = _db(args)
    try:
        text = publication_csv(store.roster_lines(db, args.roster_id))
    finally:
        db.close()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"公示 listing -> {args.out}")
    else:
        print(text, end="")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from gateway.subsidy import pickup, store

    db = _db(args)
    try:
        if args.roster is not None:
            store.get_roster(db, args.roster)
        doc = pickup.payment_report(db, args.roster)
    finally:
        db.close()
    if args.json:
        print_json(doc)
        return 0
    print_payment_report(doc)
    return 0


def print_payment_report(doc: dict[str, Any], out: Any = print) -> None:
    """Totals by status, per roster and overall, then the lines not yet paid."""

    def summary(by: dict[str, dict[str, int]]) -> str:
        parts = [
            f"{name} {v['lines']} ({format_fen(v['amount_fen'])})"
            for name, v in by.items()
            if v["lines"]
        ]
        return ", ".join(parts) or "no lines"

    for r in doc["rosters"]:
        out(f"roster #{r['roster_id']} ({r['state']}): {summary(r['by_status'])}")
    out(f"total: {summary(doc['totals'])}")
    for line in doc["lines"]:
        if line["status"] == "paid":
            continue
        out(
            f"  line {line['line_id']:<5d} {line['status']:<17s} {line['card_number']} "
            f"{line['item']} {line['period']} {format_fen(line['amount_fen'])}"
        )
