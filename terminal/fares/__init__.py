"""Fares as data (TOML fare files) and a pure fare engine."""

from terminal.fares.engine import FareDecision, Mode, Place, TripState, decide
from terminal.fares.rules import DEMO_FARES, FareFileError, FareRules, load_rules

__all__ = [
    "DEMO_FARES",
    "FareDecision",
    "FareFileError",
    "FareRules",
    "Mode",
    "Place",
    "TripState",
    "decide",
    "load_rules",
]
