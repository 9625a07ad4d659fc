"""Hotlist sync: pull the gateway's numbered changes after the version a terminal holds.

The terminal keeps its own blocked-card set (the validator's hotlist); ``sync_hotlist``
only fetches the deltas in order, page by page, and hands each change to ``apply``. It
returns the version reached, which the terminal stores with its set so the next sync
starts there; ``sync_local_hotlist`` does exactly that for a ``terminal.hotlist.Hotlist``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminal.hotlist import Hotlist
from terminal.uplink.client import GatewayClient


def sync_hotlist(
    client: GatewayClient,
    since: int,
    apply: Callable[[dict[str, Any]], None],
    *,
    page: int = 10_000,
) -> int:
    """Apply every change after ``since`` (``action`` add = 挂失, remove = 解挂) in order."""
    version = since
    while True:
        doc = client.hotlist(version, limit=page)
        for change in doc["changes"]:
            apply(change)
            version = int(change["version"])
        if not doc["more"]:
            return version


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
