"""Subsidy pickup: approved roster lines paid onto the card by a normal online load.

A line points at the load that pays it (``subsidy_lines.load_id``) and its payment state
is read from that load, never stored twice:

* ``paid``    - the load is ``confirmed`` (the card's TAC, from CREDIT or PROVE, checked);
* ``held``    - the load is ``authorized``: MAC2 went out, the card may or may not have
  credited; only the card can tell (GET TRANSACTION PROVE at any kiosk, or a void by the
  kiosk that holds the load, on an INITIALIZE FOR LOAD run for its challenge), so the
  line waits until it does;
* ``pending`` - no load, or a ``void`` one: the line can be picked up.

A line is reserved for a load in the transaction that records the load and its MAC2, and
only if it is free (no load, or a void one), so two kiosks, a retried request or a
replayed one can never make a second load for a line: the card can only credit a load
whose MAC2 it was given, and a line is given to one live load at a time. Once that load
is confirmed the line never moves again (a confirmed load is never voided).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import auth, loads
from gateway.auth import Terminal
from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.hsm import HostSecurityModule
from gateway.storage import Cursor, Database, retried
from gateway.subsidy.bank import free_of_bank
from gateway.subsidy.holder import HolderRules, check_holder
from gateway.subsidy.store import APPROVED
from terminal.epurse.model import LoadRequest
from terminal.roles.registry import serial_of

PENDING = "pending"
HELD = "held"
PAID = "paid"
AWAITING = "awaiting_approval"
WITHDRAWN = "withdrawn"
AT_BANK = "at_bank"
STATUSES = (PAID, HELD, AT_BANK, PENDING, AWAITING, WITHDRAWN)
PURPOSE_PREFIX = loads.SUBSIDY_PURPOSE
MAX_LINES_PER_PICKUP = 16  # keeps the load's purpose (the line ids) within 200 characters

_SELECT = (
    "SELECT l.id, l.roster_id, r.state, l.row_no, l.name, l.card_number, l.item, l.item_name,"
    " l.period, l.amount_fen, l.live, ld.id, ld.state, ld.reference, ld.terminal_id,"
    " ld.resolved_at, ld.tac, ld.online_atc, b.state, bb.reference, b.seq, b.result_at"
    " FROM subsidy_lines l JOIN subsidy_rosters r ON r.id = l.roster_id"
    " LEFT JOIN loads ld ON ld.id = l.load_id"
    " LEFT JOIN subsidy_bank_lines b ON b.id = l.bank_line_id"
    " LEFT JOIN subsidy_bank_batches bb ON bb.id = b.batch_id"
)


@dataclass(frozen=True, slots=True)
class LineStatus:
    line_id: int
    roster_id: int
    roster_state: str
    row: int
    name: str
    card_number: str
    item: str
    item_name: str
    period: str
    amount_fen: int
    live: bool
    load_id: int | None
    load_state: str | None
    load_reference: str | None
    load_terminal: str | None
    load_resolved_at: int | None
    load_tac: str | None
    load_online_atc: int | None
    bank_state: str | None = None
    bank_batch: str | None = None
    bank_seq: int | None = None
    bank_result_at: int | None = None

    @property
    def channel(self) -> str | None:
        """Who pays (paid or paying) the line: ``bank``, ``kiosk`` or nobody yet."""
        if self.bank_state in ("sent", "paid"):
            return "bank"
        if self.load_state in (loads.CONFIRMED, loads.AUTHORIZED):
            return "kiosk"
        return None

    @property
    def status(self) -> str:
        if not self.live:
            return WITHDRAWN
        if self.load_state == loads.CONFIRMED or self.bank_state == "paid":
            return PAID
        if self.roster_state != APPROVED:
            return AWAITING
        if self.load_state == loads.AUTHORIZED:
            return HELD
        if self.bank_state == "sent":
            return AT_BANK
        return PENDING

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "line_id": self.line_id,
            "roster_id": self.roster_id,
            "item": self.item,
            "item_name": self.item_name,
            "period": self.period,
            "amount_fen": self.amount_fen,
            "status": self.status,
        }
        if self.channel == "bank":
            out.update(
                channel="bank",
                bank_reference=f"{self.bank_batch}-{self.bank_seq:05d}",
                paid_at_ms=self.bank_result_at if self.status == PAID else None,
            )
        elif self.status in (PAID, HELD):
            out.update(
                channel="kiosk",
                load_reference=self.load_reference,
                load_terminal=self.load_terminal,
                paid_at_ms=self.load_resolved_at if self.status == PAID else None,
                tac=self.load_tac,
            )
        if full:
            out.update(row=self.row, name=self.name, card_number=self.card_number)
        return out


def _status(r: Any) -> LineStatus:
    return LineStatus(
        int(r[0]),
        int(r[1]),
        r[2],
        int(r[3]),
        r[4],
        r[5],
        r[6],
        r[7],
        r[8],
        int(r[9]),
        bool(r[10]),
        None if r[11] is None else int(r[11]),
        r[12],
        r[13],
        r[14],
        None if r[15] is None else int(r[15]),
        r[16],
        None if r[17] is None else int(r[17]),
        r[18],
        r[19],
        None if r[20] is None else int(r[20]),
        None if r[21] is None else int(r[21]),
    )


def line_statuses(
    db: Database,
    *,
    card_number: str | None = None,
    roster_id: int | None = None,
    line_ids: list[int] | None = None,
) -> list[LineStatus]:
    where, params = loads.equal_to({"l.card_number": card_number, "l.roster_id": roster_id})
    if line_ids is not None:
        if not line_ids:
            return []
        where.append(f"l.id IN ({','.join('?' * len(line_ids))})")
        params.extend(line_ids)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY l.id"
    with db.tx() as cur:
        cur.execute(sql, params)
        return [_status(r) for r in cur.fetchall()]


def for_card(db: Database, card_number: str) -> dict[str, Any]:
    """What a kiosk shows a card holder: lines to pick up (oldest first), lines held by an
    unconfirmed load (with the load, so the kiosk can settle it with the card), lines
    still awaiting approval, and what was paid. Names and ID numbers are left out."""
    lines = line_statuses(db, card_number=card_number)
    held_refs = {s.load_reference for s in lines if s.status == HELD}
    held_loads = [loads.get_load(db, ref) for ref in sorted(r for r in held_refs if r)]
    by = {k: [s.to_json(full=False) for s in lines if s.status == k] for k in STATUSES}
    return {
        "card_number": card_number,
        "pending": by[PENDING],
        "held": by[HELD],
        "held_loads": [x.to_json() for x in held_loads if x is not None],
        "awaiting_approval": by[AWAITING],
        "at_bank": by[AT_BANK],
        "paid": by[PAID],
    }


def purpose_of(line_ids: list[int]) -> str:
    return PURPOSE_PREFIX + ",".join(str(i) for i in line_ids)


def _same_request(load: loads.LoadRecord, request: LoadRequest, terminal: Terminal) -> bool:
    return (
        load.terminal_id == terminal.terminal_id
        and load.issuer_id == request.issuer_id.hex().upper()
        and load.card_serial == request.card_serial.hex().upper()
        and load.online_atc == request.online_atc
        and load.card_random == request.card_random.hex().upper()
        and load.mac1 == request.mac1.hex().upper()
        and load.amount == request.amount
    )


@retried
def authorize_pickup(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    request: LoadRequest,
    line_ids: list[int],
    holder: str,
    *,
    limits: loads.LoadLimits | None = None,
    rules: HolderRules | None = None,
) -> tuple[loads.LoadRecord, list[LineStatus]]:
    """Check that ``line_ids`` are this card's, that ``holder`` (the whole
    ID number) is its holder's (``holder.check_holder``), that the lines are approved and
    unpaid and add up to the load's amount; authorise the load (MAC1 → MAC2) and reserve
    the lines for it. Idempotent: the same request again returns the same load, whatever
    became of it."""
    auth.require_role(terminal, "kiosk")
    ids = list(dict.fromkeys(line_ids))
    if not ids:
        raise Invalid("no_lines", "name the roster lines to pay")
    if len(ids) > MAX_LINES_PER_PICKUP:
        raise Invalid(
            "too_many_lines",
            f"at most {MAX_LINES_PER_PICKUP} lines per pickup; pick up the rest next",
        )
    serial = request.card_serial.hex().upper()
    found = {s.line_id: s for s in line_statuses(db, line_ids=ids)}
    for line_id in ids:
        s = found.get(line_id)
        if s is None:
            raise NotFound("unknown_line", f"no subsidy line {line_id}")
        if serial_of(s.card_number).hex().upper() != serial:
            raise Invalid("wrong_card", f"line {line_id} is paid to card {s.card_number}")
    check_holder(db, found[ids[0]].card_number, holder, rules or HolderRules())
    for line_id in ids:
        s = found[line_id]
        if s.status == WITHDRAWN:
            raise Conflict("withdrawn", f"line {line_id}: roster #{s.roster_id} was rejected")
        if s.status == AWAITING:
            raise Conflict(
                "not_approved",
                f"line {line_id}: roster #{s.roster_id} is {s.roster_state}; a subsidy is paid "
                "only once its roster is approved",
            )
        if s.channel == "bank":
            raise Conflict(
                "bank_channel",
                f"line {line_id} ({s.item_name} {s.period}) is "
                + ("paid" if s.status == PAID else "being paid")
                + f" by the agent bank (batch {s.bank_batch}): it is never paid at a kiosk",
            )
        if s.status in (PAID, HELD):
            held = loads.get_load(db, s.load_reference or "")
            if held is not None and _same_request(held, request, terminal):
                continue  # this very request again (a retry or a replay)
            if s.status == PAID:
                raise Conflict(
                    "already_paid",
                    f"line {line_id} ({s.item_name} {s.period}) was paid by load "
                    f"{s.load_reference} at terminal {s.load_terminal}",
                )
            if held is not None and held.online_atc == request.online_atc:
                raise loads.load_pending(held)  # the card has not moved on since that load
            raise Conflict(
                "held",
                f"line {line_id} is being paid by load {s.load_reference} at terminal "
                f"{s.load_terminal}, not yet confirmed: settle it with the card first",
            )
    total = sum(found[i].amount_fen for i in ids)
    if total != request.amount:
        raise Invalid(
            "amount_mismatch", f"the lines add up to {total} fen, the load is {request.amount}"
        )

    def reserve(cur: Cursor, load: loads.LoadRecord) -> None:
        marks = ",".join("?" * len(ids))
        cur.execute(
            f"UPDATE subsidy_lines SET load_id = ? WHERE id IN ({marks}) AND live = 1"
            " AND (load_id IS NULL OR EXISTS (SELECT 1 FROM loads"
            " WHERE loads.id = subsidy_lines.load_id AND loads.state = 'void'))"
            f" AND {free_of_bank('subsidy_lines')}",
            (load.id, *ids),
        )
        if cur.rowcount != len(ids):
            raise Conflict("taken", "a concurrent pickup took one of these lines; look again")

    load = loads.authorize(
        db, hsm, terminal, request, limits=limits, purpose=purpose_of(ids), reserve=reserve
    )
    return load, line_statuses(db, line_ids=ids)


# -- settling a held line with the card ----------------------------------------------------
def _held_load(
    db: Database, terminal: Terminal, reference: str
) -> tuple[loads.LoadRecord, Terminal]:
    auth.require_role(terminal, "kiosk")
    load = loads.get_load(db, reference)
    if load is None or not load.purpose.startswith(PURPOSE_PREFIX):
        raise NotFound("unknown_load", f"no subsidy load {reference}")
    owner = auth.get_terminal(db, load.terminal_id)
    if owner is None:
        raise Conflict("unknown_terminal", f"load {reference} has no terminal")
    return load, owner


def _owned_held_load(db: Database, terminal: Terminal, reference: str) -> Terminal:
    """Only the kiosk that holds a load may void it (docs/security.md): the card's PROVE
    is accepted anywhere, a void is not."""
    load, owner = _held_load(db, terminal, reference)
    if owner.terminal_id != terminal.terminal_id:
        raise Forbidden(
            "not_owner",
            f"load {reference} is held by kiosk {load.terminal_id}: only that kiosk can void "
            "it; any kiosk can settle it with GET TRANSACTION PROVE if the card credited",
        )
    return owner


def prove_held(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    reference: str,
    mac: bytes,
    tac: bytes,
) -> loads.LoadRecord:
    """Settle a subsidy load from the card's GET TRANSACTION PROVE, at whichever kiosk the
    card is now: the proof is the card's own (MAC2 must match, the HSM checks the TAC),
    so it is checked exactly as the kiosk that started the load would have it checked."""
    _, owner = _held_load(db, terminal, reference)
    return loads.prove(db, hsm, owner, reference, mac, tac)


def void_challenge_held(db: Database, terminal: Terminal, reference: str) -> loads.VoidChallenge:
    """A void challenge for a subsidy load, for the kiosk that holds it only."""
    return loads.void_challenge(db, _owned_held_load(db, terminal, reference), reference)


def void_held(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    reference: str,
    evidence: LoadRequest,
) -> loads.LoadRecord:
    """Void a subsidy load by the kiosk that holds it, on the card's answer to the load's
    void challenge (``loads.void``); its lines become pending again."""
    owner = _owned_held_load(db, terminal, reference)
    return loads.void(db, hsm, owner, reference, evidence)


# -- the paid / pending report --------------------------------------------------------------
def payment_report(db: Database, roster_id: int | None = None) -> dict[str, Any]:
    """Per roster and in total: lines and fen by status, and every line with its payment."""
    lines = line_statuses(db, roster_id=roster_id)
    empty = {k: {"lines": 0, "amount_fen": 0} for k in STATUSES}

    def add(acc: dict[str, dict[str, int]], s: LineStatus) -> None:
        acc[s.status]["lines"] += 1
        acc[s.status]["amount_fen"] += s.amount_fen

    totals = {k: dict(v) for k, v in empty.items()}
    rosters: dict[int, dict[str, Any]] = {}
    for s in lines:
        entry = rosters.setdefault(
            s.roster_id,
            {
                "roster_id": s.roster_id,
                "state": s.roster_state,
                "by_status": {k: dict(v) for k, v in empty.items()},
            },
        )
        add(entry["by_status"], s)
        add(totals, s)
    return {
        "roster_id": roster_id,
        "totals": totals,
        "rosters": list(rosters.values()),
        "lines": [s.to_json() for s in lines],
    }
