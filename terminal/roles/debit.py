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

Credits take the twin path, ``CreditPath.load``: resolve this card's open load rows;
INITIALIZE FOR LOAD; the host's MAC2 (nothing is journaled when it declines); the intent
row; CREDIT FOR LOAD; the TAC noted; the gateway's confirmation; the row settled. A card
pulled after CREDIT leaves the row open, and the card's next visit proves it (GET
TRANSACTION PROVE: the gateway confirms) or voids it (a fresh INITIALIZE FOR LOAD answering
the gateway's void challenge), so the card's balance and the gateway's load always agree.
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
from terminal.epurse.host import LoadDeclined
from terminal.epurse.model import (
    CardInfo,
    LoadAuthorization,
    LoadRequest,
    LoadResult,
    PendingPurchase,
    PurchaseResult,
)
from terminal.epurse.recovery import ProveCounter, Resolution
from terminal.journal.journal import (
    SETTLED,
    SUSPECT,
    VOID,
    EcJournalRow,
    Journal,
    JournalRow,
    LoadJournalRow,
)
from terminal.roles.journaling import record_intent, settle_open_rows
from terminal.roles.load_host import HttpLoadHost, resolve_load_doc
from terminal.roles.session import TerminalSession
from terminal.uplink.client import GatewayRefused, GatewayUnavailable

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


# -- credits --------------------------------------------------------------------------------
class LoadInterrupted(TransportError):
    """The exchange broke after the host's MAC2 was journaled: the card may have credited.
    The row stays open; the card's next visit proves the load (confirmed) or voids it."""

    def __init__(self, row_id: int, cause: Exception):
        super().__init__(
            "card removed during the top-up: present the same card again to finish "
            f"(it is credited once or not at all) ({cause})"
        )
        self.row_id = row_id
        self.cause = cause


@dataclass(frozen=True)
class Credit:
    """A load the card credited; ``row`` is settled once the gateway confirmed the TAC, or
    still open (with the TAC) when the gateway could not be told yet."""

    result: LoadResult
    row: LoadJournalRow
    recovered: tuple[tuple[str, LoadJournalRow], ...] = ()

    @property
    def confirmed(self) -> bool:
        return self.row.state == SETTLED


Settled = list[tuple[str, LoadJournalRow]]


def _load_doc(row: LoadJournalRow) -> dict[str, Any]:
    """The row as ``resolve_load`` reads a gateway load (its wire form)."""
    return {
        "reference": row.reference,
        "card_serial": row["card_serial"],
        "issuer_id": row["issuer_id"],
        "online_atc": row["online_atc"],
    }


class CreditPath:
    """One terminal's way to CREDIT FOR LOAD (a kiosk's top-up and subsidy pickup, a desk's
    carried balance): its session, its journal and the gateway."""

    def __init__(self, session: TerminalSession, journal: Journal, host: HttpLoadHost):
        if not isinstance(journal, Journal):
            raise TypeError(
                f"a crediting role needs a journal, got {type(journal).__name__}: "
                "every load is journaled before and after CREDIT FOR LOAD"
            )
        self.session = session
        self.journal = journal
        self.host = host

    def _apply(self, row: LoadJournalRow, doc: dict[str, Any], how: str) -> LoadJournalRow:
        """Bring the row to the gateway's state for its load (settled, void or still open)."""
        state = doc.get("state")
        if state == "confirmed":
            tac = doc.get("tac")
            return self.journal.resolve_load(
                row.id, SETTLED, f"{how}: confirmed", tac=bytes.fromhex(tac) if tac else None
            )
        if state == "void":
            return self.journal.resolve_load(row.id, VOID, f"{how}: void ({doc.get('resolution')})")
        return row

    def _confirm_noted(self, row: LoadJournalRow, how: str) -> LoadJournalRow:
        """Send a credited row's TAC to the gateway again (idempotent)."""
        try:
            doc = self.host.confirm(row.reference, bytes.fromhex(row["tac"]))
        except GatewayRefused as exc:
            return self.journal.resolve_load(
                row.id, SUSPECT, f"{how}: the gateway refused the TAC: {exc.reason}"
            )
        return self._apply(row, doc, how)

    def recover(self, info: CardInfo) -> Settled:
        """Settle or void this card's open load rows with the card in the field:
        (outcome, row), outcome the row's state after (``intent``: still open). Rows of
        another issuer's card with the same serial wait for their own card."""
        out = []
        for row in self.journal.open_loads(info.serial):
            if row["issuer_id"] != info.issuer_hex:
                continue
            if row["tac"]:
                row = self._confirm_noted(row, "at the next tap")
            else:
                doc = resolve_load_doc(self.session, self.host, _load_doc(row))
                if doc is not None:
                    row = self._apply(row, doc, "at the next tap")
            log.info("load %s for card %s: %s", row.reference, info.card_number, row.state)
            out.append((row.state, row))
            self.session.run(flows.select())  # a probing INITIALIZE left a session open
        return out

    def recover_without_card(self) -> Settled:
        """At start and in idle time: confirm the TACs the gateway has not acknowledged, and
        follow loads the gateway settled meanwhile (another kiosk proved them). Loads still
        authorised wait for their card. A gateway that cannot be reached changes nothing."""
        out = []
        for row in self.journal.open_loads():
            try:
                if row["tac"]:
                    row = self._confirm_noted(row, "confirmed later")
                else:
                    row = self._apply(row, self.host.get(row.reference), "at the gateway")
            except GatewayUnavailable as exc:
                log.info("load %s stays open, the gateway is unreachable: %s", row.reference, exc)
                break
            except GatewayRefused as exc:
                log.warning("load %s stays open: %s", row.reference, exc)
                continue
            out.append((row.state, row))
        return out

    def load(
        self,
        info: CardInfo,
        amount: int,
        terminal_id: bytes,
        *,
        pin: str | None = None,
        key_index: int = 1,
        purpose: str = "",
        context: dict[str, Any] | None = None,
        host: HttpLoadHost | None = None,
    ) -> Credit:
        """Recover, INITIALIZE FOR LOAD, MAC2 from the host, intent, CREDIT, TAC noted,
        confirmed, settled. A host's refusal journals nothing; a card refusal of CREDIT
        voids the load with the card still in the field; an interrupted exchange leaves the
        row open and raises LoadInterrupted. ``host`` authorises this one load instead of
        the path's own (a subsidy pickup's, which pays roster lines); the row is recovered
        through the path's host like any load of this terminal."""
        recovered = self.recover(info)
        authorizer = host or self.host
        s = self.session
        request = s.run(
            flows.prepare_load(info, terminal_id, amount, s.now(), pin=pin, key_index=key_index)
        )
        authorization = authorizer.authorize_load(request)
        row_id = self.journal.record_load_intent(_intent(request, authorization, purpose, context))
        try:
            result = s.run(flows.complete_load(request, authorization))
        except CardError as exc:
            log.warning("card %s refused CREDIT FOR LOAD: %s", info.card_number, exc)
            self._void_refused(row_id)
            raise
        except (TransportError, MalformedResponse, TlvError) as exc:
            log.warning("CREDIT torn for card %s (load row %d): %s", info.card_number, row_id, exc)
            raise LoadInterrupted(row_id, exc) from exc
        row = self.journal.note_load_tac(row_id, result.tac)
        try:
            authorizer.confirm_load(request, authorization, result.tac)
        except GatewayUnavailable as exc:
            log.warning("load %s credited, confirmation waits: %s", row.reference, exc)
        except LoadDeclined as exc:
            row = self.journal.resolve_load(
                row_id, SUSPECT, f"the gateway refused the card's TAC: {exc.reason}"
            )
        else:
            row = self.journal.resolve_load(row_id, SETTLED, "online", tac=result.tac)
        return Credit(result, row, tuple(recovered))

    def _void_refused(self, row_id: int) -> None:
        """The card refused CREDIT (nothing credited): void the load now, with the card."""
        row = next(r for r in self.journal.open_loads() if r.id == row_id)
        try:
            doc = resolve_load_doc(self.session, self.host, _load_doc(row))
        except (CardError, TransportError, MalformedResponse, TlvError) as exc:
            log.warning("load %s stays open for the next tap: %s", row.reference, exc)
            return
        if doc is not None:
            self._apply(row, doc, "card refused CREDIT")


def _intent(
    request: LoadRequest,
    authorization: LoadAuthorization,
    purpose: str,
    context: dict[str, Any] | None,
) -> dict[str, Any]:
    """The load's intent row: the request the host authorised and its reference."""
    return {
        "reference": authorization.reference,
        "terminal_id": request.terminal_id,
        "issuer_id": request.issuer_id,
        "card_serial": request.card_serial,
        "online_atc": request.online_atc,
        "amount": request.amount,
        "balance_before": request.balance_before,
        "key_version": request.key_version,
        "algorithm": request.algorithm,
        "txn_time": authorization.when,
        "purpose": purpose,
        "context": context or {},
    }
