"""Application selection: PPSE, PSE with directory records, priorities, confirmation,
list selection with partial AIDs and next occurrence, final selection fall-through."""

from __future__ import annotations

import pytest

from terminal.apdu.errors import MalformedResponse
from terminal.apdu.tlv import build
from terminal.emv.config import AID_TUNION_EP, KIND_EMV, KIND_EPURSE, SupportedAid, TerminalConfig
from terminal.emv.errors import NoApplication
from terminal.emv.fci import PPSE_NAME, DirectoryFci
from terminal.emv.selection import (
    CONTACT,
    CONTACTLESS,
    SOURCE_LIST,
    SOURCE_PPSE,
    SOURCE_PSE,
    Candidate,
    discover,
    eligible,
    final_selection,
    order,
)
from tests.terminal.emv.helpers import drive, h, scripted

SELECT_PPSE = "00A404000E325041592E5359532E444446303100"
SELECT_PSE = "00A404000E315041592E5359532E444446303100"

# The PSE part of the UnionPay UICS contact trace (binaryfoo/emv-bertlv, MIT; S3/S4)
UICS_PSE = [
    (SELECT_PSE, "6F15840E315041592E5359532E4444463031A5038801019000"),
    ("00B2010C00", "701C611A4F08A000000333010102500B55494343204352454449548701019000"),
    ("00B2020C00", "701B61194F08A000000333010101500A554943432044454249548701029000"),
    ("00B2030C00", "7021611F4F08A0000003330101035010554943432051554153494352454449548701039000"),
    ("00B2040C00", "6A83"),
]


def ppse(*entries: tuple[str, int | None]) -> str:
    kids = []
    for aid, api in entries:
        parts = [build(0x4F, h(aid)), build(0x50, b"APP")]
        if api is not None:
            parts.append(build(0x87, bytes((api,))))
        kids.append(build(0x61, parts))
    fci = build(0x6F, [build(0x84, PPSE_NAME), build(0xA5, [build(0xBF0C, kids)])]).encode()
    return fci.hex() + "9000"


def fci(aid: str) -> str:
    return build(0x6F, [build(0x84, h(aid)), build(0xA5, [build(0x50, b"X")])]).encode().hex()


def test_pse_directory_of_the_uics_card_gives_three_candidates_in_priority_order() -> None:
    found = drive(discover(TerminalConfig(), CONTACT), scripted(UICS_PSE))
    assert found.source == SOURCE_PSE
    assert [c.aid.hex().upper() for c in found.candidates] == [
        "A000000333010102",
        "A000000333010101",
        "A000000333010103",
    ]
    assert [c.label for c in found.candidates] == ["UICC CREDIT", "UICC DEBIT", "UICC QUASICREDIT"]


def test_ppse_orders_by_priority_and_puts_unprioritised_entries_last() -> None:
    reader = scripted(
        [
            (
                SELECT_PPSE,
                ppse(("A000000333010106", None), ("A000000333010101", 2), ("A000000333010102", 1)),
            )
        ]
    )
    found = drive(discover(TerminalConfig(), CONTACTLESS), reader)
    assert found.source == SOURCE_PPSE
    assert [c.aid.hex()[-2:] for c in found.candidates] == ["02", "01", "06"]


def test_ppse_entries_the_terminal_does_not_support_are_dropped() -> None:
    reader = scripted([(SELECT_PPSE, ppse(("A0000000031010", 1), ("A000000333010101", 2)))])
    found = drive(discover(TerminalConfig(), CONTACTLESS), reader)
    assert [c.aid.hex().upper() for c in found.candidates] == ["A000000333010101"]


def test_partial_aid_match_follows_the_application_selection_indicator() -> None:
    longer = "A00000033301010188"
    reader = scripted([(SELECT_PPSE, ppse((longer, 1)))])
    found = drive(discover(TerminalConfig(), CONTACTLESS), reader)
    assert [c.aid.hex().upper() for c in found.candidates] == [longer]
    exact_only = TerminalConfig(
        supported_aids=(SupportedAid(h("A000000333010101"), partial=False),)
    )
    reader = scripted([(SELECT_PPSE, ppse((longer, 1)))])
    assert drive(discover(exact_only, CONTACTLESS), reader).candidates == []


def test_no_ppse_falls_back_to_list_selection() -> None:
    reader = scripted(
        [
            (SELECT_PPSE, "6A82"),
            ("00A4040008A00000033301010200", fci("A000000333010102") + "9000"),
            ("00A4040008A00000063201010500", fci("A000000632010105") + "9000"),
        ]
    )
    config = TerminalConfig()
    found = drive(discover(config, CONTACTLESS, kinds=(KIND_EMV, KIND_EPURSE)), reader)
    assert found.source == SOURCE_LIST
    assert [c.aid.hex().upper() for c in found.candidates] == [
        "A000000333010102",
        "A000000632010105",
    ]
    assert found.candidates[1].kind == KIND_EPURSE


def test_list_selection_follows_next_occurrences_and_skips_blocked_ones() -> None:
    config = TerminalConfig(supported_aids=(SupportedAid(h("A0000003330101")),))
    reader = scripted(
        [
            (SELECT_PPSE, "6A82"),
            ("00A4040007A000000333010100", fci("A000000333010101") + "9000"),
            ("00A4040207A000000333010100", fci("A000000333010102") + "6283"),
            ("00A4040207A000000333010100", fci("A000000333010103") + "9000"),
            ("00A4040207A000000333010100", "6A82"),
        ]
    )
    found = drive(discover(config, CONTACTLESS), reader)
    assert [c.aid.hex()[-2:] for c in found.candidates] == ["01", "03"]


def _cand(aid: str, api: int | None) -> Candidate:
    return Candidate(h(aid), SupportedAid(h(aid)), priority_indicator=api, source=SOURCE_PSE)


def test_confirmation_required_apps_are_skipped_without_a_way_to_confirm() -> None:
    cands = order([_cand("A000000333010101", 0x81), _cand("A000000333010102", 0x02)])
    config = TerminalConfig()
    assert [c.aid.hex()[-2:] for c in eligible(cands, config, CONTACT)] == ["02"]
    # contactless ignores b8
    assert len(eligible(cands, config, CONTACTLESS)) == 2
    confirming = TerminalConfig(cardholder_confirmation=True)
    asked: list[bytes] = []

    def confirm(c: Candidate) -> bool:
        asked.append(c.aid)
        return True

    assert len(eligible(cands, confirming, CONTACT, confirm)) == 2
    assert asked == [h("A000000333010101")]
    assert [c.aid.hex()[-2:] for c in eligible(cands, confirming, CONTACT, lambda c: False)] == [
        "02"
    ]


def test_final_selection_drops_a_blocked_application_and_takes_the_next() -> None:
    cands = [_cand("A000000333010101", 1), _cand("A000000333010102", 2)]
    reader = scripted(
        [
            ("00A4040008A00000033301010100", "6A81"),
            ("00A4040008A00000033301010200", fci("A000000333010102") + "9000"),
        ]
    )
    chosen, app_fci = drive(final_selection(cands, TerminalConfig()), reader)
    assert chosen.aid == h("A000000333010102")
    assert app_fci.df_name == h("A000000333010102")


def test_final_selection_with_nothing_selectable_raises_no_application() -> None:
    reader = scripted([("00A4040008A00000033301010100", "6A82")])
    with pytest.raises(NoApplication):
        drive(final_selection([_cand("A000000333010101", 1)], TerminalConfig()), reader)


@pytest.mark.parametrize(
    "bad",
    [
        "6F14840E325041592E5359532E4444463031",  # truncated
        "6F05A503880141",  # SFI 0x41 out of range
        "7005840101",  # not an FCI
        "6F12A510BF0C0D610B4F03A00000500461626364",  # AID of 3 bytes
    ],
)
def test_hostile_directory_fci_raises_a_typed_error(bad: str) -> None:
    with pytest.raises(MalformedResponse):
        DirectoryFci.parse(h(bad))


def test_ep_aid_in_default_list() -> None:
    assert any(s.aid == AID_TUNION_EP for s in TerminalConfig().supported_aids)


def test_pse_with_a_nested_ddf_is_followed() -> None:
    ddf = "A000000333DDF1"
    record1 = build(0x70, [build(0x61, [build(0x9D, h(ddf))])]).encode().hex()
    ddf_fci = build(0x6F, [build(0x84, h(ddf)), build(0xA5, [build(0x88, b"\x02")])]).encode().hex()
    entry = build(0x70, [build(0x61, [build(0x4F, h("A000000333010101")), build(0x87, b"\x01")])])
    reader = scripted(
        [
            (SELECT_PSE, "6F15840E315041592E5359532E4444463031A5038801019000"),
            ("00B2010C00", record1 + "9000"),
            ("00A4040007" + ddf + "00", ddf_fci + "9000"),
            ("00B2011400", entry.encode().hex() + "9000"),
            ("00B2021400", "6A83"),
            ("00B2020C00", "6A83"),
        ]
    )
    found = drive(discover(TerminalConfig(), CONTACT), reader)
    assert found.source == SOURCE_PSE
    assert [c.aid.hex().upper() for c in found.candidates] == ["A000000333010101"]
