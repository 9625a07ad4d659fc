"""``ykt read``: every application on the card - EMV debit/credit with Electronic Cash,
the T-Union EP, the social security application - with balances, logs and the outcome
of offline data authentication. A plain T-Union card prints exactly as before.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from terminal.apdu.iso import IsoIns
from terminal.cli.common import add_reader_options, open_card_reader, print_json
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.commands import EmvIns
from terminal.emv.config import TerminalConfig
from terminal.emv.kernel import CID_FROM_9F27
from terminal.emv.oda import OdaMethod
from terminal.emv.read import EmvApplicationReport
from terminal.emv.selection import AUTO, CONTACT, CONTACTLESS, interface_from_atr
from terminal.emv.tags import tag_name
from terminal.epurse import flows as epurse_flows
from terminal.epurse.model import (
    BALANCE_RULE_MAIN,
    BALANCE_RULES,
    CardSnapshot,
    displayed_balance,
)
from terminal.money import format_fen
from terminal.readers.replay import LOOSE_INS, LooseMatch
from terminal.roles.inspect import AppReport, CardReport, inspect_card
from terminal.roles.session import TerminalSession
from terminal.runtime.assembly import ca_store, kernel_config
from terminal.ssse.flows import SsseReport

SIM_KINDS = ("tunion", "emv", "resident", "ssse")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "read",
        help="read every application on a card: balances, logs, ODA outcome",
        description="Read the card in the reader: directory (PPSE/PSE, else the AID list), "
        "then each application - UnionPay debit/credit with Electronic Cash (qPBOC or "
        "contact PBOC, with offline data authentication), the T-Union e-purse, the social "
        "security application - with balances and logs. A plain T-Union card prints its "
        "e-purse as before.",
    )
    add_reader_options(p)
    p.add_argument(
        "--replay", metavar="FILE", help="answer from a recorded trace (= --reader replay:FILE)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--interface",
        choices=(AUTO, CONTACTLESS, CONTACT),
        default=AUTO,
        help="contactless (PPSE, qPBOC), contact (PSE, PBOC) or auto: from the reader and the "
        "ATR, then the other directory when the first is absent (default: %(default)s)",
    )
    p.add_argument(
        "--unpredictable-number",
        metavar="HEX",
        type=_un,
        help="fix the terminal's unpredictable number 9F37 (4 bytes), to reproduce a trace",
    )
    p.add_argument(
        "--terminal-data",
        metavar="FILE",
        help="JSON terminal data for the kernel (limits, TTQ, AIDs, pinned date...)",
    )
    p.add_argument("--ca-keys", metavar="FILE", help="add or replace CA public keys from FILE")
    p.add_argument(
        "--trust-test-keys",
        action="store_true",
        help="accept test CA keys (always on with the sim reader)",
    )
    p.add_argument(
        "--sim-card",
        choices=SIM_KINDS,
        help="which demo software card the sim reader holds (default: T-Union)",
    )
    p.add_argument(
        "--balance-rule",
        choices=BALANCE_RULES,
        default=BALANCE_RULE_MAIN,
        help="how the shown balance is formed on cards with a second purse (805C0102): the "
        "main purse alone, or main minus second (default: %(default)s; docs/readers.md)",
    )
    p.add_argument("--ssse-pin", metavar="PIN", help="PIN for protected social security files")
    p.set_defaults(handler=run)


def _un(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not hex") from None
    if len(raw) != 4:
        raise argparse.ArgumentTypeError("the unpredictable number is 4 bytes (8 hex digits)")
    return raw


# -- the legacy T-Union view -------------------------------------------------------------


def _hexes(value: bytes | None) -> str | None:
    return None if value is None else value.hex().upper()


def snapshot_dict(snap: CardSnapshot, rule: str = BALANCE_RULE_MAIN) -> dict[str, Any]:
    """The e-purse as JSON: the application by its own AID and label and how it was found;
    items the card did not give are null, with the reason under ``errors``."""
    info = snap.info
    m = snap.management
    return {
        "application": snap.aid.hex().upper(),
        "application_label": snap.label,
        "found_by": snap.found_by or None,
        "card_number": info.card_number,
        "serial": info.serial_hex,
        "issuer_id": info.issuer_hex,
        "app_version": info.app_version,
        "valid_from": info.start_date,
        "valid_to": info.expiry_date,
        "balance_fen": snap.balance,
        "balance_flag": snap.balance_flag if snap.balance is not None else None,
        "second_purse": None
        if snap.second_purse is None
        else {"balance_fen": snap.second_purse, "balance_flag": snap.second_purse_flag},
        "balance_rule": rule,
        "displayed_balance_fen": displayed_balance(snap, rule),
        "holder": None
        if snap.holder is None
        else {
            "name": snap.holder.name,
            "id_number": snap.holder.id_number,
            "card_type": snap.holder.card_type,
        },
        "card_kind": None if m is None else m.card_kind,
        "interoperable": None if m is None else m.interoperable,
        "management": None
        if m is None
        else {
            "country_code": _hexes(m.country_code),
            "province_code": _hexes(m.province_code),
            "city_code": _hexes(m.city_code),
            "interop_type": _hexes(m.interop_type),
            "card_kind": m.card_kind,
        },
        "log": [
            {
                "atc": e.atc,
                "type": e.type_name,
                "amount_fen": e.amount,
                "terminal_id": e.terminal_id,
                "time": e.when,
            }
            for e in snap.log
        ],
        "log_end": snap.log_end or None,
        "trips": None
        if snap.trips is None
        else [
            {
                "type": t.txn_type,
                "amount_fen": t.amount,
                "balance_fen": t.balance,
                "time": t.when,
                "line": _hexes(t.line),
                "station": _hexes(t.station),
                "raw": t.raw.hex().upper(),
            }
            for t in snap.trips
        ],
        "capp_records": None
        if snap.capp is None
        else [
            {"record": e.number, "id": e.record_id, "raw": e.raw.hex().upper()} for e in snap.capp
        ],
        "errors": dict(snap.errors),
    }


def _not_read(snap: CardSnapshot, item: str) -> str:
    return f"not read: {snap.errors[item]}"


def print_snapshot(snap: CardSnapshot, out=print, rule: str = BALANCE_RULE_MAIN) -> None:  # type: ignore[no-untyped-def]
    info = snap.info
    out(f"Application   {snap.label} ({snap.aid.hex().upper()})")
    if snap.found_by:
        out(f"Found by      {snap.found_by}")
    out(f"Card number   {info.card_number}")
    out(f"Serial        {info.serial_hex}   issuer {info.issuer_hex}")
    out(f"Valid         {info.start_date or '-'} .. {info.expiry_date or '-'}")
    if snap.balance is None:
        out(f"Balance       ({_not_read(snap, 'balance')})")
    else:
        flag = " (flag set)" if snap.balance_flag else ""
        out(f"Balance       {format_fen(snap.balance)}{flag}")
    if snap.second_purse is not None:
        flag = " (flag set)" if snap.second_purse_flag else ""
        shown = displayed_balance(snap, rule)
        out(f"Second purse  {format_fen(snap.second_purse)}{flag}   (805C0102)")
        out(f"Shown balance {_fen(shown)}   rule {rule}")
    if snap.holder is not None and snap.holder.name:
        out(f"Holder        {snap.holder.name}")
    for item, title in (("holder", "Holder"), ("management", "Management")):
        if item in snap.errors:
            out(f"{title:<14s}({_not_read(snap, item)})")
    if "log" in snap.errors:
        out(f"Log           ({_not_read(snap, 'log')})")
    else:
        out(f"Log           {len(snap.log)} record(s), newest first")
    for e in snap.log:
        when = e.when.strftime("%Y-%m-%d %H:%M:%S") if e.when else "-"
        out(
            f"  #{e.atc:<5d} {when}  {e.type_name:<14s} {format_fen(e.signed_amount):>10s}"
            f"  terminal {e.terminal_id.hex().upper()}"
        )
    if snap.log_end:
        out(f"  (log ends early: {snap.log_end})")
    if snap.trips:
        out(f"Trips         {len(snap.trips)} record(s) (0x1E), newest first")
        for t in snap.trips:
            when = t.when.strftime("%Y-%m-%d %H:%M:%S") if t.when else "-"
            amount = "-" if t.amount is None else format_fen(t.amount)
            out(f"  {when}  type {t.txn_type if t.txn_type is not None else '--'}  {amount:>10s}")
    if "trips" in snap.errors:
        out(f"Trips         ({_not_read(snap, 'trips')})")
    if snap.capp:
        ids = ", ".join(e.record_id for e in snap.capp)
        out(f"Composite     {len(snap.capp)} record(s) in use (0x1A): {ids}")
    if "capp" in snap.errors:
        out(f"Composite     ({_not_read(snap, 'capp')})")


# -- every application ---------------------------------------------------------------------


def _fen(value: int | None) -> str:
    return "-" if value is None else format_fen(value)


# what each dynamic signature covers of the terminal's own data: the command carrying it
ODA_NEEDS = {
    OdaMethod.FDDA: EmvIns.GET_PROCESSING_OPTIONS,
    OdaMethod.DDA: IsoIns.INTERNAL_AUTHENTICATE,
    OdaMethod.CDA: EmvIns.GENERATE_AC,
}


def unverifiable(r: EmvApplicationReport, loose_ins: frozenset[int]) -> str:
    """Why this application's ODA cannot be judged from a foreign trace ('' when it can):
    the card signed the other tool's terminal data, which this read did not send."""
    ins = ODA_NEEDS.get(r.app.oda.method)
    if ins is None or ins not in loose_ins:
        return ""
    return (
        f"{r.app.oda.method.value} not verifiable from this trace: the card signed the "
        f"recording terminal's own {LOOSE_INS[ins]} data"
    )


def emv_dict(r: EmvApplicationReport, loose_ins: frozenset[int] = frozenset()) -> dict[str, Any]:
    app = r.app
    why = unverifiable(r, loose_ins)
    return {
        "pan": app.pan,
        "pan_sequence": app.psn,
        "label": app.label,
        "cardholder": app.cardholder_name,
        "effective": app.effective,
        "expiry": app.expiry,
        "aip": app.aip,
        "oda": {
            "method": app.oda.method.value,
            "passed": app.oda.passed,
            "failure": app.oda.failure.name if app.oda.failure else None,
            "detail": app.oda.detail,
            "ca_key": app.oda.ca_key,
            "verifiable": True,
        }
        if not why
        else {
            "method": app.oda.method.value,
            "passed": None,
            "failure": None,
            "detail": why,
            "ca_key": app.oda.ca_key,
            "verifiable": False,
        },
        "outcome": app.outcome.value if not why else f"not decided ({why})",
        "cryptogram": None
        if app.cryptogram is None
        else {
            "type": app.cryptogram.kind_name,
            "value": app.cryptogram.cryptogram,
            "type_from": app.cryptogram.cid_from,
        },
        "atc": r.atc,
        "last_online_atc": r.last_online_atc,
        "pin_tries": r.pin_tries,
        "ec": {
            "balance_fen": r.ec.balance,
            "balance_limit_fen": r.ec.balance_limit,
            "single_limit_fen": r.ec.single_limit,
            "reset_threshold_fen": r.ec.reset_threshold,
            "currency": r.ec.currency,
        },
        "data": {
            f"{tag:X}": {"name": tag_name(tag), "value": value}
            for tag, value in sorted(app.card.items())
        },
        "log": None
        if r.log is None
        else [
            {
                "time": rec.when,
                "amount_fen": rec.amount,
                "type": rec.txn_type,
                "atc": rec.atc,
                "merchant": rec.merchant,
                "fields": {f"{t:X}": v for t, v in rec.values.items()},
            }
            for rec in r.log.records
        ],
    }


def ssse_dict(r: SsseReport) -> dict[str, Any]:
    b, h = r.basic, r.holder
    return {
        "card_number": b.card_number,
        "card_identifier": b.card_identifier,
        "region": b.region_code,
        "spec_version": b.spec_version,
        "issue_date": b.issue_date,
        "expiry_date": b.expiry_date,
        "holder": None
        if h is None
        else {
            "name": h.name,
            "social_security_number": h.social_security_number,
            "birth_date": h.birth_date,
        },
        "holder_note": r.holder_note,
    }


def app_dict(
    a: AppReport, rule: str = BALANCE_RULE_MAIN, loose_ins: frozenset[int] = frozenset()
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "aid": a.candidate.aid,
        "kind": a.kind,
        "name": a.candidate.display_name,
        "found_by": a.candidate.source,
        "error": a.error or None,
    }
    if a.emv is not None:
        out["emv"] = emv_dict(a.emv, loose_ins)
    if a.epurse is not None:
        out["epurse"] = snapshot_dict(a.epurse, rule)
    if a.ssse is not None:
        out["ssse"] = ssse_dict(a.ssse)
    return out


def report_dict(
    report: CardReport, rule: str = BALANCE_RULE_MAIN, loose: list[LooseMatch] | None = None
) -> dict[str, Any]:
    loose = loose or []
    ins = frozenset(m.ins for m in loose)
    out: dict[str, Any] = {
        "interface": report.interface,
        "directory": report.source,
        "applications": [app_dict(a, rule, ins) for a in report.apps],
    }
    if loose:
        out["loosely_matched"] = [
            {
                "trace_exchange": m.line + 1,
                "command": m.name,
                "sent": m.sent.hex().upper(),
                "recorded": m.recorded.hex().upper(),
            }
            for m in loose
        ]
    return out


def print_emv(r: EmvApplicationReport, out=print, loose_ins: frozenset[int] = frozenset()) -> None:  # type: ignore[no-untyped-def]
    why = unverifiable(r, loose_ins)
    app = r.app
    out(f"  PAN           {app.pan}  (sequence {app.psn})")
    if app.cardholder_name:
        out(f"  Cardholder    {app.cardholder_name}")
    out(f"  Valid         {app.effective} .. {app.expiry}")
    out(f"  ODA           {why or app.oda.describe()}")
    crypt = ""
    if app.cryptogram is not None:
        crypt = f" - {app.cryptogram.kind_name}"
        if app.cryptogram.cid_from != CID_FROM_9F27:
            crypt += f" (type from the {app.cryptogram.cid_from}: the card sent no 9F27)"
    outcome = "not decided (ODA not verifiable from this trace)" if why else app.outcome.value
    out(f"  Outcome       {outcome}{crypt}")
    out(f"  ATC           {r.atc if r.atc is not None else '-'}")
    if r.ec.present:
        out(
            f"  EC balance    {_fen(r.ec.balance)}   limit {_fen(r.ec.balance_limit)}   "
            f"single {_fen(r.ec.single_limit)}   reset {_fen(r.ec.reset_threshold)}"
        )
    if r.log is not None:
        out(f"  EC log        {len(r.log.records)} record(s), newest first")
        for rec in r.log.records:
            when = rec.when.strftime("%Y-%m-%d %H:%M:%S") if rec.when else "-"
            kind = f"{rec.txn_type:02X}" if rec.txn_type is not None else "--"
            out(f"    #{rec.atc or 0:<5d} {when}  type {kind}  {_fen(rec.amount):>10s}")


def print_ssse(r: SsseReport, out=print) -> None:  # type: ignore[no-untyped-def]
    b = r.basic
    out(f"  Card number   {b.card_number}   region {b.region_code}   spec {b.spec_version}")
    out(f"  Valid         {b.issue_date} .. {b.expiry_date}")
    if r.holder is not None:
        out(f"  Holder        {r.holder.name}   {r.holder.social_security_number}")
    else:
        out(f"  Holder        ({r.holder_note})")


def print_report(  # type: ignore[no-untyped-def]
    report: CardReport,
    out=print,
    rule: str = BALANCE_RULE_MAIN,
    loose: list[LooseMatch] | None = None,
) -> None:
    loose = loose or []
    ins = frozenset(m.ins for m in loose)
    out(
        f"Card          {len(report.apps)} application(s), {report.interface}, "
        f"found by {report.source}"
    )
    for m in loose:
        out(
            f"Replay        {m.name} matched loosely (header and position, trace exchange "
            f"{m.line + 1}): the trace holds another terminal's data"
        )
    for a in report.apps:
        out("")
        out(f"[{a.candidate.display_name}]  {a.candidate.aid.hex().upper()}  ({a.kind})")
        if a.error:
            out(f"  ERROR         {a.error}")
        if a.emv is not None:
            print_emv(a.emv, out, ins)
        if a.epurse is not None:
            lines: list[str] = []
            print_snapshot(a.epurse, lines.append, rule)
            for line in lines:
                out("  " + line)
        if a.ssse is not None:
            print_ssse(a.ssse, out)


# -- running -------------------------------------------------------------------------------


def demo_sim_card(kind: str) -> Any:
    """A fresh demo software card of ``kind`` (the CLI may use the simulators)."""
    from simulators.emv_profiles import emv_card, resident_card, ssse_card
    from simulators.profiles import demo_card

    makers = {"tunion": demo_card, "emv": emv_card, "resident": resident_card, "ssse": ssse_card}
    return makers[kind]()


def _sim_factory(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    def make() -> Any:
        from simulators.files import load_device

        card = load_device(args.card) if args.card else demo_sim_card(args.sim_card or "tunion")
        if hasattr(card, "interface") and args.interface != AUTO:
            card.interface = args.interface
        return card

    return make


def load_config(args: argparse.Namespace) -> TerminalConfig:
    config = kernel_config(
        args.terminal_data, trust_test_keys=args.trust_test_keys, card_reader=args.reader
    )
    if args.unpredictable_number is not None:
        return config.with_overrides(unpredictable_number=args.unpredictable_number)
    return config


def load_store(args: argparse.Namespace, config: TerminalConfig) -> CaKeyStore:
    return ca_store(config, args.ca_keys)


def loose_matches(reader: Any) -> list[LooseMatch]:
    """The exchanges a replay answered by header and position (none for live readers)."""
    inner = getattr(reader, "inner", reader)
    return list(getattr(inner, "loose", []))


def run(args: argparse.Namespace) -> int:
    if args.replay:
        args.reader = f"replay:{args.replay}"
    config = load_config(args)
    store = load_store(args, config)
    reader = open_card_reader(args, _sim_factory(args))
    session = TerminalSession(reader)
    atr = reader.connect()
    interface = args.interface
    if interface == AUTO:
        interface = interface_from_atr(bytes(atr or b""), str(getattr(reader, "name", "") or ""))
    now = (
        datetime.combine(config.date, config.time or datetime.now().time()) if config.date else None
    )
    rule = args.balance_rule
    report = session.run(
        inspect_card(
            config,
            store,
            interface=interface,
            now=now,
            ssse_pin=args.ssse_pin,
            fallback=args.interface == AUTO,
        )
    )
    if report.only_epurse:
        snap = report.apps[0].epurse
        assert snap is not None
        if args.json:
            print_json(snapshot_dict(snap, rule))
        else:
            print_snapshot(snap, rule=rule)
        return 0
    if not report.apps:
        # nothing answered: read the e-purse as ykt read always did, so the card's own
        # refusal surfaces as the typed one-line error it always was
        report_snap = session.run(epurse_flows.read_card())
        if args.json:
            print_json(snapshot_dict(report_snap, rule))
        else:
            print_snapshot(report_snap, rule=rule)
        return 0
    if args.json:
        print_json(report_dict(report, rule, loose_matches(reader)))
    else:
        print_report(report, rule=rule, loose=loose_matches(reader))
    return 0


__all__ = ["print_snapshot", "register", "run", "snapshot_dict"]
