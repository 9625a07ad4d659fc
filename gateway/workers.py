"""Serve the gateway from several worker processes sharing one listening socket.

One Python process validates and answers on one core (the GIL); ingest is CPU-bound in the
gateway (JSON, per-record checks), so ``ykt gateway serve`` runs one uvicorn worker per CPU
by default. The parent binds the socket, forks the workers and supervises them; each
worker opens its own database handle after the fork (a SQLite or PostgreSQL connection is
never shared across a fork). Workers share nothing but the database: ingest is idempotent
per (terminal, sequence) and per batch id, SQLite writers take the lock with BEGIN IMMEDIATE
and wait for it with a busy timeout. A worker dies with its parent (a SIGKILL of the parent
leaves no orphan still answering on the port), and the parent stops every worker when one
of them exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def serve(make_app: Callable[[int], Any], host: str, port: int, workers: int) -> int:
    """Run ``make_app(i)`` for worker i in ``workers`` processes (one: in this process)."""
    import uvicorn

    if workers <= 1:
        uvicorn.run(make_app(0), host=host, port=port, log_level="warning")
        return 0
    sock = _listen(host, port)
    children: list[int] = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            os._exit(_worker(make_app, i, sock, os.getppid()))
        children.append(pid)
    sock.close()
    return _supervise(children)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it every answer (headers, then body) waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(make_app: Callable[[int], Any], index: int, sock: socket.socket, parent: int) -> int:
    import uvicorn

    try:
        _die_with_parent(parent)
        app = make_app(index)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        return 0
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        return 1


def _die_with_parent(parent: int) -> None:
    """SIGKILL this worker when the parent dies (Linux); a parent already gone: exit now."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _supervise(children: list[int]) -> int:
    """Wait for the workers; a signal or one worker's exit stops them all."""
    alive = set(children)

    def stop(*_: Any) -> None:
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while alive:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        status = status or (1 if os.waitstatus_to_exitcode(code) else 0)
        stop()
    return status
