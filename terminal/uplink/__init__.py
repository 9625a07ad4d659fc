"""Uplink to the gateway: store-and-forward from the journal, and the online-load host client."""

from terminal.uplink.client import GatewayClient, GatewayRefused, GatewayUnavailable
from terminal.uplink.loadhost import HttpLoadHost, resolve_load
from terminal.uplink.uploader import Uplink, UplinkStats

__all__ = [
    "GatewayClient",
    "GatewayRefused",
    "GatewayUnavailable",
    "HttpLoadHost",
    "Uplink",
    "UplinkStats",
    "resolve_load",
]
