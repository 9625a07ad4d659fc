"""The one journaled debit path: every role that takes money off a card goes through here.

One debit is: resolve this card's open journal rows (torn debits) first; prepare
(INITIALIZE, MAC1 and, for a composite purchase, the trip records); write the intent
row; run the card step (DEBIT, MAC2 check); settle the row with the proof. A definite
refusal of DEBIT by the card voids the row; an exchange that did not complete (card
pulled, no answer, an answer that cannot be read) leaves the row open, and the card's
next tap at any terminal sharing the journal settles or voids it. The journal is
required: there is no way to debit without it.

What differs between roles is only the card step (``PurchaseStep``: a simple purchase at
a POS, a composite purchase with trip records at a validator), passed in as flow
factories, and the context the role keeps in the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from terminal.apdu.errors import CardError, MalformedResponse, TlvError, TransportError
from terminal.apdu.flow import Flow
from terminal.epurse import flows
from terminal.epurse.flows import CacheUpdate
from terminal.epurse.model import CardInfo, PendingPurchase, PurchaseResult
from terminal.epurse.recovery import ProveCounter, Resolution
from terminal.journal.journal import VOID, EcJournalRow, Journal, JournalRow
from terminal.roles.journaling import record_intent, settle_open_rows
from terminal.roles.session import TerminalSession

log = logging.getLogger(__name__)

Recovered = list[tuple[Resolution, JournalRow]]
T = TypeVar("T")


class PaymentInterrupted(TransportError):
    """The exchange broke between the intent and the proof: the card may have been debited.
    The journal row stays open; the card's next tap settles it (paid) or voids it."""

    def __init__(self, row_id: int, cause: Exception):
        super().__init__(
            f"card removed during payment: present the same card again to finish ({cause})"
        )
        self.row_id = row_id
        self.cause = cause


class EcPaymentUncertain(PaymentInterrupted):
    """An EC exchange broke after the intent: the card may have debited its EC balance and
    will not repeat its cryptogram. The journal row stays open; the card's next tap at this
    POS settles or voids it from what the card proves (ATC, balance, its log)."""

    def __init__(self, row_id: int, cause: Exception):
        TransportError.__init__(
            self,
            f"card removed during an Electronic Cash payment: the card may have been charged;"
            f" present the same card again to finish, do not charge it another way ({cause})",
        )
        self.row_id = row_id
        self.cause = cause


@dataclass(frozen=True)
class PurchaseStep:
    """A card step in two halves: ``prepare`` runs before the intent row (nothing is debited
    yet: INITIALIZE, MAC1, cache updates); ``complete`` is the debit itself. ``complete``
    raises CardError only when the card refused DEBIT (nothing debited); once the card has
    debited, every outcome is in its result (an unverified MAC2 included)."""

    prepare: Callable[[], Flow[PendingPurchase]]
    complete: Callable[[PendingPurchase], Flow[PurchaseResult]] = flows.complete_purchase

    @classmethod
    def simple(
        cls,
        info: CardInfo,
        session: TerminalSession,
        amount: int,
        when: datetime,
        *,
        allow_balance_flag: bool = False,
    ) -> PurchaseStep:
        """An EP purchase (type 06): a merchant POS."""
        return cls(
            lambda: flows.prepare_purchase(
                info, session.sam, amount, when, allow_balance_flag=allow_balance_flag
            )
        )

    @classmethod
    def composite(
        cls,
        info: CardInfo,
        session: TerminalSession,
        amount: int,
        when: datetime,
        *,
        cache_updates: Callable[[int], list[CacheUpdate]],
        issuer_factor: bool = True,
        updates_before_mac1: bool = False,
        allow_balance_flag: bool = False,
    ) -> PurchaseStep:
        """A composite (CAPP, type 09) purchase writing trip records: a validator."""
        return cls(
            lambda: flows.prepare_purchase(
                info,
                session.sam,
                amount,
                when,
                capp=True,
                issuer_factor=issuer_factor,
                cache_updates=cache_updates,
                updates_before_mac1=updates_before_mac1,
                allow_balance_flag=allow_balance_flag,
            )
        )


@dataclass(frozen=True)
class Debit:
    """A debit that reached the card and came back with its proof; ``row`` is settled
    (or suspect, when the PSAM did not verify MAC2)."""

    result: PurchaseResult
    row: JournalRow
    recovered: tuple[tuple[Resolution, JournalRow], ...] = ()


class DebitPath:
    """One terminal's way to DEBIT: its session (card + PSAM) and its journal."""

    def __init__(self, session: TerminalSession, journal: Journal):
        if not isinstance(journal, Journal):
            raise TypeError(
                f"a debiting role needs a journal, got {type(journal).__name__}: "
                "every debit is journaled before and after DEBIT"
            )
        self.session = session
        self.journal = journal

    def recover(self, info: CardInfo, *, counter: ProveCounter = ProveCounter.NEXT) -> Recovered:
        """Settle or void this card's open rows (torn debits from any terminal sharing the
        journal). Roles call it early when the outcome shapes their decision; ``debit``
        calls it again, which costs one query when nothing is open."""
        return settle_open_rows(self.session, self.journal, info, counter)

    def debit(
        self,
        info: CardInfo,
        step: PurchaseStep,
        context: dict[str, Any],
        *,
        counter: ProveCounter = ProveCounter.NEXT,
    ) -> Debit:
        """Recover, prepare, intent, DEBIT, settle. Errors before the intent leave nothing in
        the journal; a card refusal of DEBIT voids the row and is raised; an interrupted
        exchange leaves the row open and raises PaymentInterrupted."""
        recovered = self.recover(info, counter=counter)
        s = self.session
        pending = s.run(step.prepare())
        row_id = record_intent(self.journal, pending, context)
        try:
            result = s.run(step.complete(pending))
        except CardError as exc:
            self.journal.void(row_id, f"card refused DEBIT: {exc}")
            raise
        except (TransportError, MalformedResponse, TlvError) as exc:
            log.warning(
                "DEBIT torn for card %s (journal row %d): %s", info.card_number, row_id, exc
            )
            raise PaymentInterrupted(row_id, exc) from exc
        row = self.journal.settle(
            row_id, tac=result.tac, mac2=result.mac2, mac2_verified=result.mac2_verified
        )
        return Debit(result, row, tuple(recovered))

    def ec_purchase(
        self,
        intent: dict[str, Any],
        complete: Callable[[], Flow[T]],
        proof: Callable[[T], tuple[str, str, dict[str, Any]]],
    ) -> tuple[T, EcJournalRow]:
        """An Electronic Cash purchase: the intent row (``EC_PURCHASE`` fields known before
        GPO), the card step (GPO, where the card debits), then the row resolved by
        ``proof(result)`` -> (state, resolution, proof fields). A card refusal voids the
        row and is raised; a torn exchange leaves it open and raises EcPaymentUncertain:
        the role matches it with what the card proves at its next tap."""
        row_id = self.journal.record_ec_intent(intent)
        try:
            result = self.session.run(complete())
        except CardError as exc:
            self.journal.resolve_ec(row_id, VOID, f"card refused GPO: {exc}")
            raise
        except (TransportError, MalformedResponse, TlvError) as exc:
            log.warning("EC GPO torn (journal EC row %d): %s", row_id, exc)
            raise EcPaymentUncertain(row_id, exc) from exc
        state, resolution, fields = proof(result)
        return result, self.journal.resolve_ec(row_id, state, resolution, fields)
