"""Durable local journal (SQLite WAL, synchronous FULL): intent before DEBIT, proof after."""

from terminal.journal.journal import (
    INTENT,
    SETTLED,
    SUSPECT,
    VOID,
    EcJournalRow,
    Journal,
    JournalError,
    JournalRow,
    JournalUnavailable,
    LoadJournalRow,
)

__all__ = [
    "INTENT",
    "SETTLED",
    "SUSPECT",
    "VOID",
    "EcJournalRow",
    "Journal",
    "JournalError",
    "JournalRow",
    "JournalUnavailable",
    "LoadJournalRow",
]
