"""Hotlist sync: pull the gateway's numbered changes after the version a terminal holds.

The terminal keeps its own blocked-card set (the validator's hotlist); this only fetches
the deltas in order, page by page, and hands each change to ``apply``. It returns the
version reached, which the terminal stores with its set so the next sync starts there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
