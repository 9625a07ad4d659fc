"""``ykt sim plug``: put a software card or PSAM into pcscd's virtual reader (vpcd).

Any PC/SC program then sees the card: ``ykt read --reader "pcsc:Virtual PCD 00 00"``,
``pcsc_scan``, ``scriptor``. The card is the same software card the simulator uses, and a
card file is updated as transactions commit. Type ``unplug``/``plug``/``quit`` on stdin,
or stop with Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from terminal.text import arg_int


def register_plug(ssub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = ssub.add_parser(
        "plug",
        help="plug a software card or PSAM into pcscd's virtual reader (vpcd)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--reader",
        type=arg_int,
        default=0,
        help="virtual reader number: 0 = 'Virtual PCD 00 00' (TCP 35963), 1 = '... 00 01'",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--card",
        metavar="FILE",
        help="software card or PSAM file (made by 'ykt sim new-card'/'new-psam'); "
        "a new file gets a fresh demo card",
    )
    what.add_argument("--psam", action="store_true", help="plug a fresh demo PSAM")
    p.add_argument("--host", default="127.0.0.1", help="where vpcd listens (default 127.0.0.1)")
    p.add_argument("--seconds", type=float, help="pull the card after this long")
    p.set_defaults(handler=run_plug)


def _device(args: argparse.Namespace) -> tuple[Any, str]:
    from simulators.files import load_device
    from simulators.profiles import demo_card, demo_psam

    if args.psam:
        psam = demo_psam()
        return psam, f"demo PSAM, terminal {psam.terminal_id.hex().upper()}"
    if args.card and Path(args.card).exists():
        device = load_device(args.card)
        return device, f"{type(device).__name__} from {args.card}"
    card = demo_card()
    where = "in memory only"
    if args.card:
        card.save(args.card)
        where = f"saved to {args.card}"
    return card, f"fresh demo T-Union card {card.serial.hex().upper()} ({where})"


def run_plug(args: argparse.Namespace) -> int:
    from simulators.vpcd import VpcdBridge, VpcdError, port_for

    device, label = _device(args)
    port = port_for(args.reader)
    bridge = VpcdBridge(device, host=args.host, port=port, stay_plugged=True)
    done = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        bridge.plug()
    except VpcdError as exc:
        print(f"ykt sim plug: {exc}", file=sys.stderr)
        return 1
    print(
        f"plugged {label} into virtual reader {args.reader} (vpcd {args.host}:{port})", flush=True
    )
    print("type 'unplug', 'plug' or 'quit'; Ctrl-C pulls the card and exits", flush=True)

    def commands() -> None:
        for line in sys.stdin:
            word = line.strip().lower()
            if word in ("unplug", "u"):
                bridge.unplug()
                print("unplugged", flush=True)
            elif word in ("plug", "p"):
                bridge.plug()
                print("plugged", flush=True)
            elif word in ("quit", "q", "exit"):
                done.set()
                return
            elif word:
                print(f"unknown command {word!r}: unplug, plug or quit", flush=True)

    threading.Thread(target=commands, name="plug-commands", daemon=True).start()
    done.wait(args.seconds)
    bridge.unplug()
    save = getattr(device, "save", None)
    if save is not None and getattr(device, "path", None) is not None:
        save()
    print(f"card pulled after {bridge.apdus} APDU(s)", flush=True)
    return 0
