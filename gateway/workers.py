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

Connections are balanced across the workers: on one shared socket, the worker the kernel
wakes first accepts every connection already waiting, so two validators' keep-alive
connections made at once often both went to one worker, whose one GIL then parsed both
(docs/scaling.md, Gateway ingest). Each worker counts its open connections in a shared
page and leaves a waiting connection to a worker holding fewer (briefly: a worker that has
not taken it after ``_DEFER_S`` is taken over, and passed by for a while). While
it leaves one for longer than ``_SPIN_S`` (the other worker is busy or stuck), a worker
stops watching the socket and looks again every ``_LOOK_S``: the selector is level-triggered
and would otherwise wake it at once, again and again (a spin that burnt a core while the
other worker was stuck; docs/scaling.md, short-lived connections). Kept connections are
placed again: a worker holding two more than another closes one after an answer
(``Connection: close``) and the balance places the client's reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import mmap
import os
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
_DEFER_S = 0.02  # how long a busier worker leaves a waiting connection to the others
_PASS_S = 0.05  # how long a worker that let a connection be taken over is passed by
_SPIN_S = 0.0002  # asked again at once this long: the other worker takes it within this
_LOOK_S = 0.001  # a worker leaving a connection to the others looks again after this
_EPISODE_S = 0.1  # asked again within this: the same connection is still waiting
_HAND_OVER_S = 0.1  # a worker closes at most one kept connection to re-place in this time
# a worker's open connections, connections accepted in all, 1 while it is not watching
_SLOT = struct.Struct("=qqq")


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def serve(make_app: Callable[[int], Any], host: str, port: int, workers: int) -> int:
    """Run ``make_app(i)`` for worker i in ``workers`` processes (one: in this process)."""
    import uvicorn

    if workers <= 1:
        uvicorn.run(make_app(0), host=host, port=port, log_level="warning")
        return 0
    balance = Balance(workers)
    sock = _listen(host, port, balance)
    children: list[int] = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            balance.index = i
            os._exit(_worker(make_app, i, sock, os.getppid()))
        children.append(pid)
    sock.close()
    return _supervise(children)


class Balance:
    """Open and accepted connections per worker and whether it watches the socket, in a page
    shared across the fork (one writer a slot)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.index = 0
        self.page = mmap.mmap(-1, _SLOT.size * workers)
        self.deferred_since = 0.0
        self.deferred_last = 0.0
        self.passed: dict[int, tuple[int, float]] = {}  # worker -> (accepted total, until)
        self.handed_over_at = 0.0

    def count(self, i: int) -> int:
        return _SLOT.unpack_from(self.page, i * _SLOT.size)[0]

    def accepted(self, i: int) -> int:
        return _SLOT.unpack_from(self.page, i * _SLOT.size)[1]

    def away(self, i: int) -> bool:
        return bool(_SLOT.unpack_from(self.page, i * _SLOT.size)[2])

    def add(self, delta: int) -> None:
        """This worker opened (1) or closed (-1) a connection."""
        at = self.index * _SLOT.size
        held, accepted, away = _SLOT.unpack_from(self.page, at)
        _SLOT.pack_into(self.page, at, held + delta, accepted + max(delta, 0), away)

    def step_away(self, away: bool) -> None:
        """This worker stops watching the socket for a while, or watches it again."""
        at = self.index * _SLOT.size
        held, accepted, _ = _SLOT.unpack_from(self.page, at)
        _SLOT.pack_into(self.page, at, held, accepted, int(away))

    def may_step_away(self) -> bool:
        """Whether this worker, leaving a connection to the others, may stop watching: not
        before ``_SPIN_S``, nor while one of them is away itself (it would wait for nobody)."""
        if time.monotonic() - self.deferred_since < _SPIN_S:
            return False
        return not any(self.away(i) for i in range(self.workers) if i != self.index)

    def may_accept(self) -> bool:
        """Accept when no other worker holds fewer connections, or the wait ran out. A worker
        that let a connection be taken over is passed by until it accepts one again or for
        ``_PASS_S`` (a stuck worker holding few must not cost every later connection the wait;
        a worker slow once must not lose its share for good)."""
        mine = self.count(self.index)
        now = time.monotonic()
        fewer = [
            i
            for i in range(self.workers)
            if i != self.index and self.count(i) < mine and not self._passing(i, now)
        ]
        if not fewer:
            return True
        if now - self.deferred_last > _EPISODE_S:  # a new wait, not the one still pending
            self.deferred_since = now
        self.deferred_last = now
        if now - self.deferred_since < _DEFER_S:
            return False
        self.passed.update((i, (self.accepted(i), now + _PASS_S)) for i in fewer)
        return True

    def hand_over(self) -> bool:
        """Whether this worker's next answer closes its connection, so the client reconnects
        and the balance places it anew: it holds two or more connections than another worker
        that is not being passed by (connections kept alive since a worker was slow to start,
        or since others closed, stay put otherwise). One at a time, every ``_HAND_OVER_S``."""
        now = time.monotonic()
        if now - self.handed_over_at < _HAND_OVER_S:
            return False
        mine = self.count(self.index)
        if not any(
            self.count(i) + 2 <= mine and not self._passing(i, now)
            for i in range(self.workers)
            if i != self.index
        ):
            return False
        self.handed_over_at = now
        return True

    def _passing(self, i: int, now: float) -> bool:
        accepted, until = self.passed.get(i, (-1, 0.0))
        return accepted == self.accepted(i) and now < until


class _Counted(socket.socket):
    """An accepted connection that gives its worker's slot back when closed."""

    balance: Balance | None = None

    def close(self) -> None:
        if self.balance is not None:
            self.balance.add(-1)
            self.balance = None
        super().close()


class _Listener(socket.socket):
    """The shared listening socket: accepts only when balance allows (asyncio takes the
    BlockingIOError as "nothing waiting" and asks again at once; after ``_SPIN_S`` this
    worker stops watching and looks again every ``_LOOK_S``)."""

    balance: Balance

    def accept(self) -> tuple[socket.socket, Any]:
        if not self.balance.may_accept():
            if self.balance.may_step_away():
                _look_again_later(self, self.balance, _LOOK_S)
            raise BlockingIOError
        fd, addr = self._accept()  # type: ignore[attr-defined]
        conn = _Counted(self.family, self.type, self.proto, fileno=fd)
        self.balance.add(1)
        self.balance.deferred_last = 0.0  # the next wait is a new one
        conn.balance = self.balance
        return conn, addr


def _look_again_later(sock: socket.socket, balance: Balance, delay: float) -> None:
    """Stop watching ``sock`` in the running loop for ``delay``, then watch it again with
    the same accept callback (asyncio has no public pause of a server's accepting)."""
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    callback, args = accept_reader(loop, fd)
    loop.remove_reader(fd)
    balance.step_away(True)

    def again() -> None:
        balance.step_away(False)
        if sock.fileno() == fd:  # not closed by the server's shutdown meanwhile
            loop.add_reader(fd, callback, *args)

    loop.call_later(delay, again)


def accept_reader(loop: asyncio.AbstractEventLoop, fd: int) -> tuple[Callable[..., Any], tuple]:
    """The callback and arguments asyncio's selector loop reads ``fd`` with (private: the
    selector key's data is the (reader, writer) handle pair; tests/gateway/test_workers.py
    fails if a Python upgrade changes that)."""
    reader = loop._selector.get_key(fd).data[0]  # type: ignore[attr-defined]
    return reader._callback, reader._args


def _listen(host: str, port: int, balance: Balance) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it every answer (headers, then body) waits ~40 ms for the client's delayed ACK
    sock = _Listener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.balance = balance
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _HandOver:
    """ASGI: the answer of a worker holding more than its share carries ``Connection: close``
    (HTTP/1.1 clients reconnect for their next request; uvicorn closes after the answer)."""

    def __init__(self, app: Any, balance: Balance) -> None:
        self.app = app
        self.balance = balance

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start" and self.balance.hand_over():
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def _worker(make_app: Callable[[int], Any], index: int, sock: socket.socket, parent: int) -> int:
    import uvicorn

    try:
        _die_with_parent(parent)
        app = _HandOver(make_app(index), sock.balance)  # type: ignore[attr-defined]
        # asyncio's loop: it accepts through the socket object, so the balance applies
        # (uvloop would accept in C, on whichever worker the kernel woke first)
        config = uvicorn.Config(app, log_level="warning", loop="asyncio")
        uvicorn.Server(config).run(sockets=[sock])
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
