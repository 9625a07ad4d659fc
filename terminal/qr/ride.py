"""A ride paid by a code at a validator: checks, the fare, then one durable journal row.

No card is debited: the issuing platform is charged at clearing, and the code (kept whole
in the record) is the proof it re-verifies. So the journal discipline is one settled row
written in one durable transaction before the gate opens: a code refused by any check
leaves nothing; the row, once written, is uploaded like a card's. The journal is also the
ride history (replay, debounce, minimum interval, transfers), shared by the gates that
share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from terminal.fares.engine import (
    INDUSTRY_BUS,
    TRIP_EP_SINGLE,
    FareDecision,
    MetroState,
    Mode,
    Place,
    RecentTrip,
    TripState,
    decide,
)
from terminal.fares.rules import FareRules
from terminal.journal.journal import Journal, QrJournalRow
from terminal.qr.checks import (
    IssuerRule,
    QrPolicy,
    RootKey,
    VerifiedCode,
    check_history,
    check_limit,
    unix,
    verify,
)
from terminal.qr.code import QrReason, QrRefused


class JournalHistory:
    """The journal's QR rides as a ``RideHistory``."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def seen(self, code_hash: bytes, user_account: str, generated: int) -> bool:
        return self.journal.qr_seen(code_hash, user_account, generated)

    def last_ride(self, user_account: str) -> int | None:
        row = self.journal.last_qr_ride(user_account)
        return None if row is None else unix(row.txn_time)


@dataclass(frozen=True)
class QrRide:
    """An accepted code: what was checked, the fare decided, the journal row."""

    verified: VerifiedCode
    decision: FareDecision
    row: QrJournalRow


class QrGate:
    """The ride-code half of a validator: its trust (root keys, policy) and its journal."""

    def __init__(
        self,
        journal: Journal,
        roots: Mapping[int, RootKey],
        policy: QrPolicy,
        terminal_id: bytes,
    ):
        self.journal = journal
        self._trust = (roots, policy)
        self.terminal_id = terminal_id
        self.history = JournalHistory(journal)

    @property
    def roots(self) -> Mapping[int, RootKey]:
        return self._trust[0]

    @property
    def policy(self) -> QrPolicy:
        return self._trust[1]

    def reload(
        self,
        roots: Mapping[int, RootKey] | None = None,
        issuers: Mapping[str, IssuerRule] | None = None,
    ) -> None:
        """New root keys and/or issuer whitelist, in one swap: a ride in progress finishes
        with the trust it started with (the parameter sync calls this; no restart)."""
        old_roots, old_policy = self._trust
        policy = old_policy if issuers is None else replace(old_policy, issuers=dict(issuers))
        self._trust = (old_roots if roots is None else dict(roots), policy)

    def ride(self, raw: bytes, now: datetime, rules: FareRules, mode: Mode, place: Place) -> QrRide:
        """Verify, decide the fare (the bus's concession by account type and transfer from
        this account's last ride), check the limit, journal. QrError on any refusal,
        with nothing journaled. A taxi's code pays the meter instead (``taxi``)."""
        if mode is not Mode.BUS:
            raise QrRefused(QrReason.MODE, f"ride codes are accepted on buses, not at {mode}")
        v = self._checked(raw, now)
        code = v.code
        decision = decide(
            rules, mode, place, self._trips(code.user_account, code.account_type), now
        )
        if decision.refused:
            raise QrRefused(QrReason.FARE, decision.refuse or "refused by the fare rules")
        context = {
            "mode": str(mode),
            "line": place.line.hex().upper(),
            "station": place.station,
            "notes": list(decision.notes),
        }
        return self._book(v, decision, now, context)

    def taxi(self, raw: bytes, now: datetime, meter: int, context: Mapping[str, object]) -> QrRide:
        """A taxi trip paid by a code: the meter's amount (the taxi checked it against its
        fare file) charged to the code's platform within its per-ride limit; ``context``
        names the driver and vehicle. The same checks and journal as a bus ride."""
        v = self._checked(raw, now)
        return self._book(v, FareDecision(meter, TRIP_EP_SINGLE), now, dict(context))

    def _checked(self, raw: bytes, now: datetime) -> VerifiedCode:
        """The code verified with the trust of this moment, then its account's history."""
        roots, policy = self._trust
        v = verify(raw, now=now, roots=roots, policy=policy)
        check_history(v.code, v.code_hash, v.checked_at, policy, self.history)
        return v

    def _book(
        self, v: VerifiedCode, decision: FareDecision, now: datetime, context: dict[str, object]
    ) -> QrRide:
        """The fare within the code's limit, then the one settled journal row."""
        code = v.code
        check_limit(code, decision.amount)
        row = self.journal.record_qr_ride(
            {
                "terminal_id": self.terminal_id,
                "code": code.raw.hex().upper(),
                "code_hash": v.code_hash,
                "user_account": code.user_account,
                "issuer_code": code.issuer_code,
                "platform_code": code.platform_code,
                "account_type": code.account_type,
                "generated": code.generated,
                "txn_time": now.replace(microsecond=0, tzinfo=None),
                "amount": decision.amount,
                "resolution": "offline: code verified",
                "context": {**context, "ticket": v.issuer.ticket},
            }
        )
        return QrRide(v, decision, row)

    def _trips(self, user_account: str, account_type: int) -> TripState:
        """The trip state a card would carry, from this account's last journaled ride."""
        last = self.journal.last_qr_ride(user_account)
        recent = []
        if last is not None:
            ctx = last["context"]
            industry = INDUSTRY_BUS if ctx.get("mode") == str(Mode.BUS) else 0
            line = bytes.fromhex(ctx.get("line", "0000"))
            recent.append(RecentTrip(TRIP_EP_SINGLE, industry, line, last.txn_time, last["amount"]))
        return TripState(account_type, MetroState(0, "", None, 0), recent)
