"""Terminal data: defaults, the JSON file form, and the per-transaction DOL source."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest

from terminal.emv.config import (
    KIND_EPURSE,
    TerminalConfig,
    Transaction,
    transaction_data,
)
from terminal.emv.errors import TerminalConfigError
from terminal.emv.tags import Tag, tag_format, tag_name

h = bytes.fromhex


def test_file_form_round_trips_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "terminal.json"
    path.write_text(
        """{"ttq": "36000000", "country": "0344", "fdda_formats": ["95"],
            "fdda_failure": "decline", "date": "2015-03-16", "time": "10:00:00",
            "unpredictable_number": "7863AFC6", "offline_only": true,
            "supported_aids": [{"aid": "A000000632010105", "partial": false, "kind": "epurse"}],
            "extra_data": {"9F4E": "4142"}}"""
    )
    c = TerminalConfig.from_file(path)
    assert c.ttq == h("36000000") and c.country == "0344" and c.fdda_formats == (0x95,)
    assert c.date == date(2015, 3, 16) and c.time == time(10, 0)
    assert c.supported_aids[0].kind == KIND_EPURSE and not c.supported_aids[0].partial
    data = transaction_data(c, Transaction(amount=100))
    assert data[Tag.UNPREDICTABLE_NUMBER] == h("7863AFC6")
    assert data[Tag.DATE] == h("150316") and data[Tag.TIME] == h("100000")
    assert data[Tag.TTQ][0] & 0x08  # offline-only bit
    assert data[Tag.MERCHANT_NAME] == h("4142")


@pytest.mark.parametrize(
    "text",
    [
        '{"ttq": "12"}',
        '{"nonsense": 1}',
        '{"fdda_failure": "maybe"}',
        '{"country": "CN"}',
        '{"unpredictable_number": "ZZ"}',
        "[1, 2]",
        "{",
    ],
)
def test_bad_files_raise_terminal_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(TerminalConfigError):
        TerminalConfig.from_file(path)


def test_transaction_data_amounts_and_limits() -> None:
    c = TerminalConfig(floor_limit=1_000, cvm_limit=500, ec_terminal_limit=2_000)
    small = transaction_data(c, Transaction(amount=400, when=datetime(2026, 1, 2, 3, 4, 5)))
    assert small[Tag.AMOUNT] == h("000000000400")
    assert small[Tag.DATE] == h("260102") and small[Tag.TIME] == h("030405")
    assert not small[Tag.TTQ][1] & 0xC0 and small[Tag.EC_TERMINAL_SUPPORT] == b"\x01"
    big = transaction_data(c, Transaction(amount=2_500))
    assert big[Tag.TTQ][1] & 0x80 and big[Tag.TTQ][1] & 0x40
    assert big[Tag.EC_TERMINAL_SUPPORT] == b"\x00"
    assert len(transaction_data(c, Transaction())[Tag.UNPREDICTABLE_NUMBER]) == 4


def test_tag_dictionary() -> None:
    assert tag_name(0x9F79) == "EC Balance" and tag_format(0x9F79) == "n"
    assert tag_format(0x5A) == "cn" and tag_format(0xDF01) == "b"
    assert tag_name(0xDF01) == "tag DF01"
