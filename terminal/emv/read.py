"""Read one EMV application for display: data, ODA outcome, EC balance and limits, logs.

A read is a zero-amount transaction that asks for an online cryptogram (qPBOC) or stops
before GENERATE AC (contact), so the card's balance never changes; the counters it
reports are read with GET DATA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from terminal.apdu.flow import Flow
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig, Transaction
from terminal.emv.ec import EcInfo, EcLog, get_data, read_ec_info, read_log
from terminal.emv.kernel import ApplicationData, process_application
from terminal.emv.selection import CONTACTLESS, Candidate, select_application
from terminal.emv.tags import Tag

BALANCE_INQUIRY = 0x31


@dataclass(frozen=True, slots=True)
class EmvApplicationReport:
    candidate: Candidate
    app: ApplicationData
    ec: EcInfo
    log: EcLog | None
    atc: int | None
    last_online_atc: int | None
    pin_tries: int | None


def _counter(raw: bytes | None) -> int | None:
    return int.from_bytes(raw, "big") if raw else None


def read_application(
    candidate: Candidate,
    config: TerminalConfig,
    store: CaKeyStore,
    *,
    interface: str = CONTACTLESS,
    now: datetime | None = None,
) -> Flow[EmvApplicationReport]:
    fci = yield from select_application(candidate)
    txn = Transaction(amount=0, txn_type=BALANCE_INQUIRY, when=now, online_required=True)
    app = yield from process_application(
        candidate.aid, fci, config, store, txn, interface=interface, now=now
    )
    ec = yield from read_ec_info()
    atc = yield from get_data(Tag.ATC)
    last_online = yield from get_data(Tag.LAST_ONLINE_ATC)
    pin_tries = yield from get_data(Tag.PIN_TRY_COUNTER)
    log = None
    if fci.log_entry is not None:
        log = yield from read_log(fci.log_entry)
    return EmvApplicationReport(
        candidate,
        app,
        ec,
        log,
        _counter(atc) if atc is not None else _counter(app.card.get(Tag.ATC)),
        _counter(last_online),
        _counter(pin_tries),
    )
