"""Electronic Cash sales in the journal: their own rows and sequence, one upload order with
the e-purse rows, and an older journal migrating to hold them."""

import sqlite3
from datetime import datetime

import pytest

from terminal.journal import INTENT, SETTLED, SUSPECT, VOID, Journal, JournalError
from terminal.journal.journal import SCHEMA_VERSION
from terminal.record import EC_PURCHASE, RecordError

from .test_journal import intent

T0 = datetime(2026, 11, 28, 9, 0, 0)
TID = bytes.fromhex("310000000201")


def ec_intent(j: Journal, *, amount: int = 1_200, seq: int | None = None) -> int:
    return j.record_ec_intent(
        {
            "terminal_id": TID,
            "ec_seq": seq or j.next_ec_seq(TID),
            "pan": "6235000000000000017",
            "pan_seq": 1,
            "aid": "A000000333010101",
            "txn_type": 0,
            "amount": amount,
            "amount_other": 0,
            "currency": 156,
            "country": 156,
            "txn_time": T0,
            "ec_balance_before": 5_000,
            "unpredictable_number": bytes.fromhex("01020304"),
            "context": {"merchant": "shop"},
        }
    )


PROOF = {
    "cryptogram": bytes.fromhex("1122334455667788"),
    "cid": 0x40,
    "atc": 7,
    "iad": "07010103A00000",
    "aip": bytes.fromhex("0080"),
    "tvr": bytes(5),
    "dol_data": "00000000120000",
    "ec_balance_after": 3_800,
}


def test_an_ec_sale_goes_intent_to_settled_with_its_proof(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    row_id = ec_intent(j)
    assert [r.state for r in j.open_ec_rows("6235000000000000017")] == [INTENT]
    assert j.pending_upload() == 0
    row = j.resolve_ec(row_id, SETTLED, "TC, fDDA passed", PROOF)
    assert row.state == SETTLED and row["cryptogram"] == "1122334455667788"
    assert row["atc"] == 7 and row["ec_balance_after"] == 3_800 and row.upload_seq == 1
    assert j.pending_upload() == 1 and j.open_ec_rows() == []
    wire = row.upload_record()
    assert EC_PURCHASE.from_wire(wire)[0] == TID.hex().upper()
    assert EC_PURCHASE.key(wire) == f"E:{TID.hex().upper()}:1"
    with pytest.raises(JournalError, match="already settled"):
        j.resolve_ec(row_id, VOID, "again")
    j.close()


def test_ec_and_epurse_rows_share_one_upload_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    ep = intent(j, 1)
    j.settle(ep, tac=b"\x01" * 4, mac2=b"\x02" * 4, mac2_verified=True)
    ec = j.resolve_ec(ec_intent(j), SUSPECT, "GPO torn", {})
    ep2 = j.settle(intent(j, 2), tac=b"\x01" * 4, mac2=b"\x02" * 4, mac2_verified=True)
    assert ec.upload_seq == 2 and ep2.upload_seq == 3
    assert j.pending_upload() == 3
    assert j.mark_uploaded([2]) == 1 and [r.upload_seq for r in j.export_ec()] == []
    assert j.pending_upload() == 2
    j.close()


def test_ec_sequence_is_its_own_and_unique(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    j.void(intent(j, 9), "refused")  # a PSAM number is not an EC number
    assert j.next_ec_seq(TID) == 1
    first = ec_intent(j)
    assert j.next_ec_seq(TID) == 2
    with pytest.raises(JournalError, match="EC seq 1 already journaled"):
        ec_intent(j, seq=1)
    voided = j.resolve_ec(first, VOID, "card declined (AAC)")
    assert voided.upload_seq is None and j.pending_upload() == 0
    j.close()


def test_a_version_2_journal_migrates_and_keeps_its_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "j.db"
    j = Journal(path)
    j.settle(intent(j, 1), tac=b"\x01" * 4, mac2=b"\x02" * 4, mac2_verified=True)
    j.close()
    with sqlite3.connect(path) as old:  # what a journal written before EC rows looks like
        old.execute("DROP TABLE ec_txn")
        old.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    j = Journal(path)
    assert [r.terminal_seq for r in j.export()] == [1]
    j.resolve_ec(ec_intent(j), SETTLED, "TC", PROOF)
    assert j.pending_upload() == 2
    assert j._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    j.close()


def test_a_settled_ec_record_without_cryptogram_is_refused_on_the_wire() -> None:
    wire = {n: None for n in EC_PURCHASE.names}
    wire.update(
        terminal_id=TID.hex(), ec_seq=1, pan="6235000000000000017", pan_seq=1,
        aid="A000000333010101", txn_type=0, amount=100, amount_other=0, currency=156,
        country=156, txn_time="2026-11-28T09:00:00", ec_balance_before=500,
        unpredictable_number="01020304", state="settled", context={},
    )  # fmt: skip
    with pytest.raises(RecordError, match="PAN, cryptogram and ATC"):
        EC_PURCHASE.from_wire(wire)
    with pytest.raises(RecordError, match="pan must be 12 to 19 digits"):
        EC_PURCHASE.from_wire({**wire, "pan": "62350000X"})
    with pytest.raises(RecordError, match="more than the EC balance"):
        EC_PURCHASE.from_wire({**wire, "amount": 600, "cryptogram": "00" * 8, "atc": 1})
