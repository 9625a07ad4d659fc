"""The transaction record is declared once (terminal/record.py): the journal, the upload, the
gateway's ingest, storage and forwarder, the OpenAPI document and clearing all agree with it,
and a real software-card purchase travels from the journal to clearing through it."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import ingest
from gateway.app import create_app
from gateway.auth import get_terminal, register_terminal
from gateway.forwarder import Forwarder, clearing_records
from gateway.storage import POSTGRES, Database, open_storage
from gateway.storage.schema import KIND_TABLES, TXN_GATEWAY_COLUMNS
from simulators.clearing.ledger import Ledger
from simulators.clearing.verify import TacVerifier
from terminal.epurse.commands import PURCHASE_TYPES, TxnType
from terminal.journal.journal import (
    BOOKKEEPING,
    INTENT_FIELDS,
    EcJournalRow,
    Journal,
    JournalRow,
    LoadJournalRow,
    QrJournalRow,
)
from terminal.record import KINDS, PURCHASE, QR_RIDE, Field, RecordError, RecordKind
from tests.gateway_fixtures import clearing_verifier, db, db_url, pg_cluster
from tests.terminal.qr.kit import QrBus
from tests.traffic import JournaledTerminal, make_cards

__all__ = ["db", "db_url", "pg_cluster"]  # the gateway's storage fixtures, on both backends

TID = "310000000071"
NAMES = list(PURCHASE.names)


def good_wire() -> dict[str, Any]:
    """A well-formed upload (the values need not carry a genuine TAC here)."""
    return PURCHASE.to_wire(
        {
            "terminal_id": bytes.fromhex(TID),
            "terminal_seq": 7,
            "issuer_id": bytes.fromhex("02902900FFFFFFFF"),
            "card_serial": bytes.fromhex("0290000000000001"),
            "txn_type": TxnType.CAPP_PURCHASE,
            "amount": 300,
            "balance_before": 5_000,
            "card_atc": 12,
            "key_version": 1,
            "algorithm": 0,
            "txn_time": datetime(2026, 11, 28, 7, 30, 5),
            "state": "settled",
            "tac": b"\x1a\x2b\x3c\x4d",
            "mac2": b"\x5e\x6f\x7a\x8b",
            "mac2_verified": True,
            "resolution": "online",
            "context": {"line": "71", "站": "西湖"},
        }
    )


# -- every place that holds the record has exactly its fields ------------------------------
@pytest.mark.parametrize(
    "row", [JournalRow, EcJournalRow, QrJournalRow, LoadJournalRow], ids=lambda r: r.table
)
def test_each_journal_table_is_its_record_plus_the_journals_own(tmp_path, row):
    with Journal(tmp_path / "j.db") as j:
        cols = [r[1] for r in j._db.execute(f"PRAGMA table_info({row.table})").fetchall()]
    assert set(cols) == {*row.kind.names, *BOOKKEEPING}


def test_the_journal_row_and_intent_are_the_records(tmp_path):
    with Journal(tmp_path / "j.db") as j:
        cols = [r[1] for r in j._db.execute("PRAGMA table_info(txn)").fetchall()]
    assert [c for c in cols if c not in BOOKKEEPING] == NAMES  # in record order
    row_fields = [f.name for f in fields(JournalRow)]
    assert set(NAMES) <= set(row_fields)
    assert tuple(n for n in NAMES if n in INTENT_FIELDS) == INTENT_FIELDS  # in record order
    assert set(INTENT_FIELDS).isdisjoint({"state", "tac", "mac2", "context"})


def test_ingest_keys_and_row_columns_are_the_records():
    assert list(ingest.RECORD_KEYS) == NAMES
    assert list(ingest.ROW_COLUMNS) == [*NAMES[1:], "content_hash"]
    assert not hasattr(ingest, "DEBIT_TYPES")


def table_columns(db: Database, table: str) -> list[str]:
    with db.tx() as cur:
        if db.dialect == POSTGRES:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                " ORDER BY ordinal_position",
                (table,),
            )
        else:
            cur.execute(f"SELECT name FROM pragma_table_info('{table}')")
        return [r[0] for r in cur.fetchall()]


@pytest.mark.parametrize(("kind", "table"), [(PURCHASE, "txn"), (QR_RIDE, "qr_txn")])
def test_the_gateways_tables_are_the_record_plus_the_gateways_own(db, kind, table):
    cols = table_columns(db, table)
    assert [c for c in cols if c not in TXN_GATEWAY_COLUMNS] == list(kind.names)
    assert set(cols) == {*kind.names, *TXN_GATEWAY_COLUMNS}


def upload_record_schemas(tmp_path: Path) -> list[dict[str, Any]]:
    """The OpenAPI document's record schemas of POST /v1/batches (one per kind)."""
    database = open_storage(f"sqlite:///{tmp_path / 'gw.db'}")
    try:
        doc = create_app(database).openapi()
    finally:
        database.close()
    body = doc["paths"]["/v1/batches"]["post"]["requestBody"]["content"]["application/json"]
    items = body["schema"]["properties"]["records"]["items"]
    return list(items.get("anyOf", [items]))


@pytest.mark.parametrize("kind", [PURCHASE, QR_RIDE], ids=lambda k: k.name)
def test_the_openapi_upload_record_matches_the_declaration(tmp_path, kind):
    names = list(kind.names)
    (schema,) = [s for s in upload_record_schemas(tmp_path) if list(s["properties"]) == names]
    assert schema["required"] == names and schema["additionalProperties"] is False
    for f in kind.fields:
        prop = schema["properties"][f.name]
        variants = prop.get("anyOf", [prop])
        types = {v["type"] for v in variants}
        assert types == ({f.wire_type, "null"} if f.nullable else {f.wire_type}), f.name
        (main,) = [v for v in variants if v["type"] != "null"]
        if f.type is int:
            assert (main["minimum"], main["maximum"]) == (f.lo, f.hi), f.name
        if f.type is bytes:
            assert main["pattern"] == f"^[0-9A-Fa-f]{{{2 * f.length}}}$", f.name


# -- the QR ride: the same places, through its own table ---------------------------------------
QR_NAMES = list(QR_RIDE.names)


def test_a_journaled_qr_ride_uploads_the_ride_record(tmp_path, clock):
    bus = QrBus(tmp_path / "j.db", clock)
    assert bus.scan(bus.code()).green
    (row,) = bus.journal.export_qr()
    assert list(row.upload_record()) == QR_NAMES


def test_ingest_takes_qr_rides_by_their_declaration():
    assert ingest.BATCH_KINDS["qr_ride"] is QR_RIDE
    assert list(ingest.kind_row_columns(QR_RIDE)) == [*QR_NAMES[1:], "content_hash"]
    assert KIND_TABLES["qr_ride"] == "qr_txn"


def test_txn_type_alone_says_what_a_purchase_is():
    assert PURCHASE["txn_type"].choices == tuple(sorted(PURCHASE_TYPES)) == (5, 6, 9)
    assert all(TxnType(t).is_purchase and TxnType(t).is_debit for t in PURCHASE_TYPES)
    assert not TxnType.EP_LOAD.is_purchase and not TxnType.EP_LOAD.is_debit
    assert TxnType.UNLOAD.is_debit and not TxnType.UNLOAD.is_purchase


# -- the declaration's checks and forms ---------------------------------------------------
def test_a_good_record_goes_wire_to_columns_and_back():
    wire = good_wire()
    assert json.loads(json.dumps(wire)) == wire
    columns = PURCHASE.from_wire(wire)
    named = dict(zip(NAMES, columns, strict=True))
    assert named["txn_time"] == "2026-11-28T07:30:05" and named["mac2_verified"] == 1
    assert named["context"] == '{"line":"71","站":"西湖"}'
    assert PURCHASE.to_wire(PURCHASE.from_columns(named)) == wire
    assert PURCHASE.key(wire) == f"P:{TID}:7"
    assert PURCHASE.identity == ("terminal_id", "terminal_seq")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("terminal_seq", -1, "terminal_seq -1 out of range 0..4294967295"),
        ("terminal_seq", 2**32, "out of range"),
        ("amount", True, "amount must be an integer, got bool"),
        ("amount", 10.0, "amount must be an integer, got float"),
        ("txn_type", 0x02, "txn_type 0x02 is not a known purchase type"),
        ("txn_type", 0x100, "txn_type 256 out of range 0..255"),
        ("card_atc", 0x10000, "card_atc 65536 out of range 0..65535"),
        ("issuer_id", "02902900FFFFFFF", "issuer_id must be 16 hex digits"),
        ("card_serial", "029000000000000G", "card_serial must be 16 hex digits"),
        ("terminal_id", None, "terminal_id must not be null"),
        ("tac", "1A2B3C", "tac must be 8 hex digits"),
        ("txn_time", "2026-11-28T07:30:05+08:00", "local card time (no zone)"),
        ("txn_time", "1999-12-31T23:59:59", "between 2000 and 2099"),
        ("txn_time", "yesterday", "is not an ISO date-time"),
        ("state", "intent", "state must be 'settled' or 'suspect'"),
        ("mac2_verified", 1, "mac2_verified must be true, false or null"),
        ("resolution", "x" * 201, "at most 200 characters"),
        ("context", [], "context must be a JSON object"),
        ("context", {"note": "x" * 2048}, "context larger than 2048 bytes"),
    ],
)
def test_each_bad_field_is_refused_by_name(name, value, reason):
    wire = dict(good_wire(), **{name: value})
    with pytest.raises(RecordError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        PURCHASE.from_wire(wire)


def test_the_kinds_rules_and_keys_are_checked():
    with pytest.raises(RecordError, match="a purse never overdraws"):
        PURCHASE.from_wire(dict(good_wire(), amount=6_000))
    with pytest.raises(RecordError, match="a settled record must carry the card's TAC"):
        PURCHASE.from_wire(dict(good_wire(), tac=None))
    assert PURCHASE.from_wire(dict(good_wire(), tac=None, state="suspect"))[12] is None
    with pytest.raises(RecordError, match=r"unknown field\(s\) extra; missing field\(s\) mac2"):
        PURCHASE.from_wire({**{k: v for k, v in good_wire().items() if k != "mac2"}, "extra": 1})
    with pytest.raises(RecordError, match=r"balance_before 6000 out of range 0\.\.5999"):
        PURCHASE.from_wire(dict(good_wire(), balance_before=6_000), bounds={"balance_before": 5999})


def mutations() -> list[tuple[str, Any]]:
    """Boundary and wrong-type values for every field."""
    out: list[tuple[str, Any]] = []
    for f in PURCHASE.fields:
        out += [(f.name, None), (f.name, "0"), (f.name, 1.5), (f.name, True), (f.name, [])]
        if f.type is int:
            out += [(f.name, f.lo), (f.name, f.hi), (f.name, f.lo - 1), (f.name, f.hi + 1)]
        if f.type is bytes:
            digits = 2 * f.length
            out += [(f.name, "ab" * f.length), (f.name, "A" * (digits + 1)), (f.name, "")]
        if f.type is str:
            out += [(f.name, "settled"), (f.name, "suspect"), (f.name, "x" * (f.max_len + 1))]
    return out


@pytest.mark.parametrize(("name", "value"), mutations())
def test_ingests_fast_path_accepts_exactly_what_the_declaration_accepts(name, value):
    wire = dict(good_wire(), **{name: value})
    if name == "terminal_id" and value != TID:
        return  # another terminal's id is a 403 before any field check (tests/gateway)
    try:
        expected: tuple[Any, ...] | str = PURCHASE.from_wire(wire, bounds={"balance_before": 5000})
    except RecordError as exc:
        expected = str(exc)
    try:
        got: tuple[Any, ...] | str = ingest._record(wire, TID, 5000)[:-1]
    except ingest._Bad as exc:
        got = str(exc)
    assert got == (expected[1:] if isinstance(expected, tuple) else expected)


def test_another_kind_is_a_declaration():
    ride = RecordKind(
        name="ride_qr",
        key_prefix="Q",
        fields=(
            Field("terminal_id", bytes, "validator", length=6, identity=True),
            Field("qr_id", str, "code id", max_len=32, identity=True),
            Field("fare", int, "fen", hi=10_000),
        ),
        cleared=("terminal_id", "qr_id", "fare"),
    )
    wire = {"terminal_id": TID, "qr_id": "abc", "fare": 200}
    assert ride.from_wire(wire) == (TID, "abc", 200)
    assert ride.clearing_record(wire, "bus")["key"] == f"Q:{TID}:abc"
    assert set(KINDS) == {"purchase", "ec_purchase", "qr_ride"}
    with pytest.raises(ValueError, match="column form must be its wire form"):
        RecordKind("bad", "B", (Field("flag", bool, "a flag"),), cleared=("flag",))


# -- one purchase from a software card to clearing ------------------------------------------
def through_the_gateway(
    db: Database, kind: RecordKind, table: str, operator: str, body: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    """One record's batch ingested, stored as it was sent and forwarded: the clearing
    record the forwarder builds of it, and the store's result."""
    (wire,) = body["records"]
    terminal = get_terminal(db, body["terminal_id"])
    assert terminal is not None
    batch = ingest.parse_batch(json.dumps(body).encode(), terminal)
    (ingested,) = batch.rows
    assert ingested[:-1] == kind.from_wire(wire)[1:]
    result = ingest.store_batch(db, terminal, batch)
    assert result.counts()["stored"] == 1
    with db.tx() as cur:
        cur.execute(f"SELECT {', '.join(kind.names)} FROM {table}")
        stored = dict(zip(kind.names, cur.fetchone(), strict=True))
    assert kind.to_wire(kind.from_columns(stored)) == wire

    fwd = Forwarder(db, "http://127.0.0.1:9")
    try:
        claimed = fwd.claim()
        with db.tx() as cur:
            (cleared,) = clearing_records(cur, claimed).values()
    finally:
        fwd._client.close()
    assert cleared == kind.clearing_record(wire, operator)
    assert set(cleared) == {*kind.cleared, "key", "kind", "operator_id"}
    return cleared, result


def test_a_purchase_round_trips_journal_to_ingest_to_forwarder_to_clearing(
    db, tmp_path: Path, clock, keysets
):
    term = JournaledTerminal(TID, tmp_path / "journal.db", clock)
    card = make_cards(1, balance=5_000)[0]
    clock.advance(seconds=30)
    row = term.tap(card, 250)
    term.close()
    assert (row.state, row.amount, card.balance) == ("settled", 250, 4_750)
    wire = row.upload_record()
    assert list(wire) == NAMES and json.loads(json.dumps(wire)) == wire
    assert wire["txn_time"] == row.txn_time.isoformat(timespec="seconds")

    register_terminal(db, TID, "metro")
    body = {"batch_id": "b1", "terminal_id": TID, "records": [wire]}
    cleared, _ = through_the_gateway(db, PURCHASE, "txn", "metro", body)
    assert cleared["key"] == f"P:{TID}:{row.terminal_seq}" and cleared["kind"] == "purchase"

    ledger = Ledger(str(tmp_path / "clearing.db"), TacVerifier(keysets))
    try:
        (altered,) = ledger.post("gw", [dict(cleared, amount=251)])
        (accepted,) = ledger.post("gw", [cleared])
        assert ledger.settlement()["totals"]["purchase_amount"] == 250
    finally:
        ledger.close()
    assert altered["status"] == "rejected" and "TAC does not verify" in altered["reason"]
    assert accepted == {"key": cleared["key"], "status": "accepted"}


def test_an_old_journal_row_reads_through_the_record(tmp_path):
    """Rows written before the record module (context as json.dumps default) still read."""
    path = tmp_path / "old.db"
    Journal(path).close()
    con = sqlite3.connect(path)
    con.execute(
        "INSERT INTO txn (terminal_id, terminal_seq, issuer_id, card_serial, txn_type, amount,"
        " balance_before, card_atc, key_version, algorithm, txn_time, state, tac, mac2,"
        " mac2_verified, resolution, context, created_at, upload_seq) VALUES"
        " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (TID, 1, "02902900FFFFFFFF", "0290000000000001", 6, 100, 900, 3, 1, 0,
         "2026-11-28T07:00:00", "settled", "1A2B3C4D", "5E6F7A8B", 1, "online",
         json.dumps({"line": "71", "stop": 3}), "2026-11-28T07:00:01", 1),
    )  # fmt: skip
    con.commit()
    con.close()
    with Journal(path) as j:
        (row,) = j.export()
    wire = row.upload_record()
    assert wire["context"] == {"line": "71", "stop": 3} and wire["mac2_verified"] is True
    assert PURCHASE.from_wire(wire)[0] == TID


# -- one ride paid by a code, from the validator's journal to clearing -------------------------
def test_a_qr_ride_round_trips_journal_to_ingest_to_forwarder_to_clearing(db, tmp_path, clock):
    bus = QrBus(tmp_path / "journal.db", clock)
    ride = bus.scan(bus.code())
    assert (ride.green, ride.fare) == (True, 200), ride.line()
    (row,) = bus.journal.export_qr()
    wire = row.upload_record()
    assert json.loads(json.dumps(wire)) == wire and wire["qr_seq"] == 1
    tid = wire["terminal_id"]

    register_terminal(db, tid, "bus-co", role="validator")
    body = {"batch_id": "q1", "terminal_id": tid, "kind": "qr_ride", "records": [wire]}
    cleared, result = through_the_gateway(db, QR_RIDE, "qr_txn", "bus-co", body)
    assert result.seq_name == "qr_seq"
    assert cleared["key"] == f"Q:{tid}:1" and cleared["kind"] == "qr_ride"

    ledger = Ledger(str(tmp_path / "clearing.db"), clearing_verifier())
    try:
        elsewhere, over = ledger.post(
            "gw", [dict(cleared, platform_code="20000002"), dict(cleared, amount=5_001)]
        )
        (accepted,) = ledger.post("gw", [cleared])
        settlement = ledger.settlement()
    finally:
        ledger.close()
    assert (
        elsewhere["status"] == "rejected"
        and "platform_code is not the code's" in (elsewhere["reason"])
    )
    assert over["status"] == "rejected" and "over-ride-limit" in over["reason"]
    assert accepted == {"key": cleared["key"], "status": "accepted"}
    (platform,) = settlement["by_issuer"]
    assert (platform["issuer_id"], platform["qr_rides"], platform["qr_amount"]) == (
        "QR20000001",
        1,
        200,
    )
    assert (platform["purchases"], settlement["totals"]["purchase_amount"]) == (0, 0)
    assert settlement["totals"]["qr_amount"] == 200
