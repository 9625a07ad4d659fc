"""Journal glue shared by every debiting role: the intent row from a PendingPurchase, and
resolving this card's open rows (torn debits) before anything else happens to it."""

from __future__ import annotations

import logging
from typing import Any

from terminal.epurse import flows
from terminal.epurse.model import CardInfo, PendingPurchase
from terminal.epurse.recovery import (
    SETTLED,
    SUSPECT,
    ProveCounter,
    Resolution,
    TornDebit,
    resolve_torn_debit,
)
from terminal.journal.journal import (
    INTENT_FIELDS,
    Journal,
    JournalError,
    JournalRow,
    JournalUnavailable,
)
from terminal.roles.session import TerminalSession

log = logging.getLogger(__name__)


# the PendingPurchase attribute for each intent field not named as in the record
_PENDING_ATTR = {"card_atc": "offline_atc", "txn_time": "when"}


def record_intent(journal: Journal, p: PendingPurchase, context: dict[str, Any]) -> int:
    """The row written before DEBIT is sent: every intent field of the record, from ``p``."""
    values = {name: getattr(p, _PENDING_ATTR.get(name, name)) for name in INTENT_FIELDS}
    return journal.record_intent(**values, context=context)


def settle_open_rows(
    session: TerminalSession,
    journal: Journal,
    info: CardInfo,
    counter: ProveCounter = ProveCounter.NEXT,
) -> list[tuple[Resolution, JournalRow]]:
    """Resolve every open row for this card (left by any terminal sharing this journal).
    A serial is unique within its issuer only: another issuer's card proves nothing here.
    The row of this PSAM's last INIT SAM FOR PURCHASE has its proven MAC2 checked by the
    PSAM (the session key is still there); the check spends that session. A card pulled
    before the check leaves the session for the card's next tap."""
    out = []
    for row in journal.open_rows(info.serial):
        if row.issuer_id != info.issuer_hex:
            continue
        torn = TornDebit(
            row.txn_type,
            row.card_atc,
            row.amount,
            bytes.fromhex(row.terminal_id),
            row.balance_before,
            row.txn_time,
        )
        current = session.purchase_seq is not None and (
            (row.terminal_id, row.terminal_seq)
            == (session.sam.terminal_id_hex, session.purchase_seq)
        )
        res = session.run(
            resolve_torn_debit(torn, session.sam, counter=counter, psam_session=current)
        )
        if current:  # the flow ran to its end: the 8072 was sent and spent the session
            session.purchase_seq = None
        try:
            _resolve_row(journal, row, res)
        except JournalUnavailable:
            raise
        except JournalError as exc:  # resolved meanwhile by a device sharing the journal
            log.warning(
                "journal row %d for card %s was resolved elsewhere during its recovery (%s);"
                " left as it is, the card said %s: %s (TAC %s)",
                row.id,
                info.card_number,
                exc,
                res.outcome,
                res.reason,
                res.tac.hex().upper() if res.tac else "-",
            )
            session.run(flows.select())
            continue
        log.info(
            "journal row %d for card %s resolved %s: %s",
            row.id,
            info.card_number,
            res.outcome,
            res.reason,
        )
        out.append((res, row))
        # the probing INITIALIZE left a purchase session open; select again to drop it
        session.run(flows.select())
    return out


def _resolve_row(journal: Journal, row: JournalRow, res: Resolution) -> None:
    """Write what the card proved about a torn row: settled, suspect or void."""
    if res.outcome == SETTLED:
        journal.settle(
            row.id,
            tac=res.tac or b"",
            mac2=res.mac2 or b"",
            mac2_verified=res.mac2_verified,
            resolution=res.reason,
        )
    elif res.outcome == SUSPECT:
        journal.mark_suspect(row.id, res.reason, tac=res.tac, mac2=res.mac2)
    else:
        journal.void(row.id, res.reason)
