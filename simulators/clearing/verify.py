"""Proof verification at clearing: the card's TAC, recomputed with the issuer's TAC master
key, and an Electronic Cash sale's TC, recomputed with the EMV issuer's AC master key.

A purchase TAC covers amount, type, terminal id, terminal sequence number, date and time;
a load TAC covers the new balance, online ATC, amount, type, terminal id, date and time.
An EC sale's TC covers the PDOL data the terminal sent (amount, country, TVR, currency,
date, type, unpredictable number); clearing checks the record's fields are those data and
the TC is the card's. Change any of them (an altered amount, a forged record) and the
proof no longer verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from simulators.emv_issuer import ac_valid
from simulators.emv_profiles import IssuerPki
from terminal.apdu.bcd import bcd_int
from terminal.apdu.errors import MacMismatch
from terminal.crypto.keyset import IssuerKeyset
from terminal.epurse.cryptograms import verify_load_tac, verify_purchase_tac
from terminal.record import EC_PURCHASE as EC_RECORD
from terminal.record import PURCHASE as PURCHASE_RECORD
from terminal.record import RecordError

PURCHASE = PURCHASE_RECORD.name
EC_PURCHASE = EC_RECORD.name
LOAD = "load"
TC = 0x40  # the CID of a transaction certificate: the card approved offline
PDOL_HEAD = 4  # the TTQ (9F66) comes before the AC input in the software card's PDOL


class Rejected(Exception):
    """A record clearing will not settle; the message is the reason given back."""


def ec_issuer_id(pan: str) -> str:
    """The EC issuer a PAN settles with (its first six digits, the issuer's BIN)."""
    return f"EC{pan[:6]}"


def _ac_input_fields(ac_input: bytes) -> dict[str, Any]:
    """What the AC input says (9F02 9F03 9F1A 95 5F2A 9A 9C 9F37, in that order)."""
    return {
        "amount": bcd_int(ac_input[0:6]),
        "amount_other": bcd_int(ac_input[6:12]),
        "country": bcd_int(ac_input[12:14]),
        "tvr": ac_input[14:19],
        "currency": bcd_int(ac_input[19:21]),
        "date": ac_input[21:24].hex(),
        "txn_type": ac_input[24],
        "unpredictable_number": ac_input[25:29],
    }


class TacVerifier:
    """Issuer key sets by issuer id (hex) and EMV issuers by BIN; checks one record's TAC (or
    an EC sale's TC) or says why it cannot."""

    def __init__(self, keysets: Iterable[IssuerKeyset], ec_issuers: Iterable[IssuerPki] = ()):
        self._keysets = {k.issuer_id.hex().upper(): k for k in keysets}
        self._ec_issuers = {i.issuer_id.hex().upper().rstrip("F"): i for i in ec_issuers}

    def check_ec(self, rec: Mapping[str, Any]) -> None:
        """Raise Rejected unless the EC sale's TC is the card's, over the data the record
        states (amount, currency, country, type, date, unpredictable number)."""
        try:
            v = EC_RECORD.read_cleared(rec)
        except RecordError as exc:
            raise Rejected(str(exc)) from None
        if v["state"] != "settled" or v["cryptogram"] is None or v["cid"] != TC:
            raise Rejected("no TC: an EC sale without the card's offline approval cannot clear")
        pan = v["pan"] or ""
        issuer = next((i for b, i in self._ec_issuers.items() if pan.startswith(b)), None)
        if issuer is None:
            raise Rejected(f"no AC key for the EC issuer of PAN {pan[:6]}")
        if None in (v["aip"], v["iad"], v["atc"], v["dol_data"]):
            raise Rejected("an EC sale must carry AIP, IAD, ATC and the PDOL data")
        ac_input = bytes.fromhex(v["dol_data"])[PDOL_HEAD:]
        said = _ac_input_fields(ac_input)
        when = v["txn_time"]
        stated = {
            "amount": v["amount"],
            "amount_other": v["amount_other"],
            "country": v["country"],
            "tvr": v["tvr"],
            "currency": v["currency"],
            "date": when.strftime("%y%m%d"),
            "txn_type": v["txn_type"],
            "unpredictable_number": v["unpredictable_number"],
        }
        wrong = [k for k in stated if said[k] != stated[k]]
        if wrong:
            raise Rejected(
                f"EC record's {', '.join(wrong)} differ from the data the TC covers:"
                " the record was altered or forged"
            )
        after = v["ec_balance_after"]
        if after is not None and after != v["ec_balance_before"] - v["amount"]:
            raise Rejected("EC balance after is not the balance before less the amount")
        psn = f"{v['pan_seq'] or 0:02X}"
        if not ac_valid(
            issuer.imk_ac,
            pan,
            psn,
            ac_input,
            v["aip"],
            v["atc"].to_bytes(2, "big"),
            bytes.fromhex(v["iad"]),
            v["cryptogram"],
        ):
            raise Rejected("TC does not verify: the record was altered or forged")

    def _tac_key(self, rec: Mapping[str, Any]) -> bytes:
        """The card's TAC key (DTK) for the record's issuer, key version and serial."""
        ks = self._keysets.get(str(rec["issuer_id"]).upper())
        if ks is None:
            raise Rejected(f"unknown issuer {rec['issuer_id']}")
        if "key_version" in rec and rec["key_version"] != ks.key_version:
            raise Rejected(f"issuer {rec['issuer_id']} has no key version {rec['key_version']}")
        return ks.card_keys(bytes.fromhex(rec["card_serial"])).tac

    def check(self, rec: Mapping[str, Any]) -> None:
        """Raise Rejected unless the record's TAC (an EC sale: TC) is the card's."""
        if rec.get("kind") == EC_PURCHASE:
            self.check_ec(rec)
            return
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
