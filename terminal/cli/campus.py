"""``ykt campus``: the campus back office's reports for people who work in spreadsheets.

``attendance`` is what an HR clerk runs at the end of the month: the time clocks' events
are read from the gateway's database (--db, like ``ykt subsidy``), judged against the
shift rules (a TOML file: shifts, grace minutes, workdays, holidays; docs/campus.md) and
written as the monthly summary (late, early, absent, hours per person) and the daily
detail: one XLSX workbook with both sheets, or two CSV files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from terminal.cli.common import add_db_option, command_group


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _, csub = command_group(
        sub,
        "campus",
        "campus one-card back office: the monthly attendance report (CSV/XLSX)",
        __doc__,
    )
    att = csub.add_parser(
        "attendance",
        help="a month's attendance: late, early, absent, hours per person",
        description="Judge a month's time-clock events against the shift rules and write "
        "the report. --out FILE.xlsx writes one workbook (sheets 'monthly' and 'daily'); "
        "--out FILE.csv writes the monthly summary there and the daily detail beside it "
        "(FILE-daily.csv). The summary is printed too.",
    )
    att.add_argument("--month", required=True, help="the month, YYYY-MM")
    att.add_argument("--shifts", required=True, metavar="FILE", help="the shift rules (TOML)")
    att.add_argument("--out", required=True, metavar="FILE.xlsx|FILE.csv")
    add_db_option(att)
    att.set_defaults(handler=run_attendance)


def run_attendance(args: argparse.Namespace) -> int:
    from gateway.campus.store import attendance_events
    from gateway.storage import open_storage
    from terminal.campus import attendance as att

    out = Path(args.out)
    if out.suffix.lower() not in (".xlsx", ".csv"):
        raise SystemExit(f"--out must name a .xlsx or .csv file, got {args.out}")
    try:
        att.month_days(args.month)
    except ValueError:
        raise SystemExit(f"--month must be YYYY-MM, got {args.month}") from None
    rules = att.load_attendance_rules(args.shifts)
    db = open_storage(args.db, pool_size=2)
    try:
        events = attendance_events(db, args.month)
    finally:
        db.close()
    days = att.daily(rules, att.clockings_from(events), args.month)
    months = att.monthly(rules, days)
    if out.suffix.lower() == ".xlsx":
        out.write_bytes(att.report_xlsx(args.month, days, months))
        written = [out]
    else:
        detail = out.with_name(out.stem + "-daily.csv")
        out.write_text(att.report_csv(att.MONTHLY_COLUMNS, months), encoding="utf-8-sig")
        detail.write_text(att.report_csv(att.DAILY_COLUMNS, days), encoding="utf-8-sig")
        written = [out, detail]
    print(f"attendance {args.month}: {len(events)} clocking(s), {len(months)} person(s)")
    print(f"{'person':<16} {'shift':<10} workdays present late early absent no-out  hours")
    for m in months:
        print(
            f"{m.person_no:<16} {m.shift:<10} {m.workdays:>8} {m.present:>7} {m.late:>4}"
            f" {m.early:>5} {m.absent:>6} {m.no_clock_out:>6} {att.hours(m.minutes):>6}"
        )
    for path in written:
        print(f"written: {path}")
    return 0
