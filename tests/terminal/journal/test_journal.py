"""The journal's states, order, durability settings and refusals."""

from datetime import datetime

import pytest

from terminal.journal import INTENT, SETTLED, SUSPECT, VOID, Journal, JournalError

T0 = datetime(2026, 11, 28, 9, 0, 0)


def intent(j: Journal, seq: int, amount: int = 200, serial: bytes = b"\x01" * 8) -> int:
    return j.record_intent(
        terminal_id=bytes.fromhex("310000000201"),
        terminal_seq=seq,
        issuer_id=b"\x02" * 8,
        card_serial=serial,
        txn_type=9,
        amount=amount,
        balance_before=1000,
        card_atc=seq,
        key_version=1,
        algorithm=0,
        txn_time=T0,
        context={"mode": "bus"},
    )


def test_wal_and_full_sync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_state_machine_and_upload_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    a, b, c, d = (intent(j, s) for s in (1, 2, 3, 4))
    j.settle(c, tac=b"TAC3", mac2=b"MAC3", mac2_verified=True)
    j.void(b, "never debited")
    j.settle(a, tac=b"TAC1", mac2=b"MAC1", mac2_verified=False)  # online, MAC2 refused
    assert [r.state for r in j.rows()] == [SUSPECT, VOID, SETTLED, INTENT]
    exported = j.export()
    assert [r.terminal_seq for r in exported] == [3, 1]
    assert [r.upload_seq for r in exported] == [1, 2]
    assert exported[0].upload_record()["tac"] == b"TAC3".hex().upper()
    assert j.open_rows()[0].id == d
    with pytest.raises(JournalError, match="already settled"):
        j.void(c, "too late")
    assert j.mark_uploaded([1]) == 1 and j.mark_uploaded([1]) == 0
    assert [r.terminal_seq for r in j.export()] == [1]
    assert j.pending_upload() == 1
    assert j.totals()[SETTLED] == (1, 200)


def test_duplicate_identity_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    intent(j, 7)
    with pytest.raises(JournalError, match=r"seq 7 already journaled: the PSAM gave a number") as e:
        intent(j, 7)
    assert str(e.value).endswith("nothing was debited")
    assert len(j.rows()) == 1


def test_negative_amount_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(JournalError):
        intent(Journal(tmp_path / "j.db"), 1, amount=-5)


def test_reopen_keeps_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    j = Journal(tmp_path / "j.db")
    rid = intent(j, 1)
    j.close()
    j2 = Journal(tmp_path / "j.db")
    j2.check_integrity()
    assert j2.open_rows()[0].id == rid
    assert j2.open_rows(b"\x01" * 8) and not j2.open_rows(b"\x09" * 8)
    assert j2.get(rid).context == {"mode": "bus"}
