"""Proof verification at clearing: the card's TAC, recomputed with the issuer's TAC master
key, and an Electronic Cash sale's TC, recomputed with the EMV issuer's AC master key.

A purchase TAC covers amount, type, terminal id, terminal sequence number, date and time;
a load TAC covers the new balance, online ATC, amount, type, terminal id, date and time.
An EC sale's TC covers the PDOL data the terminal sent (amount, country, TVR, currency,
date, type, unpredictable number); clearing checks the record's fields are those data and
the TC is the card's. A ride paid by a QR code carries the whole code: clearing checks the
record restates it, the fare is within its limit, and re-verifies its chain (root key,
issuer certificate, issuer and user signatures). Change any of them (an altered amount, a
forged record) and the proof no longer verifies. Which PDOL data the AC covers, in which
order, is the card's issuer's choice: an ``AcLayout`` per EMV issuer BIN (default: the
software card's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulators.emv_card import CONTACTLESS_PDOL
from simulators.emv_issuer import ac_valid
from simulators.emv_profiles import IssuerPki
from terminal.apdu.bcd import bcd_int
from terminal.apdu.errors import MacMismatch
from terminal.crypto.keyset import IssuerKeyset
from terminal.emv.dol import parse_dol, split_dol_data
from terminal.emv.errors import DolError
from terminal.emv.tags import Tag
from terminal.epurse.cryptograms import verify_load_tac, verify_purchase_tac
from terminal.qr import sm2
from terminal.qr.checks import IssuerRule, QrPolicy, RootKey, check_chain, check_record
from terminal.qr.code import QrError
from terminal.record import EC_PURCHASE as EC_RECORD
from terminal.record import PURCHASE as PURCHASE_RECORD
from terminal.record import QR_RIDE as QR_RECORD
from terminal.record import RecordError

PURCHASE = PURCHASE_RECORD.name
EC_PURCHASE = EC_RECORD.name
QR_RIDE = QR_RECORD.name
LOAD = "load"
TC = 0x40  # the CID of a transaction certificate: the card approved offline

# a PDOL object the AC covers -> the record field stating it, and how its bytes read
STATED_BY: dict[int, tuple[str, Any]] = {
    Tag.AMOUNT: ("amount", bcd_int),
    Tag.AMOUNT_OTHER: ("amount_other", bcd_int),
    Tag.TERMINAL_COUNTRY: ("country", bcd_int),
    Tag.TVR: ("tvr", bytes),
    Tag.CURRENCY: ("currency", bcd_int),
    Tag.DATE: ("date", bytes.hex),
    Tag.TXN_TYPE: ("txn_type", lambda b: b[0]),
    Tag.UNPREDICTABLE_NUMBER: ("unpredictable_number", bytes),
}
# what a TC must cover for clearing to pay on it
MUST_COVER = (Tag.AMOUNT, Tag.CURRENCY, Tag.DATE, Tag.UNPREDICTABLE_NUMBER)


class Rejected(Exception):
    """A record clearing will not settle; the message is the reason given back."""


@dataclass(frozen=True)
class AcLayout:
    """How an EMV issuer's cards build the AC input of a qPBOC TC: from the PDOL data the
    terminal sent (``pdol``: the DOL it was built by), the objects after the first
    ``skip`` ones (the TTQ), in PDOL order. ValueError when the AC would not cover the
    amount, currency, date and unpredictable number."""

    name: str
    pdol: bytes
    skip: int = 1

    def __post_init__(self) -> None:
        try:
            tags = [e.tag for e in parse_dol(self.pdol)[self.skip :]]
        except DolError as exc:
            raise ValueError(f"AC layout {self.name}: {exc}") from None
        missing = [f"{t:X}" for t in MUST_COVER if t not in tags]
        unknown = [f"{t:X}" for t in tags if t not in STATED_BY]
        if missing or unknown:
            raise ValueError(
                f"AC layout {self.name}: the AC must cover {', '.join(missing) or '-'};"
                f" no record field states {', '.join(unknown) or '-'}"
            )

    def read(self, dol_data: bytes) -> tuple[bytes, dict[str, Any]]:
        """The AC input in the PDOL data, and what it says by record field; Rejected when
        the data is not this layout's."""
        try:
            values = split_dol_data(self.pdol, dol_data)
        except DolError as exc:
            raise Rejected(f"the PDOL data is not the {self.name} layout: {exc}") from None
        covered = [e.tag for e in parse_dol(self.pdol)[self.skip :]]
        try:
            said = {STATED_BY[t][0]: STATED_BY[t][1](values[t]) for t in covered}
        except ValueError:
            raise Rejected(f"the PDOL data does not read as the {self.name} layout") from None
        return b"".join(values[t] for t in covered), said


# the software card's (simulators/emv_card.py): TTQ, then 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37
SOFTWARE_CARD = AcLayout("software card", CONTACTLESS_PDOL)


class TacVerifier:
    """Issuer key sets by issuer id (hex) and EMV issuers by BIN, each with the AC layout of
    its cards (``ec_layouts`` by BIN; the software card's when not named), and the ride-code
    root keys by index with the issuing platforms' signer IDs (``qr_issuers``); checks one
    record's TAC (an EC sale's TC, a QR ride's code) or says why it cannot."""

    def __init__(
        self,
        keysets: Iterable[IssuerKeyset],
        ec_issuers: Iterable[IssuerPki] = (),
        ec_layouts: Mapping[str, AcLayout] | None = None,
        qr_roots: Mapping[int, RootKey] | None = None,
        qr_issuers: Iterable[IssuerRule] = (),
        qr_policy: QrPolicy | None = None,
    ):
        self._keysets = {k.issuer_id.hex().upper(): k for k in keysets}
        self._ec_issuers = {i.issuer_id.hex().upper().rstrip("F"): i for i in ec_issuers}
        self._ec_layouts = dict(ec_layouts or {})
        self._qr_roots = dict(qr_roots or {})
        self._qr_issuers = {r.issuer_code.upper(): r for r in qr_issuers}
        self._qr_policy = qr_policy or QrPolicy()  # validity maximum and clock skew

    def check_qr(self, rec: Mapping[str, Any]) -> None:
        """Raise Rejected unless the ride's code is one the issuing platform signed for this
        rider: the record restates the code, the fare is within its limit, the ride's time is
        inside the code's validity, and the chain verifies with the root key it names (as of
        the ride's day)."""
        try:
            QR_RECORD.read_cleared(rec)
            code = check_record(rec, self._qr_policy)
            rule = self._qr_issuers.get(code.issuer_code)
            signer_id = rule.signer_id if rule is not None else sm2.DEFAULT_SIGNER_ID
            day = datetime.fromisoformat(rec["txn_time"]).date()
            check_chain(code, self._qr_roots, self._qr_policy, day, signer_id)
        except (QrError, RecordError) as exc:
            raise Rejected(f"ride code does not verify: {exc}") from None

    def ac_layout(self, pan: str) -> AcLayout:
        """The AC layout of the EC issuer whose BIN starts ``pan``."""
        return next(
            (lay for b, lay in self._ec_layouts.items() if pan.startswith(b)), SOFTWARE_CARD
        )

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
        ac_input, said = self.ac_layout(pan).read(bytes.fromhex(v["dol_data"]))
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
        wrong = [k for k in said if said[k] != stated[k]]
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
        if rec.get("kind") == QR_RIDE:
            self.check_qr(rec)
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
