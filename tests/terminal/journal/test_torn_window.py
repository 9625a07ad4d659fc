"""A purchase left in intent whose card never comes back is made suspect once its window has
passed, through the journal's one resolve path, so it is uploaded like any suspect row; load
rows and EC sales are left to their own resolution."""

from datetime import datetime, timedelta

import pytest

from terminal.journal import INTENT, SETTLED, SUSPECT, Journal, JournalError

from .test_ec_journal import ec_intent
from .test_journal import T0, intent

DAY = timedelta(hours=24)
REASON = (
    "the card did not come back within 24 h to prove whether the debit went through:"
    " kept for checking"
)


def intent_at(j: Journal, seq: int, when: datetime) -> int:
    """An open purchase of another card dated ``when``."""
    return j.record_intent(
        terminal_id=bytes.fromhex("310000000201"),
        terminal_seq=seq,
        issuer_id=b"\x02" * 8,
        card_serial=bytes([seq]) * 8,
        txn_type=9,
        amount=200,
        balance_before=1000,
        card_atc=0,
        key_version=1,
        algorithm=0,
        txn_time=when,
    )


def load_intent(j: Journal) -> int:
    """A kiosk's load torn after the host's MAC2: open, its card gone too."""
    return j.record_load_intent(
        {
            "reference": "L-0001",
            "terminal_id": bytes.fromhex("310000000090"),
            "issuer_id": b"\x02" * 8,
            "card_serial": b"\x01" * 8,
            "online_atc": 3,
            "amount": 5_000,
            "balance_before": 0,
            "key_version": 1,
            "algorithm": 0,
            "txn_time": T0,
            "purpose": "",
        }
    )


def test_an_open_purchase_past_its_window_becomes_suspect_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    old = intent(j, 1)
    settled = intent(j, 2)
    j.settle(settled, tac=b"TAC2", mac2=b"MAC2", mac2_verified=True)
    recent = intent_at(j, 3, T0 + timedelta(hours=20))
    assert j.suspect_unreturned(T0 + DAY, DAY) == []  # exactly the window: still waiting
    assert [r.id for r in j.open_rows()] == [old, recent]

    (made,) = j.suspect_unreturned(T0 + DAY + timedelta(seconds=1), DAY)
    assert (made.id, made.state, made.resolution) == (old, SUSPECT, REASON)
    assert (made.tac, made.mac2, made.mac2_verified) == (None, None, None)
    assert made.upload_seq == 2  # after the row settled before it, like any suspect row
    assert [(r.terminal_seq, r.upload_seq) for r in j.export()] == [(2, 1), (1, 2)]
    wire = made.upload_record()
    assert (wire["state"], wire["tac"], wire["resolution"]) == (SUSPECT, None, REASON)
    assert [r.id for r in j.open_rows()] == [recent]
    assert j.get(settled).state == SETTLED and j.get(recent).state == INTENT

    assert j.suspect_unreturned(T0 + DAY + timedelta(hours=1), DAY) == []  # once only
    with pytest.raises(JournalError, match="already suspect"):  # never reopened, never settled
        j.settle(old, tac=b"TAC1", mac2=b"MAC1", mac2_verified=True)
    assert j.get(old) == made


def test_the_reason_names_the_window_it_waited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    intent(j, 1)
    intent_at(j, 2, T0 + timedelta(hours=2))
    rows = j.suspect_unreturned(T0 + timedelta(hours=3), timedelta(minutes=90))
    assert [r.terminal_seq for r in rows] == [1]
    assert rows[0].resolution == REASON.replace("24 h", "90 min")
    (later,) = j.suspect_unreturned(T0 + timedelta(hours=12), timedelta(hours=6))
    assert later.terminal_seq == 2 and "within 6 h to prove" in (later.resolution or "")


def test_load_rows_and_ec_sales_are_left_to_their_own_resolution(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    ec = ec_intent(j)
    load = load_intent(j)
    purchase = intent(j, 1)
    (made,) = j.suspect_unreturned(T0 + timedelta(days=10), DAY)
    assert made.id == purchase
    (ec_row,) = j.ec_rows()
    (load_row,) = j.load_rows()
    assert (ec_row.id, ec_row.state, ec_row.upload_seq) == (ec, INTENT, None)
    assert (load_row.id, load_row.state, load_row.resolution) == (load, INTENT, None)
    assert j.open_ec_rows() == [ec_row] and j.open_loads() == [load_row]
    assert j.pending_upload() == 1  # the purchase alone waits for upload
