"""A software card or PSAM served into one vpcd reader from its own process, for benchmarks.

A real card or PSAM computes outside the host, so the PC/SC benchmark runs each in a
process of its own: its Python then neither holds the host's GIL nor evicts the host's
caches between APDUs. ``python -m benchmarks.soft_reader card|psam READER`` plugs the
device, prints ``ready``, then answers one line per command on stdin: ``busy`` (seconds
spent inside the device's ``process`` and APDUs served, space-separated); end of input or
``quit`` pulls the device and exits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from simulators.vpcd import VpcdBridge

ROOT = Path(__file__).resolve().parent.parent
CARD_NUMBER = 51
CARD_BALANCE = 100_000  # fen: thousands of 1-fen purchases
PSAM_TERMINAL = "310000000601"


def _device(kind: str) -> object:
    from simulators.profiles import demo_card, demo_psam

    if kind == "card":
        return demo_card(CARD_NUMBER, balance=CARD_BALANCE)
    if kind == "psam":
        return demo_psam(PSAM_TERMINAL)
    raise SystemExit(f"soft_reader: 'card' or 'psam', not {kind!r}")


def main(argv: list[str]) -> int:
    kind, reader = argv[0], int(argv[1])
    bridge = VpcdBridge(_device(kind), reader=reader)  # type: ignore[arg-type]
    bridge.plug()
    print("ready", flush=True)
    for line in sys.stdin:
        word = line.strip()
        if word == "busy":
            print(f"{bridge.busy_seconds} {bridge.apdus}", flush=True)
        elif word == "quit":
            break
    bridge.unplug()
    return 0


class SoftReaderProcess:
    """The host's handle on one ``soft_reader`` process: start, ask, stop by its PID."""

    def __init__(self, kind: str, reader: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soft_reader", kind, str(reader)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"soft_reader {kind} on reader {reader} did not start: {line!r}")

    def busy(self) -> tuple[float, int]:
        """Seconds the device spent computing and APDUs it served, so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("busy\n")
        self.proc.stdin.flush()
        seconds, apdus = self.proc.stdout.readline().split()
        return float(seconds), int(apdus)

    def stop(self) -> None:
        """Ask the process to pull its device and exit; terminate it by PID if it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            self.proc.wait(5)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
