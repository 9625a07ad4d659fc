"""Uplink to the gateway: the HTTP client and store-and-forward from the journal."""

from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable
from terminal.uplink.hotlist import HotlistSync, sync_hotlist, sync_local_hotlist
from terminal.uplink.uploader import Uplink, UplinkStats, UploadWorker

__all__ = [
    "GatewayClient",
    "GatewayRefused",
    "GatewayUnavailable",
    "HotlistSync",
    "Uplink",
    "UplinkStats",
    "UploadWorker",
    "sync_hotlist",
    "sync_local_hotlist",
]
