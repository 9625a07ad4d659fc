"""``ykt read``: application, serial, validity, balance and log of the card in the reader."""

from __future__ import annotations

import argparse
from typing import Any

from terminal.cli.common import add_reader_options, open_card_reader, print_json
from terminal.epurse import flows
from terminal.epurse.commands import AID_TUNION_EP
from terminal.epurse.model import CardSnapshot
from terminal.money import format_fen
from terminal.roles.session import TerminalSession


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "read",
        help="read a card's application, balance and log",
        description="Read the T-Union e-purse application of the card in the "
        "reader: serial, validity, balance and transaction log.",
    )
    add_reader_options(p)
    p.add_argument(
        "--replay", metavar="FILE", help="answer from a recorded trace (= --reader replay:FILE)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=run)


def snapshot_dict(snap: CardSnapshot) -> dict[str, Any]:
    info = snap.info
    return {
        "application": AID_TUNION_EP.hex().upper(),
        "card_number": info.card_number,
        "serial": info.serial_hex,
        "issuer_id": info.issuer_hex,
        "app_version": info.app_version,
        "valid_from": info.start_date,
        "valid_to": info.expiry_date,
        "balance_fen": snap.balance,
        "holder": None
        if snap.holder is None
        else {
            "name": snap.holder.name,
            "id_number": snap.holder.id_number,
            "card_type": snap.holder.card_type,
        },
        "card_kind": None if snap.management is None else snap.management.card_kind,
        "interoperable": None if snap.management is None else snap.management.interoperable,
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
    }


def print_snapshot(snap: CardSnapshot) -> None:
    info = snap.info
    print(f"Application   T-Union EP ({AID_TUNION_EP.hex().upper()})")
    print(f"Card number   {info.card_number}")
    print(f"Serial        {info.serial_hex}   issuer {info.issuer_hex}")
    print(f"Valid         {info.start_date} .. {info.expiry_date}")
    print(f"Balance       {format_fen(snap.balance)}")
    if snap.holder is not None and snap.holder.name:
        print(f"Holder        {snap.holder.name}")
    print(f"Log           {len(snap.log)} record(s), newest first")
    for e in snap.log:
        when = e.when.strftime("%Y-%m-%d %H:%M:%S") if e.when else "-"
        print(
            f"  #{e.atc:<5d} {when}  {e.type_name:<14s} {format_fen(e.signed_amount):>10s}"
            f"  terminal {e.terminal_id.hex().upper()}"
        )


def run(args: argparse.Namespace) -> int:
    if args.replay:
        args.reader = f"replay:{args.replay}"
    reader = open_card_reader(args)
    session = TerminalSession(reader)
    reader.connect()
    snap = session.run(flows.read_card())
    if args.json:
        print_json(snapshot_dict(snap))
    else:
        print_snapshot(snap)
    return 0
