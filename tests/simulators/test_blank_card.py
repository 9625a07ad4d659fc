"""The blank software card's card OS: security, refusals, life cycle, erase, persistence."""

from __future__ import annotations

import json
from datetime import datetime

from simulators.blank_card import KIND, SoftBlankCard
from simulators.epurse_card import SoftEPurseCard
from simulators.files import load_device
from terminal.apdu import iso, tlv
from terminal.apdu.command import CommandAPDU
from terminal.apdu.response import ResponseAPDU
from terminal.apdu.status import SW
from terminal.cos import commands as cc
from terminal.cos.layouts import BinaryHeader, KeyType, LifeCycle, RecordHeader
from terminal.epurse import commands as c
from terminal.epurse import perso
from terminal.epurse.perso import KeyLoadRequest
from terminal.layout import build
from tests.issuance_kit import SHANGHAI, desk_session, new_blank, perso_hsm, plan

NOW = datetime(2026, 11, 28, 8, 30)


def clock() -> datetime:
    return NOW


HSM = perso_hsm(clock)


def send(card: SoftBlankCard, command: CommandAPDU) -> ResponseAPDU:
    return ResponseAPDU.decode(card.process(command.encode()))


def authenticate(card: SoftBlankCard) -> None:
    challenge = send(card, iso.get_challenge(8)).data
    r = send(card, cc.external_authenticate(HSM.transport_cryptogram(card.chip_id, challenge)))
    assert r.sw == SW.OK


def into_adf_with_key_file(card: SoftBlankCard) -> None:
    authenticate(card)
    assert send(card, cc.create_file(c.FID_EP, b"\x38" + c.AID_TUNION_EP)).ok
    assert send(card, iso.select_fid(c.FID_EP)).ok
    assert send(card, cc.create_file(cc.FID_KEY_FILE, b"\x3f")).ok


def protected_key(card: SoftBlankCard, key_type: KeyType = KeyType.PURCHASE) -> bytes:
    challenge = send(card, iso.get_challenge(4)).data
    request = KeyLoadRequest(SHANGHAI, plan().serial, card.chip_id, key_type, 1, challenge)
    return HSM.protected_key(request)


def test_a_blank_card_reports_its_life_cycle_and_chip_and_refuses_ep_commands() -> None:
    card = new_blank(7)
    fcp = tlv.parse_one(send(card, cc.select_mf()).data, 0x62)
    assert fcp.find(0x8A).value == bytes((LifeCycle.CREATION,))  # type: ignore[union-attr]
    assert fcp.find(0x85).value == card.chip_id  # type: ignore[union-attr]
    assert send(card, iso.select_aid(c.AID_TUNION_EP)).sw == SW.FILE_NOT_FOUND
    assert send(card, c.get_balance()).sw == SW.CONDITIONS


def test_creation_needs_the_transport_key_and_wrong_cryptograms_count_down() -> None:
    card = new_blank()
    create_df = cc.create_file(c.FID_EP, b"\x38" + c.AID_TUNION_EP)
    assert send(card, create_df).sw == SW.SECURITY_STATUS
    send(card, iso.get_challenge(8))
    assert send(card, cc.external_authenticate(bytes(8))).sw == 0x63CE
    assert card.state.auth_tries == 14
    assert send(card, cc.external_authenticate(bytes(8))).sw == SW.CONDITIONS  # no challenge
    authenticate(card)
    assert card.state.auth_tries == 15
    assert send(card, create_df).ok
    assert send(card, create_df).sw == SW.FILE_EXISTS
    assert card.life_cycle == LifeCycle.INITIALISATION


def test_keys_only_travel_protected_and_a_cryptogram_cannot_be_replayed() -> None:
    card = new_blank()
    into_adf_with_key_file(card)
    clear = b"\x3e\x01\x01\x00" + bytes(16)
    assert send(card, CommandAPDU(0x80, 0xD4, 0x01, 0x01, clear)).sw == SW.SECURITY_STATUS
    data = protected_key(card)
    tampered = data[:-5] + bytes((data[-5] ^ 1,)) + data[-4:]
    assert send(card, cc.write_key(1, tampered)).sw == SW.MAC_ERROR
    assert "purchase" not in card.state.keys
    data = protected_key(card)
    assert send(card, cc.write_key(1, data)).ok
    send(card, iso.get_challenge(4))  # a new challenge: the old MAC no longer fits
    assert send(card, cc.write_key(1, data)).sw == SW.MAC_ERROR
    assert send(card, cc.write_key(2, protected_key(card))).sw == SW.MAC_ERROR  # wrong P2


def test_only_the_jtt978_file_geometry_is_accepted() -> None:
    card = new_blank()
    into_adf_with_key_file(card)
    wrong_size = cc.create_file(c.SFI_PUBLIC_INFO, build(BinaryHeader, size=31))
    assert send(card, wrong_size).sw == SW.WRONG_DATA
    log = build(RecordHeader, file_type=0x2E, records=9, record_length=23)
    assert send(card, cc.create_file(c.SFI_TXN_LOG, log)).sw == SW.WRONG_DATA
    assert send(card, cc.create_file(0x0019, build(BinaryHeader, size=30))).sw == SW.WRONG_DATA


def test_activation_refuses_an_incomplete_card_and_erase_starts_over() -> None:
    card = new_blank()
    into_adf_with_key_file(card)
    assert send(card, cc.activate()).sw == SW.CONDITIONS
    assert not card.activated and card.life_cycle == LifeCycle.INITIALISATION
    assert send(card, iso.select_aid(c.AID_TUNION_EP)).sw == SW.SELECTED_FILE_INVALIDATED
    assert send(card, cc.erase_df()).sw == SW.CONDITIONS  # only from the MF
    send(card, cc.select_mf())
    assert send(card, cc.erase_df()).ok
    assert card.life_cycle == LifeCycle.CREATION
    assert (card.state.adf, card.state.files, card.state.keys) == ({}, {}, {})


def test_state_survives_a_restart_and_the_activated_file_is_an_epurse_card(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "blank.json"
    card = SoftBlankCard.manufacture(bytes(range(8)), bytes(16), path)
    assert json.loads(path.read_text())["kind"] == KIND
    again = load_device(path)
    assert isinstance(again, SoftBlankCard) and again.chip_id == bytes(range(8))

    from simulators.profiles import blank_card

    path = tmp_path / "card.json"
    card = blank_card(bytes(range(8)), path)
    s = desk_session(card, clock)
    s.run(perso.personalise(plan(), HSM, card.chip_id))
    assert json.loads(path.read_text())["kind"] == "epurse"
    loaded = load_device(path)
    assert isinstance(loaded, SoftEPurseCard)
    assert loaded.state == card.purse.state  # type: ignore[union-attr]


def test_after_activation_creation_commands_are_refused() -> None:
    card = new_blank()
    s = desk_session(card, clock)
    s.run(perso.personalise(plan(), HSM, card.chip_id))
    card.reset()
    assert send(card, iso.select_aid(c.AID_TUNION_EP)).ok
    assert send(card, cc.create_file(0x0019, build(BinaryHeader, size=30))).sw != SW.OK
    assert send(card, cc.erase_df()).sw != SW.OK
    assert send(card, cc.activate()).sw != SW.OK
    assert send(card, cc.select_mf()).data == b""  # no life-cycle FCP any more
