"""TAC verification at clearing: the card's TAC, recomputed with the issuer's TAC master key.

A purchase TAC covers amount, type, terminal id, terminal sequence number, date and time;
a load TAC covers the new balance, online ATC, amount, type, terminal id, date and time.
Change any of them (an altered amount, a forged record) and the TAC no longer verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from terminal.apdu.errors import MacMismatch
from terminal.crypto.keyset import IssuerKeyset
from terminal.epurse.cryptograms import verify_load_tac, verify_purchase_tac
from terminal.record import PURCHASE as PURCHASE_RECORD

PURCHASE = PURCHASE_RECORD.name
LOAD = "load"


class Rejected(Exception):
    """A record clearing will not settle; the message is the reason given back."""


class TacVerifier:
    """Issuer key sets by issuer id (hex); checks one record's TAC or says why it cannot."""

    def __init__(self, keysets: Iterable[IssuerKeyset]):
        self._keysets = {k.issuer_id.hex().upper(): k for k in keysets}

    def _tac_key(self, rec: Mapping[str, Any]) -> bytes:
        """The card's TAC key (DTK) for the record's issuer, key version and serial."""
        ks = self._keysets.get(str(rec["issuer_id"]).upper())
        if ks is None:
            raise Rejected(f"unknown issuer {rec['issuer_id']}")
        if "key_version" in rec and rec["key_version"] != ks.key_version:
            raise Rejected(f"issuer {rec['issuer_id']} has no key version {rec['key_version']}")
        return ks.card_keys(bytes.fromhex(rec["card_serial"])).tac

    def check(self, rec: Mapping[str, Any]) -> None:
        """Raise Rejected unless the record's TAC is the card's."""
        tac = rec.get("tac")
        if not tac:
            raise Rejected("no TAC: a record without the card's proof cannot be cleared")
        key = self._tac_key(rec)
        terminal_id = bytes.fromhex(rec["terminal_id"])
        try:
            if rec["kind"] == PURCHASE:
                v = PURCHASE_RECORD.read_cleared(rec)
                verify_purchase_tac(
                    key,
                    v["tac"],
                    amount=v["amount"],
                    txn_type=v["txn_type"],
                    terminal_id=v["terminal_id"],
                    terminal_seq=v["terminal_seq"],
                    when=v["txn_time"],
                )
            elif rec["kind"] == LOAD:
                verify_load_tac(
                    key,
                    bytes.fromhex(tac),
                    new_balance=rec["balance_before"] + rec["amount"],
                    online_atc=rec["online_atc"],
                    amount=rec["amount"],
                    terminal_id=terminal_id,
                    when=datetime.fromisoformat(rec["host_time"]),
                )
            else:
                raise Rejected(f"unknown record kind {rec['kind']!r}")
        except MacMismatch:
            raise Rejected("TAC does not verify: the record was altered or forged") from None
