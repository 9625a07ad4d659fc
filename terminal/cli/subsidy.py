"""``ykt subsidy check``: validate a subsidy roster (分户清册) and print its 公示 listing.

Pure validation: nothing is stored. Importing, approving and paying rosters belong to
the gateway and come with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from terminal.cli.common import print_json
from terminal.money import format_fen


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "subsidy",
        help="subsidy rosters: validation and the masked publication listing",
        description="Public subsidies (惠民补贴) paid onto cards.",
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
    p.set_defaults(handler=lambda a: p.print_help() or 2)


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
        print(
            f"{report.rows} row(s): {len(report.lines)} accepted "
            f"({format_fen(report.total_fen)}), {len(report.rejected)} rejected"
        )
        for code, item in report.by_item().items():
            amount = format_fen(item["amount_fen"])
            print(f"  {code} {item['name']}: {item['lines']} line(s), {amount}")
        for r in report.rejected:
            print(f"row {r.row}: " + "; ".join(r.reasons))
    return 1 if report.rejected else 0
