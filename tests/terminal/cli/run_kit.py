"""A device run by ``ykt run`` in its own process and a real gateway process (``ykt gateway
serve`` on SQLite) for it to upload to, shared by the validator and POS service tests."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from simulators.profiles import demo_card
from terminal.journal import Journal
from terminal.private_files import write_private
from tests.cli_kit import YKT, ykt
from tests.servers import ROOT, ServerProcess


class Device:
    """``ykt run`` in its own process, watched through its /health."""

    def __init__(self, config: Path, status_port: int):
        self.config, self.status_port = config, status_port
        self.out = open(config.parent / "run.log", "ab")  # noqa: SIM115 - closed in signal()
        self.proc = subprocess.Popen(
            [*YKT, "run", str(config)], stdout=self.out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    def health(self) -> dict[str, object] | None:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).json()
        except httpx.HTTPError:
            return None

    def wait_until(self, what: str, timeout: float = 30.0, **want: int) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"ykt run exited {self.proc.returncode}"
            h = self.health()
            if h is not None and all(int(h.get(k, -1)) >= v for k, v in want.items()):  # type: ignore[call-overload]
                return h
            time.sleep(0.05)
        raise AssertionError(f"{what}: /health never showed {want}: {self.health()}")

    def wait_until_sent(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.health()
            if h is not None and h.get("waiting_upload") == 0 and h.get("open_rows") == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"rows still waiting: {self.health()}")

    def signal(self, signum: int) -> int:
        os.kill(self.proc.pid, signum)
        try:
            return self.proc.wait(30)
        finally:
            self.out.close()

    def stop_among(
        self,
        send: Callable[[int], tuple[int, dict[str, Any]]],
        stopping: str,
        what: str,
        **want: int,
    ) -> list[tuple[int, dict[str, Any]]]:
        """SIGTERM among back-to-back requests: ``send(n)`` (n = 0, 1, ...) from a thread until
        one is refused or the port closes, the signal once /health shows ``want``. The device
        exits 0 and every refusal is the 503 ``stopping``; the answers, in order."""
        answers: list[tuple[int, dict[str, Any]]] = []

        def sender() -> None:
            try:
                while True:
                    answers.append(send(len(answers)))
                    if answers[-1][0] != 200:
                        return
            except httpx.HTTPError:  # the server stopped listening
                return

        thread = threading.Thread(target=sender)
        thread.start()
        self.wait_until(what, **want)
        assert self.signal(signal.SIGTERM) == 0
        thread.join(30)
        assert not thread.is_alive()
        for status, doc in answers:
            if status != 200:
                assert (status, doc["refused"]) == (503, stopping)
        return answers


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the plain text tests use
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def section(name: str, **keys: object) -> str:
    """A ``[name]`` section of a test device's configuration holding ``keys``."""
    return "".join([f"[{name}]\n", *(f"{k} = {_toml(v)}\n" for k, v in keys.items())])


def write_config(path: Path, *sections: str) -> Path:
    """The configuration at ``path``, the sections one after another."""
    path.write_text("\n".join(sections), encoding="utf-8")
    return path


SIM_READERS = section("readers", card="sim", sam="sim")


def journal_section(path: str = "journal.db") -> str:
    """A ``[journal]`` section checked every second."""
    return section("journal", path=path, check_interval=1.0)


def hotlist_section(*, sync: bool = True) -> str:
    """A ``[hotlist]`` at ``hotlist.db``, synced every second from the gateway when ``sync``."""
    return section("hotlist", path="hotlist.db", **({"sync_interval": 1.0} if sync else {}))


def status_section(port: int) -> str:
    return section("status", port=port)


def gateway_section(port: int) -> str:
    """A ``[gateway]`` section for a test device: quick uploads and retries, a token file
    ``terminal.token`` next to the configuration (``register`` writes it)."""
    return section(
        "gateway",
        url=f"http://127.0.0.1:{port}",
        token_file="terminal.token",
        upload_interval=0.3,
        backoff_base=0.1,
        backoff_cap=0.5,
        timeout=2.0,
        flush_timeout=5.0,
    )


def card_files(tmp: Path, count: int, balance: int, *, serial_base: int = 0) -> list[str]:
    """The names ``card1.json`` .. of ``count`` demo software cards in ``tmp``, card ``i``
    with serial ``serial_base + i``: made with ``balance`` fen the first time, kept as saved
    afterwards (a restarted device carries on with the cards it left)."""
    names = [f"card{i}.json" for i in range(1, count + 1)]
    for i, name in enumerate(names, start=1):
        if not (tmp / name).exists():
            demo_card(serial_base + i, balance=balance).save(tmp / name)
    return names


def start_gateway(tmp: Path, port: int) -> ServerProcess:
    """``ykt gateway serve`` on ``tmp/gateway.db``, in its own process."""
    args = ["gateway", "serve", "--db", f"sqlite:///{tmp / 'gateway.db'}", "--demo-keys"]
    return ServerProcess([*args, "--port", str(port)], port, tmp / "gateway.log").start()


def gateway_rows(tmp: Path) -> list[tuple[str, int]]:
    """(terminal id, terminal seq) of every transaction the gateway stored."""
    with sqlite3.connect(tmp / "gateway.db") as db:
        return db.execute(
            "SELECT terminal_id, terminal_seq FROM txn ORDER BY terminal_seq"
        ).fetchall()


def journal_rows(path: Path) -> list[tuple[str, int]]:
    """(terminal id, terminal seq) of every journal row, once none is open, waiting or
    parked (asserted)."""
    with Journal(path) as j:
        assert j.open_rows() == [], "rows left open"
        rows = j.export(limit=100_000, include_uploaded=True)
        assert j.pending_upload() == 0 and j.parked() == []
        return [(r.terminal_id, r.terminal_seq) for r in rows]


def register(tmp: Path, terminal_id: str, role: str, operator: str) -> None:
    """Register the terminal at the gateway; its token goes to ``tmp/terminal.token``."""
    token = ykt(
        "gateway",
        "terminal",
        "add",
        terminal_id,
        "--operator",
        operator,
        "--role",
        role,
        "--db",
        f"sqlite:///{tmp / 'gateway.db'}",
    ).stdout.strip()
    write_private(tmp / "terminal.token", token + "\n")
