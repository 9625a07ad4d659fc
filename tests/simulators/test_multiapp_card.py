"""Software multi-application cards: directories, routing, persistence, SSSE PIN."""

from __future__ import annotations

import json
from pathlib import Path

from simulators.emv_profiles import SsseProfile, emv_card, resident_card, ssse_card
from simulators.files import load_device
from simulators.multiapp_card import SoftIcc
from terminal.apdu import tlv
from terminal.emv.fci import DirectoryFci
from terminal.emv.selection import CONTACT, CONTACTLESS

h = bytes.fromhex
SELECT_PPSE = h("00A404000E325041592E5359532E444446303100")
SELECT_PSE = h("00A404000E315041592E5359532E444446303100")
SELECT_DEBIT = h("00A4040008A00000033301010100")
SELECT_EP = h("00A4040008A00000063201010500")


def test_ppse_lists_debit_and_ep_on_the_resident_card_and_pse_is_absent() -> None:
    card = resident_card(1, interface=CONTACTLESS)
    r = card.process(SELECT_PPSE)
    assert r[-2:] == h("9000")
    entries = DirectoryFci.parse(r[:-2]).entries
    assert [e.aid.hex().upper() for e in entries] == ["A000000333010101", "A000000632010105"]
    assert card.process(SELECT_PSE) == h("6A82")


def test_pse_records_on_contact() -> None:
    card = ssse_card(1, interface=CONTACT)
    r = card.process(SELECT_PSE)
    assert DirectoryFci.parse(r[:-2]).sfi == 1
    rec = card.process(h("00B2010C00"))
    assert tlv.find(tlv.parse(rec[:-2]), 0x4F).value == h("A000000333010101")  # type: ignore[union-attr]
    assert card.process(h("00B2020C00")) == h("6A83")  # the SSSE is not listed
    assert card.process(SELECT_PPSE) == h("6A82")


def test_commands_go_to_the_selected_application_only() -> None:
    card = resident_card(1, ep_balance=4_200)
    assert card.process(h("805C000204")) == h("6985")  # nothing selected
    assert card.process(SELECT_EP)[-2:] == h("9000")
    assert card.process(h("805C000204")) == (4_200).to_bytes(4, "big") + h("9000")
    assert card.process(SELECT_DEBIT)[-2:] == h("9000")
    assert card.process(h("805C000204"))[-2:] != h("9000")  # the EMV app has no GET BALANCE
    assert card.process(h("80CA9F7900"))[-2:] == h("9000")


def test_selecting_another_application_drops_the_previous_session() -> None:
    card = resident_card(1)
    card.process(SELECT_EP)
    card.process(SELECT_DEBIT)
    ep = card.app("epurse").card
    assert ep._selected is False


def test_cards_survive_a_restart_through_their_file(tmp_path: Path) -> None:
    path = tmp_path / "resident.json"
    card = resident_card(1, ec_balance=3_000, path=str(path))
    assert json.loads(path.read_text())["kind"] == "resident"
    card.app("emv").state.ec_balance = 2_500
    card.process(SELECT_DEBIT)  # any command saves a changed state
    again = load_device(path)
    assert isinstance(again, SoftIcc)
    assert again.app("emv").ec_balance == 2_500
    assert again.app("epurse").card.balance == card.app("epurse").card.balance


def test_every_card_kind_loads(tmp_path: Path) -> None:
    for maker, kind in ((emv_card, "emv"), (resident_card, "resident"), (ssse_card, "ssse")):
        path = tmp_path / f"{kind}.json"
        maker(path=str(path))
        assert load_device(path).kind == kind


def test_ssse_holder_file_needs_the_pin_when_personalised_so() -> None:
    card = ssse_card(1, ssse=SsseProfile(holder_pin_required=True, pin="654321"))
    assert card.process(h("00A404000F7378312E73682EC9E7BBE1B1A3D5CF"))[-2:] == h("9000")
    assert card.process(h("00A4020002EF06")) == h("9000")
    assert card.process(h("00B2010400")) == h("6982")
    assert card.process(h("0020000003123456")) == h("63C2")
    assert card.process(h("0020000003654321")) == h("9000")
    assert card.process(h("00B2010400"))[:2] == h("0812")
