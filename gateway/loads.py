"""Online load authorisation for kiosks: authorise (MAC1 -> MAC2), confirm (TAC), resolve.

States: ``authorized`` -> ``confirmed`` (the card's TAC, from CREDIT FOR LOAD or later from
GET TRANSACTION PROVE) or ``void`` (the card proved it never credited: a fresh INITIALIZE
FOR LOAD, whose MAC1 the HSM checks, shows the same online counter). A card's online
counter moves on every credit, so (issuer, card, online ATC) names one load: at most one
live row holds it (a partial unique index), and clearing de-duplicates on it too, so a
load is never credited twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.auth import Terminal
from gateway.errors import GatewayError, conflict, not_found, unprocessable
from gateway.hsm import HostSecurityModule
from gateway.storage import Cursor, Database, now_ms
from terminal.epurse.host import LoadDeclined
from terminal.epurse.model import LoadAuthorization, LoadRequest

AUTHORIZED = "authorized"
CONFIRMED = "confirmed"
VOID = "void"

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


def list_loads(
    db: Database, *, terminal_id: str | None = None, state: str | None = None
) -> list[LoadRecord]:
    where, params = [], []
    if terminal_id is not None:
        where.append("terminal_id = ?")
        params.append(terminal_id)
    if state is not None:
        where.append("state = ?")
        params.append(state)
    sql = f"SELECT {_COLUMNS} FROM loads"
    if where:
        sql += " WHERE " + " AND ".join(where)
    with db.tx() as cur:
        cur.execute(sql + " ORDER BY id", params)
        return [_row(r) for r in cur.fetchall()]


def _own(terminal: Terminal, load: LoadRecord | None, reference: str) -> LoadRecord:
    if load is None or load.terminal_id != terminal.terminal_id:
        raise not_found("unknown_load", f"no load {reference} for terminal {terminal.terminal_id}")
    return load


def _card_listed(cur: Cursor, issuer_id: str, card_serial: str) -> bool:
    cur.execute(
        "SELECT listed FROM hotlist WHERE issuer_id = ? AND card_serial = ?",
        (issuer_id, card_serial),
    )
    r = cur.fetchone()
    return bool(r and r[0])


def authorize(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    request: LoadRequest,
    *,
    limits: LoadLimits | None = None,
    purpose: str = "",
) -> LoadRecord:
    """Check MAC1, record the pending load and return it with MAC2 (idempotent on retries)."""
    limits = limits or LoadLimits()
    if request.terminal_id.hex().upper() != terminal.terminal_id:
        raise GatewayError(
            403,
            "wrong_terminal",
            f"load request names terminal {request.terminal_id.hex().upper()}, credentials "
            f"are for {terminal.terminal_id}",
        )
    if not 0 < request.amount <= limits.max_amount:
        raise unprocessable(
            "amount_limit", f"a top-up must be 1..{limits.max_amount} fen, not {request.amount}"
        )
    if request.balance_before + request.amount > limits.max_balance:
        raise unprocessable(
            "balance_limit",
            f"balance {request.balance_before} + {request.amount} fen would pass the purse "
            f"ceiling of {limits.max_balance} fen",
        )
    issuer, serial = request.issuer_id.hex().upper(), request.card_serial.hex().upper()
    try:
        auth = hsm.load_mac2(request)
    except LoadDeclined as exc:
        raise unprocessable("declined", exc.reason) from None
    now = now_ms()
    with db.tx() as cur:
        if _card_listed(cur, issuer, serial):
            raise GatewayError(403, "hotlisted", f"card {serial} is on the hotlist (挂失)")
        cur.execute(
            f"SELECT {_COLUMNS} FROM loads WHERE issuer_id = ? AND card_serial = ?"
            " AND online_atc = ? AND state <> 'void'",
            (issuer, serial, request.online_atc),
        )
        r = cur.fetchone()
        if r is not None:
            live = _row(r)
            same = (
                live.card_random == request.card_random.hex().upper()
                and live.mac1 == request.mac1.hex().upper()
                and live.amount == request.amount
                and live.terminal_id == terminal.terminal_id
            )
            if same:
                return live  # a retry after a lost answer: the same MAC2 again
            if live.state == CONFIRMED:
                raise conflict(
                    "counter_reused",
                    f"card {serial} already confirmed a load at online ATC "
                    f"{request.online_atc}; its counter cannot repeat",
                )
            cur.execute(
                "UPDATE loads SET state = 'void', resolution = ?, resolved_at = ? WHERE id = ?",
                (
                    "superseded: the card's next INITIALIZE FOR LOAD shows the same online "
                    "ATC, so it never credited",
                    now,
                    live.id,
                ),
            )
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
    return load


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
            raise conflict("tac_mismatch", f"load {reference} was confirmed with another TAC")
        if load.state == VOID:
            raise conflict("load_void", f"load {reference} is void: {load.resolution}")
        if mac is not None and mac.hex().upper() != load.mac2:
            raise unprocessable(
                "prove_mismatch", "the card's proof is for another credit (MAC differs)"
            )
        if not hsm.load_tac_valid(load.request(), load.authorization(), tac):
            raise unprocessable("bad_tac", "the card's TAC for this load does not verify")
        now = now_ms()
        cur.execute(
            "UPDATE loads SET state = 'confirmed', tac = ?, resolution = ?, resolved_at = ?"
            " WHERE id = ? AND state = 'authorized'",
            (tac.hex().upper(), resolution, now, load.id),
        )
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


def void(
    db: Database,
    hsm: HostSecurityModule,
    terminal: Terminal,
    reference: str,
    evidence: LoadRequest,
) -> LoadRecord:
    """Void an unconfirmed load on the card's own word: a fresh INITIALIZE FOR LOAD whose
    MAC1 verifies and whose online ATC is still the load's, so the credit never happened."""
    try:
        hsm.load_mac2(evidence)
    except LoadDeclined as exc:
        raise unprocessable("bad_evidence", f"evidence refused: {exc.reason}") from None
    with db.tx() as cur:
        load = _own(terminal, _get(cur, reference), reference)
        if load.state == VOID:
            return load
        if load.state == CONFIRMED:
            raise conflict("load_confirmed", f"load {reference} is confirmed; it cannot be void")
        same_card = (
            evidence.issuer_id.hex().upper() == load.issuer_id
            and evidence.card_serial.hex().upper() == load.card_serial
        )
        if not same_card or evidence.online_atc != load.online_atc:
            raise unprocessable(
                "not_proven",
                "the evidence does not show this card with the load's online ATC "
                f"{load.online_atc}; settle it with GET TRANSACTION PROVE instead",
            )
        cur.execute(
            "UPDATE loads SET state = 'void', resolution = ?, resolved_at = ? WHERE id = ?",
            ("void: the card's online ATC shows it never credited", now_ms(), load.id),
        )
        out = _get(cur, reference)
    assert out is not None
    return out
