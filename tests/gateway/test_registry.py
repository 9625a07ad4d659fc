"""The SQLite card registry: one person one card, pending and resumed issuance, loss,
replacement with the carried balance, and the JSON export the gateway ingests."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

import pytest

from gateway.registry import SqliteCardRegistry, card_number_for
from terminal.roles.registry import (
    RECORD_SCHEMA,
    Applicant,
    CardState,
    DuplicateCard,
    IssuanceInProgress,
    NoNumbers,
    NotThisDesk,
    NumberBlock,
    RegistryRefused,
    ReplacementRefused,
    UnknownCard,
    serial_of,
)
from tests.conftest import FrozenClock
from tests.issuance_kit import SHANGHAI, VALID_ID

ZHANG = Applicant("张三", VALID_ID, card_kind=1)
LI = Applicant("李四", "110101199003074514", card_kind=1)
CHIP_A, CHIP_B = bytes.fromhex("5946000000000001"), bytes.fromhex("5946000000000002")


DESK = "310000000080"
BLOCK = NumberBlock(1, SHANGHAI, DESK, 10_000_001, 10_000_100)


def desk_book(path: object = None, **kw: object) -> SqliteCardRegistry:
    """A desk's book holding the card centre's block ``BLOCK``."""
    reg = SqliteCardRegistry(path, **kw)  # type: ignore[arg-type]
    reg.hold(BLOCK)
    return reg


@pytest.fixture
def registry(clock: FrozenClock) -> SqliteCardRegistry:
    return desk_book(clock=clock)


def issued(registry: SqliteCardRegistry, who: Applicant = ZHANG, chip: bytes = CHIP_A) -> str:
    number = registry.begin_issue(SHANGHAI, who, chip).card_number
    registry.activate(number)
    return number


def test_numbers_are_19_digits_per_issuer_and_match_the_serial(registry) -> None:  # type: ignore[no-untyped-def]
    first = registry.begin_issue(SHANGHAI, ZHANG, CHIP_A)
    second = registry.begin_issue(SHANGHAI, LI, CHIP_B)
    assert first.card_number == card_number_for(SHANGHAI, 10_000_001) == "3100029000010000001"
    assert len(second.card_number) == 19 and int(second.card_number) == int(first.card_number) + 1
    assert first.state == CardState.PENDING and first.serial == serial_of(first.card_number)
    assert registry.by_serial(first.serial) == first


def test_one_person_one_live_card_per_kind(registry) -> None:  # type: ignore[no-untyped-def]
    number = issued(registry)
    with pytest.raises(DuplicateCard, match=number):
        registry.begin_issue(SHANGHAI, ZHANG, CHIP_B)
    student = Applicant("张三", VALID_ID, card_kind=2)
    assert registry.begin_issue(SHANGHAI, student, CHIP_B).state == CardState.PENDING
    assert len(registry.by_id_number(VALID_ID)) == 2


def test_the_database_itself_refuses_a_second_live_card(registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cards.db"
    reg = desk_book(path)
    issued(reg)
    reg.close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO cards (card_number, serial, issuer_id, name, id_type, id_number, "
            "card_kind, card_type, state, created_at, revision) "
            "VALUES ('1', '01', '00', 'x', 0, ?, 1, 1, 'active', '2026-01-01', 99)",
            (VALID_ID,),
        )


def test_pending_issuance_resumes_on_its_chip_and_blocks_other_chips(registry) -> None:  # type: ignore[no-untyped-def]
    first = registry.begin_issue(SHANGHAI, ZHANG, CHIP_A)
    assert registry.begin_issue(SHANGHAI, ZHANG, CHIP_A) == first  # same number again
    with pytest.raises(IssuanceInProgress, match="5946000000000001"):
        registry.begin_issue(SHANGHAI, ZHANG, CHIP_B)
    assert registry.abandon(first.card_number).state == CardState.VOID
    again = registry.begin_issue(SHANGHAI, ZHANG, CHIP_B)
    assert again.card_number != first.card_number  # numbers are never reused
    with pytest.raises(RegistryRefused):
        registry.abandon(issued(registry, LI, CHIP_A))


def test_someone_elses_pending_card_on_a_chip_is_voided_when_the_chip_is_reused(registry) -> None:  # type: ignore[no-untyped-def]
    zhang = registry.begin_issue(SHANGHAI, ZHANG, CHIP_A)
    li = registry.begin_issue(SHANGHAI, LI, CHIP_A)
    assert registry.get(zhang.card_number).state == CardState.VOID
    assert li.state == CardState.PENDING


def test_replacement_carries_the_last_reported_balance_after_hotlisting(
    registry, clock: FrozenClock
) -> None:  # type: ignore[no-untyped-def]
    registry.replacement_wait = timedelta(days=7)
    old = issued(registry)
    registry.report_balance(old, 4_321, clock.now + timedelta(hours=2))
    registry.report_balance(old, 9_999, clock.now + timedelta(hours=1))  # older: ignored
    with pytest.raises(ReplacementRefused, match="only a lost card"):
        registry.begin_replacement(old, CHIP_B)
    registry.report_lost(old)
    with pytest.raises(DuplicateCard, match="replace it"):
        registry.begin_issue(SHANGHAI, ZHANG, CHIP_B)
    with pytest.raises(ReplacementRefused, match="hotlist"):
        registry.begin_replacement(old, CHIP_B)
    registry.mark_hotlisted(old, 12)
    with pytest.raises(ReplacementRefused, match="can be replaced from"):
        registry.begin_replacement(old, CHIP_B)
    clock.advance(days=7)
    new = registry.begin_replacement(old, CHIP_B)
    assert (new.replaces, new.carry_fen, new.holder) == (old, 4_321, ZHANG)
    assert registry.begin_replacement(old, CHIP_B) == new  # resumable on its chip
    with pytest.raises(ReplacementRefused, match="already being replaced"):
        registry.begin_replacement(old, CHIP_A)
    registry.activate(new.card_number)
    assert registry.get(new.card_number).carry_pending
    done = registry.record_carry_loaded(new.card_number)
    assert (done.balance_fen, done.carry_pending) == (4_321, False)
    old_record = registry.get(old)
    assert (old_record.state, old_record.replaced_by) == (CardState.REPLACED, new.card_number)
    with pytest.raises(ReplacementRefused, match=f"already replaced by {new.card_number}"):
        registry.begin_replacement(old, CHIP_A)


def test_export_returns_changes_after_a_revision_as_json(registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    number = issued(registry)
    everything = registry.export()
    assert [r["card_number"] for r in everything] == [number]
    record = everything[0]
    assert record["schema"] == RECORD_SCHEMA and record["state"] == "active"
    assert record["holder"] == {"name": "张三", "id_type": 0, "id_number": VALID_ID}
    assert record["serial"] == serial_of(number).hex().upper()
    json.dumps(everything, ensure_ascii=False)
    mark = record["revision"]
    assert registry.export(mark) == []
    registry.report_lost(number)
    changed = registry.export(mark)
    assert [(r["card_number"], r["state"]) for r in changed] == [(number, "lost")]
    assert changed[0]["revision"] > mark


def test_the_book_survives_a_restart(tmp_path, clock: FrozenClock) -> None:
    path = tmp_path / "cards.db"
    reg = desk_book(path, clock=clock)
    number = issued(reg)
    reg.close()
    again = SqliteCardRegistry(path, clock=clock)
    assert again.get(number).state == CardState.ACTIVE
    assert again.begin_issue(SHANGHAI, LI, CHIP_B).card_number != number
    with pytest.raises(UnknownCard):
        again.get("3100029099999999999")
    with pytest.raises(RegistryRefused):
        again.report_balance(number, -1, datetime(2026, 1, 1))


def test_numbers_come_from_held_blocks_in_order_and_the_position_survives_a_restart(
    tmp_path, clock: FrozenClock
) -> None:
    path = tmp_path / "cards.db"
    reg = SqliteCardRegistry(path, clock=clock)
    with pytest.raises(NoNumbers, match=r"holds no unused card number.*lease a block"):
        reg.begin_issue(SHANGHAI, ZHANG, CHIP_A)
    assert reg.export() == []  # refused before anything was written
    reg.hold(NumberBlock(7, SHANGHAI, DESK, 500, 501))
    reg.hold(NumberBlock(9, SHANGHAI, DESK, 900, 900))
    first = reg.begin_issue(SHANGHAI, ZHANG, CHIP_A).card_number
    reg.close()
    again = SqliteCardRegistry(path, clock=clock)
    again.hold(NumberBlock(7, SHANGHAI, DESK, 500, 501))  # held again: the position stays
    assert (again.desk_id, again.numbers_left(SHANGHAI)) == (DESK, 2)
    second = again.begin_issue(SHANGHAI, LI, CHIP_B).card_number
    third = again.begin_issue(SHANGHAI, Applicant("王五", "110101198001010011"), bytes(8))
    assert [first, second, third.card_number] == [
        card_number_for(SHANGHAI, n) for n in (500, 501, 900)
    ]
    with pytest.raises(NoNumbers):
        again.begin_issue(SHANGHAI, Applicant("赵六", "110101198001010038"), bytes(7) + b"\1")
    with pytest.raises(NotThisDesk, match="belongs to desk 310000000080"):
        again.hold(NumberBlock(10, SHANGHAI, "310000000081", 901, 950))
    assert again.numbers_left(SHANGHAI) == 0
