"""Hotlist sync: pull the gateway's numbered changes after the version a terminal holds.

The terminal keeps its own blocked-card set (the validator's hotlist); ``sync_hotlist``
only fetches the deltas in order, page by page, and hands each change to ``apply``. It
returns the version reached, which the terminal stores with its set so the next sync
starts there; ``sync_local_hotlist`` does exactly that for a ``terminal.hotlist.Hotlist``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from terminal.hotlist import Hotlist, HotlistError
from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable

log = logging.getLogger("terminal.uplink")


def sync_hotlist(
    client: GatewayClient,
    since: int,
    apply: Callable[[dict[str, Any]], None],
    *,
    page: int = 10_000,
    fetch: Callable[[int, int], Any] | None = None,
) -> int:
    """Apply every change after ``since`` (``action`` add = 挂失, remove = 解挂) in order.
    ``fetch(since, limit)`` reads another numbered list the same way (a door's allow list)."""
    fetch = fetch or (lambda since, limit: client.hotlist(since, limit=limit))
    version = since
    while True:
        doc = fetch(version, page)
        changes = doc.get("changes") if isinstance(doc, dict) else None
        if not isinstance(changes, list) or not isinstance(doc.get("more"), bool):
            raise GatewayUnavailable(f"the answer after version {version} is not a page")
        if doc["more"] and not changes:
            raise GatewayUnavailable(f"more changes after version {version} promised, no changes")
        for change in changes:
            version = _apply_next(change, version, apply)
        if not doc["more"]:
            return version


def _apply_next(change: Any, version: int, apply: Callable[[dict[str, Any]], None]) -> int:
    """Apply one change that follows ``version``; the feed's version after it. A change the
    terminal cannot read or that is not newer applies nothing: the gateway (or whatever
    answered) is asked again at the next sync."""
    try:
        new = change["version"]
        if type(new) is not int or new <= version:
            raise HotlistError(f"version {new!r} is not after {version}")
        apply(change)
    except (KeyError, TypeError, ValueError, HotlistError) as exc:
        raise GatewayUnavailable(f"hotlist change {str(change)[:200]}: {exc}") from exc
    return new


def sync_local_hotlist(client: GatewayClient, hotlist: Hotlist, *, page: int = 10_000) -> int:
    """Bring a terminal's ``Hotlist`` up to the gateway's version, change by change (each
    applied atomically under the gateway's version number); the version reached."""

    def apply(change: dict[str, Any]) -> None:
        serial = bytes.fromhex(change["card_serial"])
        version = int(change["version"])
        if change["action"] == "add":
            hotlist.apply(version, added=[serial])
        else:
            hotlist.apply(version, removed=[serial])

    return sync_hotlist(client, hotlist.version, apply, page=page)


class HotlistSync:
    """Keep a terminal's hotlist in step with the gateway: sync once now, then every
    ``interval`` seconds in a thread until ``stop()``; a gateway that is down is logged and
    tried again at the next interval (the terminal works offline with the list it has)."""

    def __init__(self, client: GatewayClient, hotlist: Hotlist, interval: float):
        self.client = client
        self.hotlist = hotlist
        self.interval = interval
        self.last_sync: datetime | None = None
        self.last_error = ""
        self.also: list[Callable[[], object]] = []  # other lists synced on the same beat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    name = "hotlist"  # what the log's warnings say was synced

    def sync_once(self) -> bool:
        """One sync (each of ``also``, then ``round``); whether the round reached the
        gateway."""
        for sync in self.also:
            sync()
        try:
            self.round()
        except (GatewayUnavailable, GatewayRefused) as exc:
            self.last_error = str(exc)
            log.warning("%s sync: %s", self.name, exc)
            return False
        self.last_sync = datetime.now()
        self.last_error = ""
        return True

    def round(self) -> None:
        """One round at the gateway: the hotlist (a device with more lists adds them)."""
        sync_local_hotlist(self.client, self.hotlist)

    def start(self) -> HotlistSync:
        self.sync_once()
        self._thread = threading.Thread(target=self._every, name="hotlist-sync", daemon=True)
        self._thread.start()
        return self

    def _every(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync_once()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
