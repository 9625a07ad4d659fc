"""Real stacks for tests: our own pcscd (foreground, no auto-exit) with vsmartcard-vpcd.

Import the fixtures where they are needed (``from tests.stacks import pcscd, plugged``).
Only one pcscd may run on the machine: a stale one (found by its pid file and checked to
be pcscd) is stopped first, and ours is stopped by its PID when the session ends, even
when tests fail. Virtual readers: ``Virtual PCD 00 00`` (card) and ``Virtual PCD 00 01``
(SAM); pcscd polls vpcd about every 0.4 s, so card events take up to that long.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.vpcd import VpcdBridge
from terminal.apdu.errors import ReaderUnavailable
from terminal.readers.pcsc import PcscReader, list_readers

PCSCD = shutil.which("pcscd") or "/usr/sbin/pcscd"
RUN_DIR = Path("/run/pcscd")
COMM = RUN_DIR / "pcscd.comm"
PID_FILE = RUN_DIR / "pcscd.pid"
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
VPCD_CHANNEL = 0x8C7B  # TCP 35963 for slot 00, 35964 for slot 01

CARD_READER = "Virtual PCD 00 00"
SAM_READER = "Virtual PCD 00 01"


def _is_pcscd(pid: int) -> bool:
    """A live pcscd process (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, _, rest = stat.partition(") ")
    return name.endswith("(pcscd") and not rest.startswith("Z")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_pcscd(pid):
            return True
        time.sleep(0.02)
    return False


def stop_stale_pcscd() -> None:
    """Stop a pcscd left running (by an earlier run or the package), found by its pid file."""
    try:
        pid = int(PID_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not _is_pcscd(pid):
        return
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, 5.0):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


VPCD_PORTS = (35963, 35964)
RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def reserve_vpcd_ports() -> None:
    """Take vpcd's ports out of the kernel's ephemeral range (root only; a no-op otherwise).

    They lie inside Linux's default ephemeral range (32768-60999): a test's client
    connection to uvicorn or PostgreSQL can be given local port 35963/35964, and a pcscd
    started meanwhile then fails with "Address already in use" and shows no reader.
    """
    if os.geteuid() != 0 or not RESERVED_PORTS.exists():
        return
    current = RESERVED_PORTS.read_text().strip()
    wanted = f"{VPCD_PORTS[0]}-{VPCD_PORTS[1]}"
    if wanted not in current.split(","):
        RESERVED_PORTS.write_text(f"{current},{wanted}" if current else wanted)


def wait_vpcd_ports_free(timeout: float = 70.0) -> None:
    """Wait until vpcd could bind its ports (a socket still using one blocks it)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = []
        for port in VPCD_PORTS:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("", port))
                except OSError:
                    busy.append(port)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"vpcd ports {busy} still in use after {timeout} s")
        time.sleep(0.1)


class Pcscd:
    """One pcscd process of ours with a reader.conf.d holding just the vpcd entry."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.confdir = workdir / "reader.conf.d"
        self.log = workdir / "pcscd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.friendly_name = "Virtual PCD"

    def _write_config(self, friendly_name: str) -> None:
        self.confdir.mkdir(parents=True, exist_ok=True)
        (self.confdir / "vpcd").write_text(
            f'FRIENDLYNAME "{friendly_name}"\n'
            f"DEVICENAME   /dev/null:0x{VPCD_CHANNEL:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{VPCD_CHANNEL:04X}\n"
        )
        self.friendly_name = friendly_name

    def start(self, friendly_name: str = "Virtual PCD", timeout: float = 10.0) -> None:
        if not Path(VPCD_DRIVER).exists():
            raise RuntimeError(f"vsmartcard-vpcd is not installed ({VPCD_DRIVER} missing)")
        stop_stale_pcscd()
        wait_vpcd_ports_free()
        self._write_config(friendly_name)
        COMM.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PCSCD, "--foreground", "--config", str(self.confdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        want = f"{friendly_name} 00 00"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self.proc.returncode}; see {self.log}")
            if COMM.exists():
                with contextlib.suppress(ReaderUnavailable):
                    if want in list_readers():
                        return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"pcscd did not come up within {timeout} s; see {self.log}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)

    def restart(self, friendly_name: str | None = None) -> None:
        self.stop()
        self.start(friendly_name or self.friendly_name)


_daemon: Pcscd | None = None


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """The one pcscd of this test run, shared by every module that imports the fixture.

    Each importing module holds its own copy of this fixture, so the daemon lives in a
    module global; it is stopped at the end of the session and, should pytest die
    first, at interpreter exit.
    """
    global _daemon
    if _daemon is None:
        _daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
        atexit.register(_daemon.stop)
    if _daemon.proc is None or _daemon.proc.poll() is not None:
        _daemon.start()
    try:
        yield _daemon
    finally:
        _daemon.stop()


def wait_reader_state(name: str, present: bool, timeout: float = 5.0) -> bool:
    """Wait (by status change, not sleeping) until ``name`` has or lacks a card."""
    reader = PcscReader(name)
    try:
        return (reader.wait_for_card if present else reader.wait_for_removal)(timeout)
    finally:
        reader.close()


Plug = Callable[..., VpcdBridge]


@pytest.fixture
def plug(pcscd: Pcscd) -> Iterator[Plug]:
    """``plug(card, reader=0)`` puts a software card in a virtual reader and waits until
    pcscd sees it; every card is pulled at teardown and the readers left EMPTY."""
    bridges: list[VpcdBridge] = []

    def do(card: Any, reader: int = 0, **options: Any) -> VpcdBridge:
        bridge = VpcdBridge(card, reader=reader, **options)
        bridge.plug()
        bridges.append(bridge)
        name = f"{pcscd.friendly_name} 00 {reader:02d}"
        assert wait_reader_state(name, present=True), f"pcscd never saw the card in {name}"
        return bridge

    yield do
    for bridge in bridges:
        bridge.unplug()
    if pcscd.proc is not None:
        for reader in range(2):
            wait_reader_state(f"{pcscd.friendly_name} 00 {reader:02d}", present=False)
