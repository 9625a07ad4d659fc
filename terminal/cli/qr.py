"""``ykt qr verify``: check a ride code offline; ``ykt sim qr``: make one with the app."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terminal.money import format_fen
from terminal.qr.checks import QrPolicy, RootKey, unix, verify
from terminal.qr.code import QrError, parse
from terminal.qr.params import load_root_keys, parse_root_key
from terminal.text import FileError, TextError, arg_int


def _root_key(text: str) -> RootKey:
    try:
        return parse_root_key(text)
    except TextError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date-time") from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("qr", help="ride QR codes", description="Transport ride QR codes.")
    qsub = p.add_subparsers(dest="qr_command", metavar="SUBCOMMAND")
    v = qsub.add_parser(
        "verify",
        help="check a ride code offline and print its fields and the verdict",
        description="Check a ride code (FILE holds its bytes, or their base64) against the "
        "root keys: structure, certificate, the three SM2 signatures, times. Exits 1 with "
        "the reason when the code is refused. No whitelist or replay check (a terminal's).",
    )
    v.add_argument("file", metavar="FILE")
    v.add_argument("--root-key", type=_root_key, action="append", default=[], metavar="IDX:HEX128")
    v.add_argument("--root-keys", metavar="FILE", help="root keys, one IDX:HEX128 a line")
    v.add_argument("--at", type=_when, metavar="ISO-TIME", help="the clock (default: now)")
    v.add_argument("--signer-id", default="1234567812345678", help="the issuer's SM2 ID")
    v.add_argument("--json", action="store_true", help="one JSON object")
    v.set_defaults(handler=verify_command)
    p.set_defaults(handler=lambda a: p.print_help() or 2)


def register_sim(ssub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    q = ssub.add_parser(
        "qr",
        help="a ride code from the software ride-code app (bytes and a PNG)",
        description="Generate a ride code with the software app (TEST root CA and issuer "
        "keys) and write its bytes and a QR image; prints the root key to verify it with.",
    )
    q.add_argument("--out", required=True, metavar="FILE", help="the code's bytes")
    q.add_argument("--png", metavar="FILE", help="the QR symbol (byte mode)")
    q.add_argument("--account", type=arg_int, default=1, help="user account number")
    q.add_argument("--issuer", default="10000001", help="issuer code, 8 hex digits")
    q.add_argument("--at", type=_when, metavar="ISO-TIME", help="generation time (now)")
    q.add_argument("--validity", type=arg_int, default=60, help="seconds")
    q.add_argument("--account-type", type=arg_int, default=1)
    q.add_argument("--limit", type=arg_int, default=5_000, help="per-ride limit, fen")
    q.set_defaults(handler=sim_qr)


def read_code(path: str) -> bytes:
    """A code file: its raw bytes, or base64 text of them."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FileError(path, None, f"cannot be read ({exc.strerror})") from None
    if len(data) < 332 or data[0] < 0x80:
        try:
            return base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            pass
    return data


def verify_command(args: argparse.Namespace) -> int:
    roots = {k.index: k for k in args.root_key}
    if args.root_keys:
        roots.update(load_root_keys(args.root_keys))
    raw = read_code(args.file)
    now = args.at or datetime.now().astimezone()
    policy = QrPolicy(any_issuer=True, signer_id=args.signer_id.encode())
    fields: dict[str, Any] = {}
    verdict, reason, detail = "accepted", None, None
    try:
        fields = parse(raw).fields()
        verify(raw, now=now, roots=roots, policy=policy)
    except QrError as exc:
        verdict, reason, detail = "refused", str(exc.reason), exc.detail
    if args.json:
        out = {"verdict": verdict, "reason": reason, "detail": detail, "fields": fields}
        print(json.dumps({**out, "checked_at": unix(now)}, sort_keys=True))
    else:
        _print_fields(fields)
        print(f"verdict: {verdict.upper()}" + (f" ({reason}: {detail})" if reason else ""))
    if reason is not None:
        print(f"ykt qr verify: refused: {reason}: {detail}", file=sys.stderr)
        return 1
    return 0


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _print_fields(f: dict[str, Any]) -> None:
    if not f:
        return
    rows = [
        ("payment account", f["payment_account"]),
        ("user account", f["user_account"]),
        ("issuer", f["issuer_code"]),
        (
            "certificate",
            f"issuer {f['issuer_id']}, root key {f['root_index']:02X},"
            f" expires {f['certificate_expiry']}",
        ),
        ("platform", f["platform_code"]),
        ("account type", f"{f['account_type']:02X}"),
        ("per-ride limit", format_fen(f["ride_limit"])),
        ("authorised until", _utc(f["auth_expiry"])),
        ("generated", _utc(f["generated"])),
        ("valid for", f"{f['validity']} s"),
    ]
    for name, value in rows:
        print(f"{name:<17s} {value}")


def sim_qr(args: argparse.Namespace) -> int:
    from simulators.qr_app import RideCodeApp

    app = RideCodeApp()
    now = args.at or datetime.now().astimezone()
    raw = app.code(
        now,
        issuer=args.issuer,
        account=args.account,
        validity=args.validity,
        account_type=args.account_type,
        ride_limit=args.limit,
    )
    Path(args.out).write_bytes(raw)
    if args.png:
        from simulators.qr_app import qr_image

        qr_image(raw, args.png)
    key = app.root.root_key
    print(f"code {len(raw)} bytes -> {args.out}" + (f", image -> {args.png}" if args.png else ""))
    print(f"root key {key.index:02X}:{key.public_key.hex().upper()}")
    return 0
