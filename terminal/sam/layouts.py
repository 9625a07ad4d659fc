"""PSAM byte layouts (reference §4), declared once for the terminal and the software PSAM."""

from __future__ import annotations

import construct as cs

from terminal.layout import Amount, BcdDate, BcdDateTime

SamAppInfo = cs.Struct(  # transport application file 0x17, 25 bytes
    "key_index" / cs.Int8ub,
    "issuer_id" / cs.Bytes(8),
    "receiver_id" / cs.Bytes(8),
    "start_date" / BcdDate,
    "end_date" / BcdDate,
)

Mac1Request = cs.Struct(  # INIT SAM FOR PURCHASE (80 70), Lc 1C + 8 per extra factor
    "card_random" / cs.Bytes(4),
    "offline_atc" / cs.Int16ub,
    "amount" / Amount,
    "txn_type" / cs.Int8ub,
    "when" / BcdDateTime,
    "key_version" / cs.Int8ub,
    "algorithm" / cs.Int8ub,
    "card_serial" / cs.Bytes(8),
    "factors" / cs.GreedyRange(cs.Bytes(8)),
)

Mac1Response = cs.Struct("terminal_seq" / cs.Int32ub, "mac1" / cs.Bytes(4))
