"""Reading a card's trip state and building the trip records a composite purchase writes.

Bridges the card's files (0x17/0x16 card kind, 0x1A 2701/2702, 0x1E) and the pure fare
engine: ``read_trip_state`` is a flow; the ``*_record`` builders are pure.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from terminal.apdu import iso
from terminal.apdu.errors import MalformedResponse, RecordNotFound
from terminal.apdu.flow import Flow, card
from terminal.epurse import commands as c
from terminal.epurse.layouts import BusRecord, MetroRecord, TripRecord
from terminal.epurse.model import Cardholder, Management
from terminal.fares.engine import (
    METRO_ENTERED,
    METRO_EXITED,
    METRO_NONE,
    FareDecision,
    MetroState,
    Place,
    RecentTrip,
    TripState,
)
from terminal.fares.rules import FareRules, Operator
from terminal.layout import build, parse

METRO_RECORD_NO = 0x01
BUS_RECORD_NO = 0x02
RECENT_TRIPS = 3
IN_STATION = 0x55
OUT_STATION = 0x66


@dataclass(frozen=True)
class CardTrips:
    """The engine's view plus the raw 2701 record (exits keep the entry half)."""

    state: TripState
    metro_raw: Any | None  # parsed MetroRecord container, or None when unused/corrupt
    interoperable: bool


def _station_code(field8: bytes) -> str:
    return field8[-2:].hex().upper()


def _metro_state(raw: bytes) -> tuple[MetroState, Any | None]:
    try:
        rec = parse(MetroRecord, raw, "metro record 2701")
    except MalformedResponse:
        return MetroState(METRO_NONE, "", None, 0), None
    if not rec.valid:
        return MetroState(METRO_NONE, "", None, 0), rec
    status = rec.status if rec.status in (METRO_ENTERED, METRO_EXITED) else METRO_NONE
    return MetroState(
        status, _station_code(rec.entry_station), rec.entry_time, rec.entry_amount
    ), rec


def read_trip_state(rules: FareRules, *, recent: int = RECENT_TRIPS) -> Flow[CardTrips]:
    """Card kind (0x17 or 0x16), the metro record 2701, and the newest 0x1E records."""
    kind = 0
    interoperable = True
    r = yield card(iso.read_binary(c.SFI_MANAGEMENT, length=60), check=False)
    if r.ok:
        m = Management.parse(r.data)
        interoperable = m.interoperable
        kind = m.card_kind
    if rules.concession_source == "holder":
        r = yield card(iso.read_binary(c.SFI_CARDHOLDER, length=55), check=False)
        kind = Cardholder.parse(r.data).card_type if r.ok else 0
    r = yield card(iso.read_record(c.SFI_CAPP_VARIABLE, METRO_RECORD_NO), check=False)
    metro, raw = _metro_state(r.data) if r.ok else (MetroState(METRO_NONE, "", None, 0), None)
    trips: list[RecentTrip] = []
    for n in range(1, recent + 1):
        try:
            r = yield card(iso.read_record(c.SFI_TRIP, n))
        except RecordNotFound:
            break
        if not any(r.data):
            break
        t = parse(TripRecord, r.data, "trip record (0x1E)")
        trips.append(RecentTrip(t.txn_type, t.industry, t.line, t.when, t.amount))
    return CardTrips(TripState(kind, metro, trips), raw, interoperable)


def station_field(code: str) -> bytes:
    return bytes(6) + bytes.fromhex(code)


def trip_record(
    decision: FareDecision, place: Place, op: Operator, now: datetime, balance_after: int
) -> bytes:
    """The 48-byte 0x1E process record for this tap."""
    return build(
        TripRecord,
        txn_type=decision.trip_type,
        terminal_no=place.device,
        industry=place.industry,
        line=place.line,
        station=bytes.fromhex(place.station),
        operator=op.operator_code,
        rfu1=b"\x00",
        amount=decision.amount,
        balance=balance_after,
        when=now,
        acquirer_city=op.city_code,
        acquirer_id=op.acquirer_id,
        rfu2=bytes(6),
    )


def _crc(record: bytes) -> int:
    return zlib.crc32(record[6:124]) & 0xFFFFFFFF


def metro_record(
    previous: Any | None,
    decision: FareDecision,
    place: Place,
    op: Operator,
    now: datetime,
    balance_after: int,
    *,
    crc32: bool = True,
) -> bytes:
    """The 128-byte 2701 record after an entry or an exit (entry fields kept on exit)."""
    blank = bytes(8)
    fields: dict[str, Any] = dict(
        valid=1,
        txn_flag=1,
        lock_flag=0,
        txn_serial=blank,
        status=decision.metro_status,
        entry_city=op.city_code,
        exit_city=b"\x00\x00",
        entry_institution=op.acquirer_id,
        exit_institution=blank,
        entry_station=station_field(place.station),
        exit_station=blank,
        entry_device=place.device,
        exit_device=blank,
        entry_time=now,
        exit_time=None,
        max_fare=0,
        entry_line=place.line[-1],
        exit_line=0,
        entry_amount=decision.amount,
        entry_balance=balance_after,
        actual_amount=0,
        last_txn_time=now,
        last_rail_terminal=place.device[-4:],
        cumulative_amount=0,
        cumulative_count=0,
        transfer_info=bytes(5),
        entry_flag=1,
        exit_flag=0,
        in_out=IN_STATION,
        rfu=b"\x00",
        crc32=0,
    )
    if decision.metro_status == METRO_EXITED:
        if previous is not None and previous.status == METRO_ENTERED:
            for k in (
                "txn_serial",
                "entry_city",
                "entry_institution",
                "entry_station",
                "entry_device",
                "entry_time",
                "entry_line",
                "entry_amount",
                "entry_balance",
                "cumulative_amount",
                "cumulative_count",
            ):
                fields[k] = previous[k]
        else:
            fields.update(
                entry_station=blank,
                entry_device=blank,
                entry_time=None,
                entry_amount=0,
                entry_balance=0,
                entry_line=0,
                entry_flag=0,
            )
        fields.update(
            exit_city=op.city_code,
            exit_institution=op.acquirer_id,
            exit_station=station_field(place.station),
            exit_device=place.device,
            exit_time=now,
            exit_line=place.line[-1],
            actual_amount=decision.amount,
            exit_flag=1,
            in_out=OUT_STATION,
            cumulative_amount=min(fields["cumulative_amount"] + decision.amount, 0xFFFFFF),
            cumulative_count=min(fields["cumulative_count"] + 1, 0xFFFF),
        )
    record = build(MetroRecord, **fields)
    if crc32:
        record = record[:124] + _crc(record).to_bytes(4, "big")
    return record


def bus_record(decision: FareDecision, place: Place, op: Operator, now: datetime) -> bytes:
    """The 128-byte 2702 record of a flat-fare boarding (status 01, boarded)."""
    blank = bytes(8)
    return build(
        BusRecord,
        valid=1,
        txn_flag=1,
        lock_flag=0,
        txn_serial=blank,
        status=0x01,
        board_city=op.city_code,
        board_institution=op.acquirer_id,
        board_operator=op.operator_code,
        board_line=place.line,
        board_stop=bytes.fromhex(place.station)[-1],
        board_vehicle=blank,
        board_terminal=place.device,
        board_time=now,
        max_fare=decision.amount,
        direction=0,
        alight_city=b"\x00\x00",
        alight_institution=blank,
        alight_operator=b"\x00\x00",
        alight_line=b"\x00\x00",
        alight_stop=0,
        alight_vehicle=blank,
        alight_terminal=blank,
        alight_time=None,
        amount=decision.amount,
        mileage=0,
        reserved=bytes(26),
    )
