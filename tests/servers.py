"""Real servers for tests: a throwaway PostgreSQL cluster, uvicorn in a thread or a process.

Every server is started by the test run and stopped by its PID (or pg_ctl) when the
fixture ends, failing test or not; an ``atexit`` hook catches an interrupted run.
Import what you need: ``from tests.servers import PostgresCluster, UvicornThread, ...``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn


def _pg_bin() -> Path:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server not installed (scripts/system-packages.txt)")
    return found[-1].parent


PG_BIN = _pg_bin() if Path("/usr/lib/postgresql").exists() else Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout}s: {last}")


class PostgresCluster:
    """initdb + pg_ctl as the postgres user, on a private port and socket directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ykt-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        self.started = False
        self._counter = 0

    def _as_postgres(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def start(self, *, fsync: bool = True) -> PostgresCluster:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(
            self._as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
        )
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
            f" -c fsync={'on' if fsync else 'off'} -c shared_buffers=128MB"
        )
        subprocess.run(
            self._as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "pg.log"),
                "-w",
                "-o",
                opts,
                "start",
            ),
            check=True,
            capture_output=True,
        )
        self.started = True
        atexit.register(self.stop)
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        result = subprocess.run(
            self._as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            ),
            capture_output=True,
        )
        if result.returncode != 0:
            pid_file = self.data / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


class UvicornThread:
    """A real uvicorn server on 127.0.0.1 running an app object in a background thread."""

    def __init__(self, app: Any, port: int | None = None):
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn thread did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class ServerProcess:
    """A server in its own process (for kill -9 tests): started, health-checked, killed by PID."""

    def __init__(self, args: list[str], port: int, log_path: Path, health: str = "/health"):
        self.args = args
        self.port = port
        self.log_path = log_path
        self.health = health
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed on stop
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "terminal.cli.main", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self._log = log
        atexit.register(self.kill)
        wait_http(self.url + self.health, timeout, self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush - a power cut for this process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None:
            self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            self._log.close()
