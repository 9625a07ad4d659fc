"""Records held aside: a terminal sent other content under an identity the gateway already
holds (a journal or PSAM restored from a backup, a cloned terminal id, a broken terminal).

Ingest keeps the first record and puts the other in ``txn_conflicts``, never overwriting;
neither side is lost, and an operator decides. This module lists them beside the record
held under the same identity, and counts them for /health and the metrics."""

from __future__ import annotations

import json
from typing import Any

from gateway.storage import Cursor, Database
from gateway.storage.schema import KIND_TABLES
from terminal.record import EC_PURCHASE, PURCHASE, QR_RIDE, RecordKind

# the kinds a batch may carry, by name, and where each is kept (purchases in txn)
_KINDS: dict[str, RecordKind] = {k.name: k for k in (PURCHASE, EC_PURCHASE, QR_RIDE)}
_TABLES = {PURCHASE.name: "txn", **KIND_TABLES}


def held_count(cur: Cursor) -> int:
    """How many records are held aside, waiting for an operator."""
    cur.execute("SELECT COUNT(*) FROM txn_conflicts")
    return int(cur.fetchone()[0])


def held(db: Database, *, terminal_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """The records held aside (oldest first, at most ``limit``), each with the record the
    gateway holds under the same terminal and sequence (``kept``; None if it is gone)."""
    where, args = ("WHERE terminal_id = ?", (terminal_id.upper(),)) if terminal_id else ("", ())
    with db.read() as cur:
        cur.execute(
            "SELECT id, terminal_id, terminal_seq, content_hash, record, batch_id, received_at"
            f" FROM txn_conflicts {where} ORDER BY id LIMIT ?",
            (*args, limit),
        )
        rows = cur.fetchall()
        out = []
        for cid, tid, seq, digest, record, batch_id, received_at in rows:
            sent = json.loads(record)
            kind = sent.get("kind", PURCHASE.name)
            out.append(
                {
                    "id": int(cid),
                    "terminal_id": tid,
                    "kind": kind,
                    "seq": int(seq),
                    "batch_id": batch_id,
                    "received_at_ms": int(received_at),
                    "content_hash": digest,
                    "sent": sent,
                    "kept": _kept(cur, kind, tid, int(seq)),
                }
            )
    return out


def _kept(cur: Cursor, kind_name: str, terminal_id: str, seq: int) -> dict[str, Any] | None:
    kind = _KINDS[kind_name]
    names = (*kind.names, "content_hash", "batch_id")
    cur.execute(
        f"SELECT {', '.join(names)} FROM {_TABLES[kind_name]}"
        f" WHERE terminal_id = ? AND {kind.identity[-1]} = ?",
        (terminal_id, seq),
    )
    row = cur.fetchone()
    return None if row is None else dict(zip(names, row, strict=True))
