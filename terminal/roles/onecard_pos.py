"""A POS for resident cards: pay from Electronic Cash (qPBOC, offline) or from the T-Union
EP (PSAM purchase), chosen by a configurable rule.

The rule lists the sources in order of preference, each optionally capped (for
example "EP for fares up to 5 yuan, EC otherwise"). A source is skipped when the card
lacks it, its balance is short, or (EC) the card does not approve offline; the next
source is then tried, and the sale is refused only when every source has said no.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from terminal.apdu import iso
from terminal.apdu.errors import (
    CardError,
    InsufficientBalance,
    MalformedResponse,
    TransportError,
    YikatongError,
)
from terminal.apdu.flow import Flow, card
from terminal.apdu.status import SW
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import KIND_EMV, KIND_EPURSE, TerminalConfig, Transaction
from terminal.emv.dol import build_dol_data
from terminal.emv.ec import EcInfo, EcLogRecord, get_data, read_ec_info, read_log
from terminal.emv.fci import ApplicationFci, LogEntry
from terminal.emv.kernel import ApplicationData, Outcome, process_application
from terminal.emv.selection import CONTACTLESS, Candidate, discover, select_application
from terminal.emv.tags import Tag
from terminal.epurse import flows as epurse
from terminal.hotlist import Hotlist
from terminal.journal.journal import SETTLED, SUSPECT, VOID, EcJournalRow, Journal
from terminal.money import format_fen
from terminal.roles.debit import RecoveredProofRefused
from terminal.roles.pos import CardRefused, PointOfSale, Sale
from terminal.roles.session import TerminalSession

SOURCE_EC = "ec"
SOURCE_EP = "ep"
NAMED_RULES = {"ep": "ep", "ec": "ec", "auto": "ec,ep"}
# an open EC intent whose card has not come back to settle it within this is made suspect
EC_RECOVERY_WINDOW = timedelta(days=1)
RETRY_WINDOW = timedelta(minutes=10)  # a torn sale found paid this recent is the sale retried

# what a torn EC sale's card says at its next tap (``judge_torn``)
PAID = "paid"
NOT_PAID = "not paid"
UNSURE = "unsure"
OTHER_CARD = "other card"


class PaymentRefused(YikatongError):
    """No source on the card could pay; ``attempts`` says why each one did not, ``short``
    names the sources whose balance was too low."""

    def __init__(self, attempts: list[str], short: frozenset[str] = frozenset()):
        self.attempts = attempts
        self.short = short
        super().__init__("payment refused: " + "; ".join(attempts or ["no payment source"]))

    @property
    def insufficient_balance(self) -> bool:
        """Every source tried had too little money (the card works, the purse is short)."""
        return bool(self.short) and len(self.short) == len(self.attempts)


def short_of(source: str, balance: int | None, amount: int) -> str:
    """The attempt line for a source whose balance cannot pay ``amount``."""
    shown = format_fen(balance) if balance is not None else "unknown"
    return f"{source}: balance {shown} short of {format_fen(amount)}"


@dataclass(frozen=True)
class PaymentRule:
    """Sources in order of preference, with optional per-source amount caps (fen)."""

    order: tuple[str, ...] = (SOURCE_EC, SOURCE_EP)
    caps: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [s for s in (*self.order, *self.caps) if s not in (SOURCE_EC, SOURCE_EP)]
        if bad or not self.order:
            raise ValueError(f"payment sources are 'ec' and 'ep', got {bad or 'none'}")

    def sources_for(self, amount: int) -> list[str]:
        return [s for s in self.order if amount <= self.caps.get(s, amount)]

    @classmethod
    def named(cls, text: str) -> PaymentRule:
        """``ep``, ``ec``, ``auto`` (EC, then EP) or a rule for ``parse``; ValueError."""
        return cls.parse(NAMED_RULES.get(text, text))

    @classmethod
    def parse(cls, text: str) -> PaymentRule:
        """``"ep<=500,ec"``: EP first for amounts up to 5.00, then EC."""
        order, caps = [], {}
        for part in text.split(","):
            name, _, cap = part.strip().partition("<=")
            order.append(name.strip())
            if cap:
                caps[name.strip()] = int(cap)
        return cls(tuple(order), caps)


@dataclass(frozen=True)
class OneCardSale:
    """A paid sale and the source that paid it. An EP sale carries its journaled ``Sale``;
    an EC sale the kernel's data (the card's TC) and its journaled ``EcJournalRow`` (a
    ``completed`` EC sale: only the row, found paid at the card's next tap)."""

    source: str
    amount: int
    balance_after: int | None
    ec: ApplicationData | None = None
    ep: Sale | None = None
    attempts: tuple[str, ...] = ()
    ec_row: EcJournalRow | None = None
    completed: bool = False  # an earlier torn attempt had paid; this tap only proved it

    @property
    def journaled(self) -> bool:
        return self.ep is not None or self.ec_row is not None


@dataclass(frozen=True)
class EcPending:
    """An EC purchase after the card's checks and before GPO (where a qPBOC card debits its
    EC balance): what its intent row holds, the unpredictable number included, so the
    cryptogram the card returns can be tied to this sale."""

    aid: bytes
    fci: ApplicationFci
    amount: int
    balance_before: int
    when: datetime
    unpredictable_number: bytes = b""
    atc_before: int | None = None
    log_head: str | None = None


def _counter(raw: bytes | None) -> int | None:
    return int.from_bytes(raw, "big") if raw else None


def read_log_head(entry: LogEntry | None) -> Flow[str | None]:
    """The card's newest log record as hex ("" when the log is empty; None when the card
    keeps no log or will not show it): with the ATC, the card's state before GPO."""
    if entry is None:
        return None
    r = yield card(iso.read_record(entry.sfi, 1), check=False)
    if r.ok:
        return r.data.hex().upper()
    return "" if r.sw == SW.RECORD_NOT_FOUND else None


def prepare_ec_purchase(
    candidates: list[Candidate], amount: int, when: datetime
) -> Flow[EcPending | str]:
    """Select the EMV application and read its EC balance; nothing is debited. Returns why
    EC cannot pay (a string for the attempts list) instead of raising."""
    cand = next((c for c in candidates if c.kind == KIND_EMV), None)
    if cand is None:
        return "ec: no EMV application"
    fci = yield from select_application(cand)
    info: EcInfo = yield from read_ec_info()
    if info.balance is None or info.balance < amount:
        return short_of(SOURCE_EC, info.balance, amount)
    atc = yield from get_data(Tag.ATC)
    head = yield from read_log_head(fci.log_entry)
    return EcPending(
        cand.aid, fci, amount, info.balance, when, atc_before=_counter(atc), log_head=head
    )


def ec_intent(
    pending: EcPending, config: TerminalConfig, terminal_id: bytes, ec_seq: int, context: Any
) -> dict[str, Any]:
    """The ``EC_PURCHASE`` fields known before GPO; the context keeps the card's ATC and
    newest log record before GPO, what a torn sale is matched with at the card's next tap."""
    context = {**context, "atc_before": pending.atc_before, "log_head": pending.log_head}
    return {
        "terminal_id": terminal_id,
        "ec_seq": ec_seq,
        "aid": pending.aid.hex().upper(),
        "txn_type": 0x00,  # goods and services (9C), what ``Transaction`` sends by default
        "amount": pending.amount,
        "amount_other": 0,
        "currency": int(config.currency),
        "country": int(config.country),
        "txn_time": pending.when,
        "ec_balance_before": pending.balance_before,
        "unpredictable_number": pending.unpredictable_number,
        "context": context,
    }


def ec_proof(app: ApplicationData) -> tuple[str, str, dict[str, Any]]:
    """An EC card step's outcome as the journal row's resolution: a TC the terminal accepts
    settles; a TC it does not accept (the card has debited) is suspect; an AAC, an ARQC or
    no cryptogram at all voids (nothing was debited offline)."""
    crypt = app.cryptogram
    fields: dict[str, Any] = {}
    if app.gpo is not None:
        fields["aip"] = app.gpo.aip
        fields["dol_data"] = build_dol_data(app.fci.pdol or b"", app.terminal).hex().upper()
    if crypt is not None:
        fields.update(
            pan=app.pan or None,
            pan_seq=int(app.psn, 16) if app.card.get(Tag.PAN_SEQUENCE) else None,
            cryptogram=crypt.cryptogram,
            cid=crypt.cid,
            atc=int.from_bytes(crypt.atc, "big"),
            iad=crypt.iad.hex().upper() or None,
            tvr=app.terminal.get(Tag.TVR, bytes(5)),
            ec_balance_after=app.available_offline_amount,
        )
    approved = app.outcome == Outcome.APPROVED_OFFLINE
    if approved:
        return SETTLED, f"TC: {app.reason}", fields
    if crypt is not None and crypt.kind_name == "TC":
        return SUSPECT, f"card debited (TC) but not accepted: {app.reason}", fields
    return VOID, f"{app.outcome.value}: {app.reason}", fields


def complete_ec_purchase(
    pending: EcPending, config: TerminalConfig, store: CaKeyStore
) -> Flow[ApplicationData]:
    """The EC card step: GPO (the card debits and answers with its cryptogram), records,
    fDDA. The outcome says whether the terminal accepts the card's offline approval."""
    txn = Transaction(
        amount=pending.amount,
        when=pending.when,
        unpredictable_number=pending.unpredictable_number or None,
    )
    return (
        yield from process_application(
            pending.aid, pending.fci, config, store, txn, now=pending.when
        )
    )


@dataclass(frozen=True)
class EcEvidence:
    """What an EMV card says about its past at a tap: its AID, ATC (9F36), EC balance
    (9F79) and transaction log (newest first; None when it keeps none or hides it)."""

    aid: str
    atc: int | None
    balance: int | None
    log: tuple[EcLogRecord, ...] | None
    log_capacity: int = 0


def read_ec_evidence(candidates: list[Candidate]) -> Flow[EcEvidence | None]:
    """Select the EMV application and read ATC, balance and log; nothing is debited."""
    cand = next((c for c in candidates if c.kind == KIND_EMV), None)
    if cand is None:
        return None
    fci = yield from select_application(cand)
    info: EcInfo = yield from read_ec_info()
    atc = yield from get_data(Tag.ATC)
    log = None
    if fci.log_entry is not None:
        read = yield from read_log(fci.log_entry)
        log = tuple(read.records) if read is not None else None
    capacity = fci.log_entry.records if fci.log_entry is not None else 0
    return EcEvidence(cand.aid.hex().upper(), _counter(atc), info.balance, log, capacity)


def _raw(rec: EcLogRecord) -> str:
    return b"".join(rec.values.values()).hex().upper()


def _is_sale(rec: EcLogRecord, row: EcJournalRow) -> bool:
    """The log record states this row's sale: amount, type, date, currency and country."""
    v = rec.values
    return (
        rec.amount == row["amount"]
        and rec.txn_type == row["txn_type"]
        and v.get(Tag.DATE, b"").hex() == row.txn_time.strftime("%y%m%d")
        and v.get(Tag.CURRENCY, b"").hex() == f"{row['currency']:04d}"
        and v.get(Tag.TERMINAL_COUNTRY, b"").hex() == f"{row['country']:04d}"
    )


def judge_torn(
    row: EcJournalRow, ev: EcEvidence, later: frozenset[int] = frozenset()
) -> tuple[str, str]:
    """Whether the card in the field took the money of this torn EC sale: PAID, NOT_PAID,
    UNSURE (it may have paid and cannot say) or OTHER_CARD, with the reason in words.

    Before GPO the intent kept the card's ATC ``a`` and newest log record. A qPBOC card
    counts every GPO (ATC) and logs every offline approval. The card is known as the
    sale's by its log going on from the kept record, or by a log record at ATC a+1
    stating this sale; then that record means paid and its absence not paid. A card that
    keeps no log, or had none before the sale, is not known by its state alone (another
    card can be in it): it stays OTHER_CARD, or UNSURE when its ATC and balance moved by
    exactly this sale, so a torn sale is never voided on a guess. ``later``: the ATCs of
    EC sales this POS journaled with their TC after the torn one (their log records are
    theirs, not the torn sale's)."""
    ctx = row["context"] or {}
    a, head = ctx.get("atc_before"), ctx.get("log_head")
    before, amount = row["ec_balance_before"], row["amount"]
    if ev.aid != row["aid"] or ev.atc is None or a is None or ev.atc < a:
        return OTHER_CARD, "not the card of the sale"
    if ev.log is None or head is None:
        if ev.atc == a + 1 and ev.balance == before - amount:
            return UNSURE, "the card keeps no log; its ATC and EC balance moved by this sale"
        return OTHER_CARD, "not known as the card of the sale"
    raws = [_raw(r) for r in ev.log]
    since = ev.log[: raws.index(head)] if head and head in raws else ev.log
    if not head and any((r.atc or 0) <= a for r in ev.log):
        return OTHER_CARD, "not the card of the sale"
    ours = next((r for r in since if r.atc == a + 1 and r.atc not in later), None)
    if ours is not None and _is_sale(ours, row) and (head in raws or not head):
        return PAID, f"the card's log shows this sale at ATC {a + 1}"
    if not head or head not in raws:
        return OTHER_CARD, "not known as the card of the sale"
    if ev.atc == a and ev.balance == before:
        return NOT_PAID, f"the card's ATC ({a}) and EC balance are as before the sale"
    return NOT_PAID, f"the card's log has no sale at ATC {a + 1}: it did not approve it"


class OneCardPos:
    """Card reader + PSAM, the journal, the kernel's terminal data and CA keys, and the
    payment rule. EP sales go through the POS's journaled debit path."""

    def __init__(
        self,
        session: TerminalSession,
        journal: Journal,
        config: TerminalConfig,
        store: CaKeyStore,
        rule: PaymentRule | None = None,
        *,
        name: str = "POS",
        allow_balance_flag: bool = False,
        hotlist: Hotlist | None = None,
        ec_recovery_window: timedelta = EC_RECOVERY_WINDOW,
    ):
        """``hotlist``: T-Union cards on it are refused before the EP pays.
        ``ec_recovery_window``: a torn EC sale whose card has not come back this long is
        made suspect (uploaded, checked by the operator)."""
        self.session = session
        self.pos = PointOfSale(
            session, journal, name=name, allow_balance_flag=allow_balance_flag, hotlist=hotlist
        )
        self.config = config
        self.store = store
        self.rule = rule or PaymentRule()
        self.name = name
        self.allow_balance_flag = allow_balance_flag
        self.ec_recovery_window = ec_recovery_window

    @property
    def journal(self) -> Journal:
        return self.pos.journal

    def recover_ec(self, candidates: list[Candidate]) -> list[tuple[str, EcJournalRow]]:
        """Match the journal's open EC sales (torn GPO, or a stop between intent and
        resolution) with the card in the field: paid (its log or ATC and balance prove the
        debit; suspect, since the card never repeats its TC, with the proof it gave), not
        paid (void), or this card cannot tell (suspect). Rows of other cards stay open until
        their card comes back or the recovery window passes (then suspect)."""
        rows = self.journal.open_ec_rows()
        if not rows:
            return []
        s = self.session
        now = s.now()
        try:
            ev = s.run(read_ec_evidence(candidates))
        except CardError:
            ev = None
        done: list[tuple[str, EcJournalRow]] = []
        for row in rows:
            later = frozenset(
                r["atc"] for r in self.journal.ec_rows_after(row.id) if r["cryptogram"]
            )
            verdict, why = judge_torn(row, ev, later) if ev is not None else (OTHER_CARD, "")
            if verdict == OTHER_CARD:
                if now - row.txn_time > self.ec_recovery_window:
                    self.journal.resolve_ec(
                        row.id, SUSPECT, "the card did not come back to say whether it paid"
                    )
                continue
            if verdict == PAID:
                a = row["context"]["atc_before"]
                state, resolution = SUSPECT, f"paid, no TC: {why}"
                proof = {"atc": a + 1, "ec_balance_after": row["ec_balance_before"] - row["amount"]}
            elif verdict == NOT_PAID:
                state, resolution, proof = VOID, f"not paid: {why}", {}
            else:
                state, resolution, proof = SUSPECT, f"may have paid: {why}", {}
            done.append((verdict, self.journal.resolve_ec(row.id, state, resolution, proof)))
        return done

    def recover_present(self) -> list[tuple[str, EcJournalRow]]:
        """At start: when a card is in the field and EC sales are open, match them now."""
        s = self.session
        if not self.journal.open_ec_rows() or not s.card_reader.card_present():
            return []
        try:
            s.card_reader.connect()
            found = s.run(discover(self.config, CONTACTLESS, kinds=(KIND_EMV,)))
            return self.recover_ec(found.candidates)
        except (CardError, TransportError, MalformedResponse):
            return []

    def _retried(
        self, recovered: list[tuple[str, EcJournalRow]], amount: int
    ) -> OneCardSale | None:
        """A torn sale of this amount at this POS, recent, that the card proves it paid: the
        same sale presented again, complete without charging twice."""
        now = self.session.now()
        tid = self.session.sam.terminal_id_hex
        for verdict, row in reversed(recovered):
            if (
                verdict == PAID
                and row.terminal_id == tid
                and row["amount"] == amount
                and timedelta(0) <= now - row.txn_time <= RETRY_WINDOW
            ):
                return OneCardSale(
                    SOURCE_EC, amount, row["ec_balance_after"], ec_row=row, completed=True
                )
        return None

    def charge(self, amount: int, rule: PaymentRule | None = None) -> OneCardSale:
        """Pay ``amount`` fen from the first source of ``rule`` (default: the POS's) that
        can. A card refusal
        moves on to the next source; an interrupted EP debit (PaymentInterrupted) does not,
        since the card may have paid: the same card presented again settles it. Nor does a
        torn sale's proof the PSAM refused (RecoveredProofRefused): that card is told NOT
        paid and charged nothing else in this tap."""
        if amount <= 0:
            raise ValueError("amount must be a positive number of fen")
        s = self.session
        s.card_reader.connect()
        found = s.run(discover(self.config, CONTACTLESS, kinds=(KIND_EMV, KIND_EPURSE)))
        self._refuse_lost(found.candidates)
        recovered = self.recover_ec(found.candidates)
        again = self._retried(recovered, amount) or self._ep_retried(found.candidates, amount)
        if again is not None:
            return again
        attempts: list[str] = [
            f"ec: an earlier sale {row['amount']} fen {row.state}: {row['resolution']}"
            for _, row in recovered
        ]
        if any(v == UNSURE for v, _ in recovered):  # it may have paid: no second charge
            raise PaymentRefused(attempts)
        short: set[str] = set()
        for source in (rule or self.rule).sources_for(amount):
            try:
                if source == SOURCE_EC:
                    sale = self._pay_ec(found.candidates, amount, attempts)
                else:
                    sale = self._pay_ep(amount, attempts)
            except InsufficientBalance:
                attempts.append(short_of(source, None, amount))
                short.add(source)
                continue
            except RecoveredProofRefused:  # a forged proof is not a refusal: charge nothing
                raise
            except CardError as exc:
                attempts.append(f"{source}: card refused ({exc})")
                continue
            if sale is not None:
                return sale
            if " short of " in attempts[-1]:
                short.add(source)
        raise PaymentRefused(attempts, frozenset(short))

    def _ep_retried(self, candidates: list[Candidate], amount: int) -> OneCardSale | None:
        """A torn EP sale of this card found paid: the same sale presented again, whichever
        source the rule tries first (EC must not pay again what the purse already paid)."""
        if not any(c.kind == KIND_EPURSE for c in candidates) or not self.journal.open_rows():
            return None
        sale = self.pos.completed(self.session.run(epurse.select()), amount)
        if sale is None:
            return None
        return OneCardSale(SOURCE_EP, amount, sale.balance_after, ep=sale, completed=True)

    def _pay_ec(
        self, candidates: list[Candidate], amount: int, attempts: list[str]
    ) -> OneCardSale | None:
        s = self.session
        pending = s.run(prepare_ec_purchase(candidates, amount, s.now()))
        if isinstance(pending, str):
            attempts.append(pending)
            return None
        un = self.config.unpredictable_number or secrets.token_bytes(4)
        pending = dataclasses.replace(pending, unpredictable_number=un)
        terminal_id = s.sam.terminal_id
        intent = ec_intent(
            pending,
            self.config,
            terminal_id,
            self.pos.journal.next_ec_seq(terminal_id),
            {"pos": self.name},
        )
        app, row = self.pos.debits.ec_purchase(
            intent, lambda: complete_ec_purchase(pending, self.config, self.store), ec_proof
        )
        if row.state != SETTLED:
            attempts.append(f"ec: {app.outcome.value} ({app.reason})")
            if row.state == SUSPECT:  # the card has paid: trying another source charges twice
                raise PaymentRefused(attempts)
            return None
        return OneCardSale(
            SOURCE_EC,
            amount,
            app.available_offline_amount,
            ec=app,
            attempts=tuple(attempts),
            ec_row=row,
        )

    def _refuse_lost(self, candidates: Any) -> None:
        """A card whose T-Union application is on the hotlist (挂失) is refused whole, before
        any source pays: a lost resident card must not go on paying from Electronic Cash."""
        hotlist = self.pos.hotlist
        if hotlist is None or not any(c.kind == KIND_EPURSE for c in candidates):
            return
        info = self.session.run(epurse.select())
        if info.serial in hotlist:
            raise CardRefused(f"card {info.card_number} is reported lost or stolen (hotlist)")

    def _pay_ep(self, amount: int, attempts: list[str]) -> OneCardSale | None:
        s = self.session
        try:
            info = s.run(epurse.select())
        except CardError:
            attempts.append("ep: no T-Union EP application")
            return None
        word = s.run(epurse.read_balance_word())
        try:
            balance = epurse.check_balance_word(
                word, "GET BALANCE", allow_flag=self.allow_balance_flag
            )
        except epurse.BalanceFlagSet as exc:
            attempts.append(f"ep: {exc}")
            return None
        if balance < amount:
            attempts.append(short_of(SOURCE_EP, balance, amount))
            return None
        if not info.valid_on(s.now().date()):
            attempts.append("ep: application not valid today")
            return None
        try:
            sale = self.pos.pay(info, amount)
        except epurse.BalanceFlagSet as exc:
            attempts.append(f"ep: {exc}")
            return None
        return OneCardSale(
            SOURCE_EP,
            amount,
            sale.balance_after,
            ep=sale,
            attempts=tuple(attempts),
            completed=sale.completed,
        )
