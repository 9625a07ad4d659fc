"""Online load authorisation for kiosks: authorise (MAC1 -> MAC2), confirm (TAC), resolve.

States: ``authorized`` -> ``confirmed`` (the card's TAC, from CREDIT FOR LOAD or later from
GET TRANSACTION PROVE) or ``void`` (the card proved it never credited). A card's online
counter moves on every credit, so (issuer, card, online ATC) names one load: at most one
live row holds it (a partial unique index), and clearing de-duplicates on it too, so a
load is never credited twice.

Once MAC2 has left the gateway only the card can end the load (docs/security.md, "Online
loads and their voids"): PROVE confirms it; a void needs an INITIALIZE FOR LOAD answer
read *after* the host decided to void, i.e. one whose MAC1 covers this load's single-use
challenge (a random terminal-id field and amount). That INITIALIZE replaced the card's
session, so the old MAC2 can no longer be credited. Nothing else voids a load: a new
request at the card's counter while a load is live is refused (``load_pending``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.auth import Terminal
from gateway.errors import Conflict, Forbidden, Invalid, NotFound, Refused
from gateway.hsm import HostSecurityModule
from gateway.storage import Cursor, Database, now_ms, retried
from terminal.epurse.host import LoadDeclined
from terminal.epurse.model import LoadAuthorization, LoadRequest
from terminal.roles.registry import CARRY_PURPOSE

AUTHORIZED = "authorized"
CONFIRMED = "confirmed"
VOID = "void"

SUBSIDY_PURPOSE = "subsidy:"  # the label of a pickup's load, followed by its line ids
DESK = "issuance"  # the role whose only load is a replacement's carried balance
CHALLENGE_TTL_MS = 5 * 60 * 1000  # a void challenge is answered at the card within minutes
CHALLENGE_MAX_AMOUNT = 100  # fen asked in the challenge's INITIALIZE (never credited)

_COLUMNS = (
    "id, reference, terminal_id, operator_id, issuer_id, card_serial, online_atc, amount,"
    " balance_before, key_version, algorithm, card_random, mac1, mac2, host_time, state, tac,"
    " resolution, purpose"
)


def load_request(fields: Any, when: datetime) -> LoadRequest:
    """A LoadRequest from any object carrying its fields with the bytes as hex text."""
    return LoadRequest(
        issuer_id=bytes.fromhex(fields.issuer_id),
        card_serial=bytes.fromhex(fields.card_serial),
        terminal_id=bytes.fromhex(fields.terminal_id),
        amount=fields.amount,
        balance_before=fields.balance_before,
        online_atc=fields.online_atc,
        key_version=fields.key_version,
        algorithm=fields.algorithm,
        card_random=bytes.fromhex(fields.card_random),
        mac1=bytes.fromhex(fields.mac1),
        when=when,
    )


@dataclass(frozen=True)
class LoadLimits:
    """What the gateway allows per top-up, whatever the card would accept."""

    max_amount: int = 100_000  # 1,000 yuan per top-up
    max_balance: int = 100_000  # the usual purse ceiling


@dataclass(frozen=True, slots=True)
class LoadRecord:
    id: int
    reference: str
    terminal_id: str
    operator_id: str
    issuer_id: str
    card_serial: str
    online_atc: int
    amount: int
    balance_before: int
    key_version: int
    algorithm: int
    card_random: str
    mac1: str
    mac2: str
    host_time: str
    state: str
    tac: str | None
    resolution: str | None
    purpose: str

    def request(self) -> LoadRequest:
        return load_request(self, datetime.fromisoformat(self.host_time))

    def authorization(self) -> LoadAuthorization:
        return LoadAuthorization(
            bytes.fromhex(self.mac2), datetime.fromisoformat(self.host_time), self.reference
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "terminal_id": self.terminal_id,
            "issuer_id": self.issuer_id,
            "card_serial": self.card_serial,
            "online_atc": self.online_atc,
            "amount": self.amount,
            "balance_before": self.balance_before,
            "mac2": self.mac2,
            "host_time": self.host_time,
            "state": self.state,
            "tac": self.tac,
            "resolution": self.resolution,
            "purpose": self.purpose,
        }


def _row(r: Any) -> LoadRecord:
    return LoadRecord(*r)


def _get(cur: Cursor, reference: str) -> LoadRecord | None:
    cur.execute(f"SELECT {_COLUMNS} FROM loads WHERE reference = ?", (reference,))
    r = cur.fetchone()
    return None if r is None else _row(r)


def get_load(db: Database, reference: str) -> LoadRecord | None:
    with db.tx() as cur:
        return _get(cur, reference)


def equal_to(filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """The SQL conditions ``column = ?`` and their parameters for the filters given (not
    None): a listing's optional filters."""
    given = {column: v for column, v in filters.items() if v is not None}
    return [f"{column} = ?" for column in given], list(given.values())


def list_loads(
    db: Database, *, terminal_id: str | None = None, state: str | None = None
) -> list[LoadRecord]:
    where, params = equal_to({"terminal_id": terminal_id, "state": state})
    sql = f"SELECT {_COLUMNS} FROM loads"
    if where:
        sql += " WHERE " + " AND ".join(where)
    with db.tx() as cur:
        cur.execute(sql + " ORDER BY id", params)
        return [_row(r) for r in cur.fetchall()]


def _own(terminal: Terminal, load: LoadRecord | None, reference: str) -> LoadRecord:
    if load is None or load.terminal_id != terminal.terminal_id:
        raise NotFound("unknown_load", f"no load {reference} for terminal {terminal.terminal_id}")
    return load


def _card_listed(cur: Cursor, issuer_id: str, card_serial: str) -> bool:
    cur.execute(
        "SELECT listed FROM hotlist WHERE issuer_id = ? AND card_serial = ?",
        (issuer_id, card_serial),
    )
    r = cur.fetchone()
    return bool(r and r[0])


def load_pending(live: LoadRecord) -> Refused:
    """The refusal for a new load at a card and counter that a live load already holds."""
    return Conflict(
        "load_pending",
        f"card {live.card_serial} has load {live.reference} at online ATC {live.online_atc}, "
        f"authorised for kiosk {live.terminal_id} and not settled: resolve it first: prove it "
        "or void it with the card",
    )


Reserve = Callable[[Cursor, LoadRecord], None]


def authorize(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    request: LoadRequest,
    *,
    limits: LoadLimits | None = None,
    purpose: str = "",
    reserve: Reserve | None = None,
) -> LoadRecord:
    """Check MAC1, record the pending load and return it with MAC2 (idempotent on retries).

    ``reserve`` runs in the transaction that records a new load (a subsidy pickup takes its
    lines there, a desk's carry its lost card's balance): if it raises, no load is recorded,
    so no MAC2 exists outside it. A desk loads nothing but a carry, and only a reserved load
    may wear a reserved label."""
    limits = limits or LoadLimits()
    if terminal.role == DESK and purpose != CARRY_PURPOSE:
        raise Forbidden(
            "carry_only",
            f"terminal {terminal.terminal_id} is an issuance desk, whose only load is a lost "
            f"card's balance carried onto its replacement (purpose {CARRY_PURPOSE!r}), not "
            f"{purpose!r}: a top-up is a kiosk's",
        )
    if purpose.startswith(SUBSIDY_PURPOSE) and reserve is None:
        raise Invalid(
            "reserved",
            f"a purpose starting {SUBSIDY_PURPOSE!r} is the label of a subsidy pickup, which "
            "reserves its lines: pick them up through /v1/subsidies/pickups, or label a "
            "top-up otherwise",
        )
    if purpose == CARRY_PURPOSE and (terminal.role != DESK or reserve is None):
        raise Invalid(
            "reserved",
            f"the purpose {CARRY_PURPOSE!r} is the label of a replacement's carried balance, "
            "loaded only by the issuance desk that claimed the replacement: label a top-up "
            "otherwise",
        )
    if request.terminal_id.hex().upper() != terminal.terminal_id:
        raise Forbidden(
            "wrong_terminal",
            f"load request names terminal {request.terminal_id.hex().upper()}, credentials "
            f"are for {terminal.terminal_id}",
        )
    if not 0 < request.amount <= limits.max_amount:
        raise Invalid(
            "amount_limit", f"a top-up must be 1..{limits.max_amount} fen, not {request.amount}"
        )
    if request.balance_before + request.amount > limits.max_balance:
        raise Invalid(
            "balance_limit",
            f"balance {request.balance_before} + {request.amount} fen would pass the purse "
            f"ceiling of {limits.max_balance} fen",
        )
    issuer, serial = request.issuer_id.hex().upper(), request.card_serial.hex().upper()
    try:
        auth = hsm.load_mac2(request)
    except LoadDeclined as exc:
        raise Invalid("declined", exc.reason) from None
    now = now_ms()
    with db.tx() as cur:
        if _card_listed(cur, issuer, serial):
            raise Forbidden("hotlisted", f"card {serial} is on the hotlist (挂失)")
        cur.execute(
            f"SELECT {_COLUMNS} FROM loads WHERE issuer_id = ? AND card_serial = ?"
            " AND online_atc = ? ORDER BY id",
            (issuer, serial, request.online_atc),
        )
        for live in map(_row, cur.fetchall()):
            same = (
                live.card_random == request.card_random.hex().upper()
                and live.mac1 == request.mac1.hex().upper()
                and live.amount == request.amount
                and live.terminal_id == terminal.terminal_id
            )
            if same and live.state != VOID:
                return live  # a retry after a lost answer: the same MAC2 again
            if same:
                raise Conflict(
                    "load_void",
                    f"this INITIALIZE FOR LOAD answer was load {live.reference}, since void: "
                    "run INITIALIZE FOR LOAD again",
                )
            if live.state == CONFIRMED:
                raise Conflict(
                    "counter_reused",
                    f"card {serial} already confirmed a load at online ATC "
                    f"{request.online_atc}; its counter cannot repeat",
                )
            if live.state == AUTHORIZED:
                raise load_pending(live)
        reference = "L" + secrets.token_hex(10).upper()
        cur.execute(
            "INSERT INTO loads (reference, terminal_id, operator_id, issuer_id, card_serial,"
            " online_atc, amount, balance_before, key_version, algorithm, card_random, mac1,"
            " mac2, host_time, state, purpose, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'authorized', ?, ?)",
            (
                reference,
                terminal.terminal_id,
                terminal.operator_id,
                issuer,
                serial,
                request.online_atc,
                request.amount,
                request.balance_before,
                request.key_version,
                request.algorithm,
                request.card_random.hex().upper(),
                request.mac1.hex().upper(),
                auth.mac2.hex().upper(),
                auth.when.isoformat(timespec="seconds"),
                purpose,
                now,
            ),
        )
        load = _get(cur, reference)
        assert load is not None
        if reserve is not None:
            reserve(cur, load)
    return load


@retried
def _confirm(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    reference: str,
    tac: bytes,
    resolution: str,
    *,
    mac: bytes | None = None,
) -> LoadRecord:
    with db.tx() as cur:
        load = _own(terminal, _get(cur, reference), reference)
        if load.state == CONFIRMED:
            if load.tac == tac.hex().upper():
                return load
            raise Conflict("tac_mismatch", f"load {reference} was confirmed with another TAC")
        if load.state == VOID:
            raise Conflict("load_void", f"load {reference} is void: {load.resolution}")
        if mac is not None and mac.hex().upper() != load.mac2:
            raise Invalid("prove_mismatch", "the card's proof is for another credit (MAC differs)")
        if not hsm.load_tac_valid(load.request(), load.authorization(), tac):
            raise Invalid("bad_tac", "the card's TAC for this load does not verify")
        now = now_ms()
        cur.execute(
            "UPDATE loads SET state = 'confirmed', tac = ?, resolution = ?, resolved_at = ?"
            " WHERE id = ? AND state = 'authorized'",
            (tac.hex().upper(), resolution, now, load.id),
        )
        if cur.rowcount != 1:
            raise Conflict("concurrent_update", f"load {reference} was settled meanwhile")
        cur.execute(
            "INSERT INTO outbox (kind, ref_id, created_at, available_at) VALUES ('load', ?, ?, ?)"
            " ON CONFLICT (kind, ref_id) DO NOTHING",
            (load.id, now, now),
        )
        out = _get(cur, reference)
    assert out is not None
    return out


def confirm(
    db: Database, hsm: HostSecurityModule, terminal: Terminal, reference: str, tac: bytes
) -> LoadRecord:
    """The card credited and answered CREDIT FOR LOAD with this TAC."""
    return _confirm(db, hsm, terminal, reference, tac, "confirmed by the kiosk")


def prove(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    reference: str,
    mac: bytes,
    tac: bytes,
) -> LoadRecord:
    """An unconfirmed load settled later from GET TRANSACTION PROVE (type 02): MAC ‖ TAC."""
    return _confirm(db, hsm, terminal, reference, tac, "proved by GET TRANSACTION PROVE", mac=mac)


def _unsettled(load: LoadRecord) -> None:
    if load.state == CONFIRMED:
        raise Conflict("load_confirmed", f"load {load.reference} is confirmed; it cannot be void")
    if load.state == VOID:
        raise Conflict("load_void", f"load {load.reference} is already void: {load.resolution}")


@dataclass(frozen=True, slots=True)
class VoidChallenge:
    """What the kiosk asks the card for a void: INITIALIZE FOR LOAD with this terminal-id
    field and amount (and no CREDIT after it)."""

    reference: str
    terminal_field: str
    amount: int
    expires_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "terminal_id": self.terminal_field,
            "amount": self.amount,
            "expires_at_ms": self.expires_at,
        }


@retried
def void_challenge(db: Database, terminal: Terminal, reference: str) -> VoidChallenge:
    """A fresh single-use challenge for voiding this terminal's unsettled load; it replaces
    any earlier one. Its amount stays within the load's, so the card accepts it wherever
    it accepted the load."""
    now = now_ms()
    field = secrets.token_bytes(6).hex().upper()
    with db.tx() as cur:
        load = _own(terminal, _get(cur, reference), reference)
        _unsettled(load)
        amount = 1 + secrets.randbelow(min(CHALLENGE_MAX_AMOUNT, load.amount))
        expires = now + CHALLENGE_TTL_MS
        cur.execute("DELETE FROM load_void_challenges WHERE load_id = ?", (load.id,))
        cur.execute(
            "INSERT INTO load_void_challenges (load_id, terminal_field, amount, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?)",
            (load.id, field, amount, now, expires),
        )
    return VoidChallenge(reference, field, amount, expires)


@retried
def void(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    reference: str,
    evidence: LoadRequest,
) -> LoadRecord:
    """Void an unconfirmed load on the card's own word: an INITIALIZE FOR LOAD run for this
    load's live challenge (its terminal-id field and amount), MAC1 verified, showing the
    load's card still at the load's online ATC and no more money than before the load."""
    field, mac1 = evidence.terminal_id.hex().upper(), evidence.mac1.hex().upper()
    now = now_ms()
    with db.tx() as cur:
        load = _own(terminal, _get(cur, reference), reference)
        cur.execute(
            "SELECT terminal_field, amount, expires_at, used_at, used_mac1"
            " FROM load_void_challenges WHERE load_id = ?",
            (load.id,),
        )
        challenge = cur.fetchone()
        if load.state == VOID and challenge is not None and challenge[4] == mac1:
            return load  # a retry after a lost answer
        _unsettled(load)
        if challenge is None:
            raise Conflict(
                "no_challenge",
                f"load {reference} has no void challenge: evidence read before one exists "
                "cannot show the card never credited; ask POST "
                f"/v1/loads/{reference}/void-challenge and run INITIALIZE FOR LOAD with it",
            )
        want_field, want_amount, expires_at, _, _ = challenge  # used: the load is void
        if now > int(expires_at):
            raise Conflict(
                "challenge_expired", f"the void challenge of {reference} expired; ask again"
            )
        if field != want_field or evidence.amount != int(want_amount):
            raise Invalid(
                "stale_evidence",
                f"the evidence is not fresh: its INITIALIZE FOR LOAD names terminal {field} "
                f"and {evidence.amount} fen, the challenge of {reference} asked for "
                f"{want_field} and {want_amount} fen",
            )
        try:
            hsm.verify_load_mac1(evidence)
        except LoadDeclined as exc:
            raise Invalid("bad_evidence", f"evidence refused: {exc.reason}") from None
        same_card = (
            evidence.issuer_id.hex().upper() == load.issuer_id
            and evidence.card_serial.hex().upper() == load.card_serial
        )
        if not same_card:
            raise Invalid(
                "not_proven",
                f"the evidence is from card {evidence.card_serial.hex().upper()}, the load "
                f"is card {load.card_serial}'s",
            )
        if evidence.online_atc != load.online_atc:
            raise Invalid(
                "not_proven",
                f"the card's online ATC is {evidence.online_atc}, not the load's "
                f"{load.online_atc}: it credited; settle it with GET TRANSACTION PROVE instead",
            )
        if evidence.balance_before > load.balance_before:
            raise Invalid(
                "not_proven",
                f"the card holds {evidence.balance_before} fen, more than the "
                f"{load.balance_before} before the load; settle it with GET TRANSACTION PROVE",
            )
        cur.execute(
            "UPDATE load_void_challenges SET used_at = ?, used_mac1 = ?"
            " WHERE load_id = ? AND used_at IS NULL",
            (now, mac1, load.id),
        )
        if cur.rowcount != 1:
            raise Conflict("challenge_used", f"the void challenge of {reference} was used")
        cur.execute(
            "UPDATE loads SET state = 'void', resolution = ?, resolved_at = ?"
            " WHERE id = ? AND state = 'authorized'",
            (
                "void: an INITIALIZE FOR LOAD run for the void challenge shows the card's "
                "online ATC unmoved, so it never credited and its MAC2 is dead",
                now,
                load.id,
            ),
        )
        if cur.rowcount != 1:
            raise Conflict("concurrent_update", f"load {reference} was settled meanwhile")
        out = _get(cur, reference)
    assert out is not None
    return out
