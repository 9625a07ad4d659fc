"""Torn-transaction recovery (防拔): decide whether a lost DEBIT committed and fetch its proof.

The card is re-INITIALIZEd (which never changes its counters) and its offline counter is
compared with the one saved before DEBIT: unchanged means the debit never happened;
one more means it did, and GET TRANSACTION PROVE returns MAC2 and TAC. Which counter
PROVE takes is not settled in the sources (reference §7): ``ProveCounter`` makes it
configurable, defaulting to the counter after the transaction (five implementations).

The proven MAC2 is checked by the PSAM (CREDIT SAM FOR PURCHASE) when the caller knows the
PSAM still holds the session key of the torn sale's INIT SAM FOR PURCHASE (reference §7):
9000 settles it verified, a MAC error (9302) makes it suspect (a card without the keys
claims a debit it cannot prove), any other answer leaves it settled with MAC2 not checked
(a PSAM that dropped the session; clearing checks the TAC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from terminal.apdu.errors import TransportError
from terminal.apdu.flow import Flow, card, sam
from terminal.apdu.status import SW
from terminal.epurse import commands as c
from terminal.epurse.flows import read_log
from terminal.epurse.layouts import InitPurchaseResponse, ProveResponse
from terminal.epurse.model import LogEntry
from terminal.layout import parse
from terminal.sam import commands as samc
from terminal.sam.psam import SamInfo

SETTLED = "settled"
VOID = "void"
SUSPECT = "suspect"


class ProveCounter(Enum):
    NEXT = "next"  # the counter after the lost transaction (ATC from INITIALIZE + 1)
    SAME = "same"  # the counter the lost transaction used


@dataclass(frozen=True, slots=True)
class TornDebit:
    """What the journal saved before DEBIT was sent."""

    txn_type: int
    card_atc: int
    amount: int
    terminal_id: bytes
    balance_before: int
    when: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    outcome: str  # settled, void or suspect
    reason: str
    tac: bytes | None = None
    mac2: bytes | None = None
    mac2_verified: bool = False
    proof_refused: bool = False  # the PSAM refused the card's MAC2: not paid as far as we know


NOT_CHECKED = "MAC2 not checked (TAC checked at clearing)"


def resolve_torn_debit(
    torn: TornDebit,
    sam_info: SamInfo,
    *,
    counter: ProveCounter = ProveCounter.NEXT,
    probe_amount: int = 0,
    psam_session: bool = False,
) -> Flow[Resolution]:
    """Run on the same card (already selected) after a DEBIT whose answer was lost.
    ``psam_session``: the PSAM's last INIT SAM FOR PURCHASE was the torn sale's, so it can
    check the MAC2 the card proves."""
    r = yield card(
        c.initialize_for_purchase(sam_info.key_index, probe_amount, sam_info.terminal_id)
    )
    now = parse(InitPurchaseResponse, r.data, "INITIALIZE FOR PURCHASE response").offline_atc
    saved = torn.card_atc
    if now == saved:
        return Resolution(VOID, f"card counter still {saved}: the debit never committed")
    if now == saved + 1:
        newest = yield from read_log(records=1)
        if not (newest and _is_ours(newest[0], torn)):
            return Resolution(VOID, f"counter {saved}->{now} was another terminal's transaction")
        atc = saved + 1 if counter is ProveCounter.NEXT else saved
        r = yield card(c.get_transaction_prove(torn.txn_type, atc), check=False)
        if r.ok:
            proof = parse(ProveResponse, r.data, "GET TRANSACTION PROVE response")
            if not psam_session:
                reason = f"recovered with GET TRANSACTION PROVE; {NOT_CHECKED}"
                return Resolution(SETTLED, reason, tac=proof.tac, mac2=proof.mac)
            return (yield from _check_mac2(proof.mac, proof.tac))
        reason = f"card committed (counter {saved}->{now}) but refused PROVE with {r.sw:04X}"
        return Resolution(SUSPECT, reason)
    if now < saved:
        return Resolution(SUSPECT, f"card counter went back from {saved} to {now}")
    log = yield from read_log()
    if any(_is_ours(entry, torn) for entry in log):
        return Resolution(SUSPECT, "card log shows the debit; proof no longer available")
    debits = [e.atc for e in log if e.txn_type in c.PURCHASE_TYPES]
    if debits and min(debits) <= saved:
        return Resolution(VOID, f"card log covers counter {saved} and has no such debit")
    return Resolution(SUSPECT, f"card moved on to counter {now}; log too short to decide")


def _check_mac2(mac2: bytes, tac: bytes) -> Flow[Resolution]:
    """The PSAM checks the proven MAC2 under the torn sale's session key (8072)."""
    how = "recovered with GET TRANSACTION PROVE"
    try:
        r = yield sam(samc.credit_sam_for_purchase(mac2), check=False)
    except TransportError as exc:
        reason = f"{how}; {NOT_CHECKED}: the PSAM did not answer ({exc})"
        return Resolution(SETTLED, reason, tac=tac, mac2=mac2)
    if r.ok:
        reason = f"{how}; MAC2 verified by the PSAM"
        return Resolution(SETTLED, reason, tac=tac, mac2=mac2, mac2_verified=True)
    if r.sw == SW.MAC_ERROR:
        reason = (
            f"card claims the torn debit committed but the PSAM refused its MAC2 ({r.sw:04X}):"
            " not paid; kept for clearing"
        )
        return Resolution(SUSPECT, reason, tac=tac, mac2=mac2, proof_refused=True)
    reason = f"{how}; {NOT_CHECKED}: the PSAM answered {r.sw:04X}"
    return Resolution(SETTLED, reason, tac=tac, mac2=mac2)


def _is_ours(entry: LogEntry, torn: TornDebit) -> bool:
    return (
        entry.atc == torn.card_atc
        and entry.txn_type == torn.txn_type
        and entry.terminal_id == torn.terminal_id
        and entry.amount == torn.amount
        and entry.when == torn.when
    )
