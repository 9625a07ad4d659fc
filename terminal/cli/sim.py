"""``ykt sim``: make software cards and PSAMs (files that survive restarts)."""

from __future__ import annotations

import argparse
from datetime import date

from terminal.money import format_fen, parse_yuan
from terminal.text import arg_code, arg_int


def _yuan(text: str) -> int:
    try:
        return parse_yuan(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sim",
        help="software cards and PSAMs",
        description="Create software T-Union cards and PSAMs as state files "
        "usable with --reader sim --card FILE.",
    )
    ssub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")

    card = ssub.add_parser("new-card", help="personalise a new software T-Union card")
    card.add_argument("--out", required=True, metavar="FILE")
    card.add_argument("--number", type=arg_int, default=1, help="demo card sequence number")
    card.add_argument("--issuer", default="shanghai", choices=["shanghai", "beijing"])
    card.add_argument(
        "--balance", type=_yuan, default=0, metavar="YUAN", help="opening balance, e.g. 50.00"
    )
    card.add_argument(
        "--card-kind",
        type=lambda s: int(arg_code(s), 0),
        default=1,
        help="0x17 card kind (concession class), default 1",
    )
    card.add_argument("--expiry", type=date.fromisoformat, default=date(2034, 12, 31))
    card.set_defaults(handler=new_card)

    psam = ssub.add_parser("new-psam", help="make a software PSAM")
    psam.add_argument("--out", required=True, metavar="FILE")
    psam.add_argument("--terminal-id", default="310000000001", help="6-byte BCD terminal number")
    psam.set_defaults(handler=new_psam)
    chip = ssub.add_parser(
        "new-chip-card",
        help="personalise a software EMV, resident or social security card",
        description="A software chip card: 'emv' (PBOC debit with Electronic Cash), "
        "'resident' (debit + EC + T-Union EP) or 'ssse' (social security + debit). "
        "Keys and certificates come from the project's TEST PKI.",
    )
    chip.add_argument("--out", required=True, metavar="FILE")
    chip.add_argument("--kind", choices=("emv", "resident", "ssse"), default="resident")
    chip.add_argument("--number", type=arg_int, default=1, help="demo card sequence number")
    chip.add_argument("--ec-balance", type=_yuan, default=10_000, metavar="YUAN")
    chip.set_defaults(handler=new_chip_card)

    from terminal.cli.sim_plug import register_plug

    register_plug(ssub)
    from terminal.cli.qr import register_sim

    register_sim(ssub)
    p.set_defaults(handler=lambda a: p.print_help() or 2)


def new_card(args: argparse.Namespace) -> int:
    from simulators.profiles import (
        DEMO_ISSUERS,
        CardProfile,
        demo_card_number,
        demo_keyset,
        issue_card,
    )

    issuer_id = DEMO_ISSUERS[args.issuer]
    profile = CardProfile(
        card_number=demo_card_number(issuer_id, args.number),
        issuer_id=issuer_id,
        balance=args.balance,
        card_kind=args.card_kind,
        expiry_date=args.expiry,
    )
    card = issue_card(profile, demo_keyset(issuer_id), args.out)
    print(
        f"card {profile.card_number} serial {card.serial.hex().upper()} "
        f"balance {format_fen(card.balance)} -> {args.out}"
    )
    return 0


def new_chip_card(args: argparse.Namespace) -> int:
    from simulators.emv_profiles import emv_card, resident_card, ssse_card

    ec = args.ec_balance
    if args.kind == "emv":
        card = emv_card(args.number, ec_balance=ec, path=args.out)
    elif args.kind == "resident":
        card = resident_card(args.number, ec_balance=ec, path=args.out)
    else:
        card = ssse_card(args.number, path=args.out)
    emv = card.app("emv")
    print(
        f"{args.kind} card PAN {emv.state.pan} EC {format_fen(emv.ec_balance)} "
        f"({len(card.apps)} application(s)) -> {args.out}"
    )
    return 0


def new_psam(args: argparse.Namespace) -> int:
    from simulators.profiles import demo_psam

    psam = demo_psam(args.terminal_id)
    psam.save(args.out)
    print(f"PSAM terminal {psam.terminal_id.hex().upper()} -> {args.out}")
    return 0
