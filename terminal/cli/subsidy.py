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
from datetime import date, datetime
from pathlib import Path
from typing import Any

from terminal.cli.common import add_db_option, command_group, print_json
from terminal.money import format_fen
from terminal.text import arg_int, code


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p, ssub = command_group(
        sub,
        "subsidy",
        "subsidy rosters: validate, import, approve, publish, paid/pending report",
        __doc__,
    )
    check = ssub.add_parser(
        "check",
        help="validate a roster (CSV or XLSX) and report every rejected row",
        description="Validate a roster (CSV in UTF-8 or GBK, or XLSX) with the Chinese header "
        "姓名,身份证号码,一卡通卡号,补贴项目,金额(元),发放期间 (amounts in yuan) or "
        "name,id_number,card_number,item,amount_fen,period (whole fen), optionally "
        "户主姓名,户主身份证号码,乡镇(街道),村(社区),主管部门: ID numbers (GB 11643), card "
        "numbers, catalogue items, amounts, periods, duplicates, exclusive items and one "
        "person one card (docs/subsidy.md). Exit status 1 when any row is rejected.",
    )
    check.add_argument("roster", metavar="ROSTER.csv|xlsx")
    check.add_argument("--catalogue", metavar="FILE", help="TOML or JSON catalogue (default demo)")
    check.add_argument(
        "--registry", metavar="PATH", help="card registry: cards must be active and the holder's"
    )
    check.add_argument("--publication", metavar="FILE", help="write the masked 公示 listing (CSV)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=run_check)

    imp = ssub.add_parser(
        "import",
        help="import a roster into the gateway (declared); report every rejected row",
        description="Validate a roster as 'check' does, against the gateway's card book "
        "(cards must be active and the holder's), refuse lines already declared in another "
        "roster (same ID number, item and period), and store the valid lines as a roster "
        "in state 'declared'. Exit status 1 when any row is rejected (the valid lines are "
        "imported all the same).",
    )
    imp.add_argument("roster", metavar="ROSTER.csv|xlsx")
    imp.add_argument("--by", required=True, help="who declares the roster (name or staff id)")
    imp.add_argument("--title", default="", help="a title for the roster")
    imp.add_argument("--catalogue", metavar="FILE", help="TOML or JSON catalogue (default demo)")
    imp.add_argument(
        "--no-card-check", action="store_true", help="do not check cards against the card book"
    )
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_option(imp)
    imp.set_defaults(handler=run_import)

    for name, text in (
        ("review", "declared -> reviewed (not by the declarer)"),
        (
            "approve",
            "reviewed and 公示 done -> approved (neither by the declarer nor the reviewer; "
            "after the display period, no open objection, sign-off recorded)",
        ),
        ("reject", "declared/reviewed -> rejected; its lines are withdrawn"),
        ("send", "approved -> sent to finance (the agent bank may then be paid)"),
    ):
        q = ssub.add_parser(name, help=text)
        q.add_argument("roster_id", type=arg_int)
        q.add_argument("--by", required=True, help="who does it (name or staff id)")
        if name == "reject":
            q.add_argument("--reason", required=True, help="why")
        else:
            q.add_argument("--note", default="", help="a note for the audit trail")
        q.add_argument("--json", action="store_true")
        add_db_option(q)
        q.set_defaults(handler=run_step, step=name)

    ls = ssub.add_parser("list", help="rosters and their states")
    ls.add_argument("--json", action="store_true")
    add_db_option(ls)
    ls.set_defaults(handler=run_list)

    show = ssub.add_parser("show", help="a roster, its audit trail and its rejected rows")
    show.add_argument("roster_id", type=arg_int)
    show.add_argument("--json", action="store_true")
    add_db_option(show)
    show.set_defaults(handler=run_show)

    put = ssub.add_parser("publish", help="put a reviewed roster on display (公示)")
    put.add_argument("roster_id", type=arg_int)
    put.add_argument("--from", dest="starts_on", required=True, type=arg_date, help="YYYY-MM-DD")
    put.add_argument("--to", dest="ends_on", required=True, type=arg_date, help="YYYY-MM-DD")
    put.add_argument("--place", default="", help="where the notice hangs")
    put.add_argument("--by", required=True, help="who publishes it")
    add_db_option(put)
    put.set_defaults(handler=run_gongshi, step="publish")
    obj = ssub.add_parser("object", help="record an objection against a roster row during 公示")
    obj.add_argument("roster_id", type=arg_int)
    obj.add_argument("--row", type=arg_int, required=True, help="the roster row objected to")
    obj.add_argument("--reason", required=True)
    obj.add_argument("--by", required=True, help="who records it")
    add_db_option(obj)
    obj.set_defaults(handler=run_gongshi, step="object")
    res = ssub.add_parser("resolve", help="uphold (line withdrawn) or dismiss an objection")
    res.add_argument("objection_id", type=arg_int)
    res.add_argument("--outcome", choices=("upheld", "dismissed"), required=True)
    res.add_argument("--note", required=True, help="how it was checked")
    res.add_argument("--by", required=True)
    add_db_option(res)
    res.set_defaults(handler=run_gongshi, step="resolve")
    sig = ssub.add_parser("signoff", help="record the residents' sign-off (群众签字认可)")
    sig.add_argument("roster_id", type=arg_int)
    sig.add_argument("--signatures", type=arg_int, required=True, help="how many signed")
    sig.add_argument("--note", default="")
    sig.add_argument("--by", required=True, help="who collected the signed sheet")
    add_db_option(sig)
    sig.set_defaults(handler=run_gongshi, step="signoff")

    pub = ssub.add_parser("publication", help="the masked 公示 listing (CSV, XLSX or HTML)")
    pub.add_argument("roster_id", type=arg_int)
    pub.add_argument("--format", choices=("csv", "xlsx", "html"), default="csv")
    pub.add_argument("--out", metavar="FILE", help="write it here (default: stdout; CSV only)")
    add_db_option(pub)
    pub.set_defaults(handler=run_publication)

    rep = ssub.add_parser("report", help="what was paid and what is pending")
    rep.add_argument("--roster", type=arg_int, help="one roster (default: all)")
    rep.add_argument("--json", action="store_true")
    add_db_option(rep)
    rep.set_defaults(handler=run_report)
    _register_bank(ssub, add_db_option)
    _register_audit(ssub, add_db_option)
    p.set_defaults(handler=lambda a: p.print_help() or 2)


def _register_bank(ssub: Any, db_opt: Any) -> None:
    """``ykt subsidy bank batch|file|result|track|funds``: the agent bank (代发)."""
    b = ssub.add_parser("bank", help="agent bank: payment files, result files, tracking, funds")
    bsub = b.add_subparsers(dest="bank_command", metavar="ACTION")
    q = bsub.add_parser("batch", help="a payment batch of the lines sent to finance")
    q.add_argument("--by", required=True, help="who builds it")
    q.add_argument("--roster", type=arg_int, action="append", help="only this roster (repeat)")
    q.add_argument("--reissue", metavar="BATCH", help="send this batch's failed lines again")
    q.add_argument("--bank", metavar="CODE", help="the agent bank it goes to (with --banks)")
    q.add_argument("--banks", metavar="FILE", help="the office's agent banks (docs/subsidy.md)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(bank_step="batch")
    q = bsub.add_parser("file", help="write a batch's payment file")
    q.add_argument("batch")
    q.add_argument("--format", choices=("csv", "fixed"), default="csv")
    q.add_argument("--out", metavar="FILE", required=True)
    q.set_defaults(bank_step="file")
    q = bsub.add_parser("result", help="import the bank's result file (all or nothing)")
    q.add_argument("file")
    q.add_argument("--by", required=True, help="who imports it")
    keys = q.add_mutually_exclusive_group(required=True)
    keys.add_argument("--bank-key", metavar="FILE", help="the agent bank's key file")
    keys.add_argument("--banks", metavar="FILE", help="the office's agent banks (several)")
    q.add_argument(
        "--signature", metavar="FILE", help="the bank's MAC of the file (banks that sign apart)"
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(bank_step="result")
    q = bsub.add_parser("track", help="bank lines: paid, failed, sent or overdue")
    q.add_argument("--batch")
    q.add_argument("--holidays", metavar="FILE", help="holiday list (docs/subsidy.md)")
    q.add_argument("--today", type=arg_date, help="the day to judge overdue lines on")
    q.add_argument("--json", action="store_true")
    q.set_defaults(bank_step="track")
    q = bsub.add_parser("funds", help="subsidy funds per item and period; top-ups apart")
    q.add_argument("--json", action="store_true")
    q.set_defaults(bank_step="funds")
    for sp in bsub.choices.values():
        add_db_option(sp)
        sp.set_defaults(handler=run_bank)
    b.set_defaults(handler=lambda a: b.print_help() or 2)


def run_bank(args: argparse.Namespace) -> int:
    from gateway.subsidy import bank

    db = _db(args)
    try:
        if args.bank_step == "batch":
            doc = bank.create_batch(
                db,
                args.by,
                roster_ids=args.roster,
                reissue_of=args.reissue,
                banks=bank.load_banks(args.banks) if args.banks else None,
                bank=args.bank,
            )
            if not args.json:
                to = f" to bank {doc['bank']}" if doc["bank"] else ""
                print(
                    f"batch {doc['batch']}{to}: {doc['lines']} line(s), "
                    f"{format_fen(doc['total_fen'])}"
                )
                for s in doc["skipped"]:
                    print(f"  line {s['line_id']} not sent: {s['reason']}")
        elif args.bank_step == "file":
            head, lines = bank.batch_lines(db, args.batch)
            if args.format == "fixed":
                Path(args.out).write_bytes(bank.payment_fixed(head, lines))
            else:
                Path(args.out).write_text(bank.payment_csv(head, lines), encoding="utf-8")
            print(f"payment file {args.batch} ({args.format}) -> {args.out}")
            return 0
        elif args.bank_step == "result":
            mac = Path(args.signature).read_text("ascii") if args.signature else None
            raw = Path(args.file).read_bytes()
            keys = bank.load_banks(args.banks) if args.banks else bank.load_bank_key(args.bank_key)
            doc = bank.import_result(db, raw, args.by, keys, mac)
            if not args.json:
                print(
                    f"batch {doc['batch']}: {doc['paid']} paid ({format_fen(doc['paid_fen'])}),"
                    f" {len(doc['failed'])} failed"
                )
                for f in doc["failed"]:
                    print(f"  {f['reference']} failed: {f['reason']}")
        elif args.bank_step == "track":
            doc = bank.tracking(
                db, today=args.today, calendar=bank.load_calendar(args.holidays), batch=args.batch
            )
            if not args.json:
                for state, t in doc["totals"].items():
                    print(f"{state}: {t['lines']} line(s), {format_fen(t['amount_fen'])}")
                for x in doc["lines"]:
                    if x["state"] != "paid":
                        print(
                            f"  {x['reference']} {x['state']:<7s} due {x['due_on']} "
                            f"{x['item']} {x['period']} {format_fen(x['amount_fen'])} {x['reason']}"
                        )
        else:
            doc = bank.funds(db)
            if not args.json:
                for x in doc["subsidies"]:
                    print(
                        f"{x['item']} {x['period']}: approved {format_fen(x['approved_fen'])}, "
                        f"bank {format_fen(x['bank_paid_fen'])}, kiosk "
                        f"{format_fen(x['kiosk_paid_fen'])}, unpaid {format_fen(x['unpaid_fen'])}"
                    )
                t = doc["top_ups"]
                print(
                    f"e-purse top-ups (not subsidies): {t['loads']}, {format_fen(t['amount_fen'])}"
                )
    finally:
        db.close()
    if args.json:
        print_json(doc)
    return 0


def _register_audit(ssub: Any, db_opt: Any) -> None:
    """``ykt subsidy audit run|list|rectify|close|report``: special audits (专项治理)."""
    a = ssub.add_parser("audit", help="special audit (专项治理): findings, 整改, reports")
    asub = a.add_subparsers(dest="audit_command", metavar="ACTION")
    q = asub.add_parser("run", help="find and store new findings")
    q.add_argument("--by", required=True, help="who runs the audit")
    q.add_argument("--deceased", metavar="FILE", help="civil affairs' list (身份证号码 column)")
    q.add_argument(
        "--staff", metavar="FILE", help="staff and relatives (姓名,身份证号码,户主身份证号码,"
        "村(社区),亲属身份证号码,关系)",
    )  # fmt: skip
    q.add_argument("--catalogue", metavar="FILE", help="TOML or JSON catalogue (default demo)")
    q.set_defaults(audit_step="run")
    q = asub.add_parser("list", help="stored findings")
    q.add_argument("--state", choices=("open", "rectifying", "closed"))
    q.set_defaults(audit_step="list")
    q = asub.add_parser("rectify", help="hand a finding for rectification (整改)")
    q.add_argument("finding", type=arg_int)
    q.add_argument("--by", required=True)
    q.set_defaults(audit_step="rectify")
    q = asub.add_parser("close", help="close a finding with a note")
    q.add_argument("finding", type=arg_int)
    q.add_argument("--by", required=True)
    q.add_argument("--note", required=True, help="what was done")
    q.set_defaults(audit_step="close")
    q = asub.add_parser("report", help="by item, township, department or month (月报)")
    q.add_argument("--by", dest="group", choices=("item", "township", "department", "month"),
                   default="item")  # fmt: skip
    q.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    q.add_argument("--out", metavar="FILE", help="write the report here (default: print CSV)")
    q.set_defaults(audit_step="report")
    for sp in asub.choices.values():
        sp.add_argument("--json", action="store_true")
        add_db_option(sp)
        sp.set_defaults(handler=run_audit)
    a.set_defaults(handler=lambda _: a.print_help() or 2)


def _print_finding(f: dict[str, Any]) -> None:
    print(f"#{f['id']} {f['kind']} [{f['state']}] {f['what']}")
    if f["rectify_by"]:
        print(f"    整改 by {f['rectify_by']} at {_when(f['rectify_at_ms'])}")
    if f["closed_by"]:
        print(f"    closed by {f['closed_by']} at {_when(f['closed_at_ms'])}: {f['note']}")


def run_audit(args: argparse.Namespace) -> int:
    from gateway.subsidy import audit
    from gateway.subsidy.catalogue import DEMO_CATALOGUE, load_catalogue

    db = _db(args)
    try:
        if args.audit_step == "run":
            deceased = (
                audit.read_deceased(Path(args.deceased).read_bytes()) if args.deceased else []
            )
            staff = audit.read_staff(Path(args.staff).read_bytes()) if args.staff else []
            catalogue = load_catalogue(args.catalogue or DEMO_CATALOGUE)
            doc: Any = audit.run_audit(db, catalogue, args.by, deceased=deceased, staff=staff)
            if not args.json:
                print(f"{doc['found']} finding(s) hold, {len(doc['new'])} new; open:")
                for f in doc["open"]:
                    _print_finding(f)
        elif args.audit_step == "list":
            doc = audit.list_findings(db, args.state)
            if not args.json:
                for f in doc:
                    _print_finding(f)
        elif args.audit_step in ("rectify", "close"):
            if args.audit_step == "rectify":
                doc = audit.rectify(db, args.finding, args.by)
            else:
                doc = audit.close(db, args.finding, args.by, args.note)
            if not args.json:
                _print_finding(doc)
        else:
            doc = audit.report(db, args.group)
            if args.out:
                if args.format == "xlsx":
                    Path(args.out).write_bytes(audit.report_xlsx(doc, f"补贴报表 ({args.group})"))
                else:
                    Path(args.out).write_text(audit.report_csv(doc), encoding="utf-8")
                print(f"report by {args.group} ({args.format}) -> {args.out}")
            elif not args.json:
                print(audit.report_csv(doc), end="")
    finally:
        db.close()
    if args.json:
        print_json(doc)
    return 0


def arg_date(text: str) -> date:
    """argparse ``type=`` for a calendar date YYYY-MM-DD (full-width digits accepted)."""
    try:
        return date.fromisoformat(code(text, "date"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is no date YYYY-MM-DD ({exc})") from None


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
    for item_code, item in report.by_item().items():
        amount = format_fen(item["amount_fen"])
        print(f"  {item_code} {item['name']}: {item['lines']} line(s), {amount}")
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
        elif args.step == "send":
            roster = store.send_to_finance(db, args.roster_id, args.by, args.note)
        else:
            roster = store.reject(db, args.roster_id, args.by, args.reason)
    finally:
        db.close()
    if args.json:
        print_json(roster.to_json())
    else:
        state = "sent to finance" if roster.sent_at else roster.state
        print(f"roster #{roster.id} is {state} ({args.by})")
    return 0


def run_gongshi(args: argparse.Namespace) -> int:
    """publish / object / resolve / signoff: the 公示 steps."""
    from gateway.subsidy import store

    db = _db(args)
    try:
        if args.step == "publish":
            pub = store.publish(
                db, args.roster_id, args.by, args.starts_on, args.ends_on, args.place
            )
            print(f"roster #{pub.roster_id} on display {pub.starts_on}..{pub.ends_on} ({args.by})")
        elif args.step == "object":
            o = store.object_to(db, args.roster_id, args.row, args.by, args.reason)
            print(f"objection #{o['id']} against row {o['row']} of roster #{o['roster_id']}")
        elif args.step == "resolve":
            o = store.resolve_objection(db, args.objection_id, args.by, args.outcome, args.note)
            print(f"objection #{o['id']} {o['outcome']} ({args.by})")
        else:
            pub = store.sign_off(db, args.roster_id, args.by, args.signatures, args.note)
            print(f"roster #{pub.roster_id} signed off: {pub.signatures} signature(s) ({args.by})")
    finally:
        db.close()
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
    from gateway.subsidy.publication import publication_csv, publication_html, publication_xlsx

    db = _db(args)
    try:
        report = store.roster_lines(db, args.roster_id)
        roster = store.get_roster(db, args.roster_id)
        pub = store.get_publication(db, args.roster_id)
    finally:
        db.close()
    if args.format == "xlsx":
        if not args.out:
            raise SystemExit("ykt subsidy publication --format xlsx needs --out FILE")
        Path(args.out).write_bytes(publication_xlsx(report, roster.title))
        print(f"公示 listing -> {args.out}")
        return 0
    if args.format == "html":
        if pub is None:
            raise SystemExit(f"roster #{args.roster_id} is not published yet (ykt subsidy publish)")
        text = publication_html(
            report,
            title=roster.title,
            starts_on=pub.starts_on.isoformat(),
            ends_on=pub.ends_on.isoformat(),
            place=pub.place,
        )
    else:
        text = publication_csv(report)
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
