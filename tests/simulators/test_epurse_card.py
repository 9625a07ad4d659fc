"""The software card: persistence, PROVE, application block via PSAM MAC, bad commands."""

from pathlib import Path

import pytest

from gateway.hsm import HostSecurityModule
from simulators.epurse_card import PROVE_SAME, SoftEPurseCard
from simulators.files import load_device
from simulators.profiles import CardProfile, demo_keyset, issue_card
from terminal.apdu import iso
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import (
    ApplicationBlocked,
    ApplicationLocked,
    FunctionNotSupported,
    MacMismatch,
    MacUnavailable,
)
from terminal.apdu.flow import card as card_step
from terminal.apdu.flow import sam as sam_step
from terminal.epurse import commands as c
from terminal.epurse import flows
from terminal.epurse.layouts import ProveResponse
from terminal.layout import parse
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession
from terminal.sam import commands as samc
from tests.gateway_fixtures import demo_keysets


def test_state_survives_restart(tmp_path: Path, psam, clock) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "card.json"
    profile = CardProfile(card_number="03100029000000000042", balance=900)
    card = issue_card(profile, demo_keyset(profile.issuer_id), str(path))
    s = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    s.start()
    info = s.run(flows.select())
    s.run(flows.purchase(info, s.sam, 150, s.now()))
    reborn = load_device(path)
    assert isinstance(reborn, SoftEPurseCard)
    assert (reborn.balance, reborn.state.offline_atc, len(reborn.state.log)) == (750, 1, 1)
    assert reborn.serial == card.serial
    assert not list(tmp_path.glob("*.tmp"))


def test_prove_returns_mac_and_tac_of_last_debit(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    r = session.run(flows.purchase(info, session.sam, 120, session.now()))

    def prove(atc: int):  # type: ignore[no-untyped-def]
        resp = yield card_step(c.get_transaction_prove(c.TxnType.EP_PURCHASE, atc))
        return parse(ProveResponse, resp.data, "prove")

    proof = session.run(prove(r.pending.offline_atc + 1))
    assert (proof.mac, proof.tac) == (r.mac2, r.tac)
    with pytest.raises(MacUnavailable):
        session.run(prove(r.pending.offline_atc))
    card.state.prove_counter = PROVE_SAME
    assert session.run(prove(r.pending.offline_atc)).tac == r.tac


def block_flow(info, sam_info, *, permanent: bool = False, tamper: bool = False):  # type: ignore[no-untyped-def]
    """GET CHALLENGE on the card, MAC from the PSAM (DES INIT + CIPHER DATA), APPLICATION BLOCK."""
    challenge = (yield card_step(iso.get_challenge(4))).data
    yield sam_step(samc.init_for_descrypt(0x45, 1, info.serial + info.issuer_id))
    header = c.application_block_header(permanent=permanent)
    padded = header + b"\x80" + bytes(2)
    mac = (yield sam_step(samc.cipher_mac(challenge + bytes(4) + padded))).data
    if tamper:
        mac = bytes(b ^ 1 for b in mac)
    yield card_step(c.application_block(mac, permanent=permanent))


def test_application_block_with_psam_mac(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    session.run(block_flow(info, session.sam))
    assert card.state.blocked == "temporary"
    with pytest.raises(ApplicationBlocked):
        session.run(flows.select())
    with pytest.raises(FunctionNotSupported):
        session.run(flows.prepare_purchase(info, session.sam, 1, session.now()))


def test_permanent_block_locks_the_application(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    session.run(block_flow(info, session.sam, permanent=True))
    with pytest.raises(ApplicationLocked):
        session.run(flows.select())


def test_block_with_wrong_mac_is_refused(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    with pytest.raises(MacMismatch):
        session.run(block_flow(info, session.sam, tamper=True))
    assert card.state.blocked == ""


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("00", "6700"),
        ("80EE000000", "6D00"),
        ("805400000F" + "00" * 15, "6985"),
        ("8050010205" + "00" * 5, "6700"),
        ("00B2019400", "6A82"),
    ],
)
def test_bad_commands_get_status_words(card, apdu: str, sw: str) -> None:  # type: ignore[no-untyped-def]
    card.process(bytes.fromhex("00A4040008A000000632010105"))
    assert card.process(bytes.fromhex(apdu))[-2:].hex().upper() == sw


def test_commands_need_selection(card) -> None:  # type: ignore[no-untyped-def]
    assert card.process(CommandAPDU(0x80, 0x5C, 0, 2, le=4).encode()).hex() == "6985"


def test_credit_needs_the_mac2_of_the_latest_initialize_for_load(
    session: TerminalSession, card: SoftEPurseCard
) -> None:
    """A void challenge's INITIALIZE FOR LOAD (any terminal-id field) ends the earlier
    session: the MAC2 the host gave for it is refused, and the balance does not move."""
    hsm = HostSecurityModule(demo_keysets())
    session.card_reader.connect()
    info = session.run(flows.select())
    older = session.run(
        flows.prepare_load(info, bytes.fromhex("310000000090"), 1_000, session.now())
    )
    mac2 = hsm.load_mac2(older)
    fresh = session.run(flows.prepare_load(info, bytes.fromhex("9F3A00C4E1B2"), 37, session.now()))
    hsm.verify_load_mac1(fresh)  # the card took the challenge's terminal-id field
    assert fresh.online_atc == older.online_atc
    with pytest.raises(MacMismatch):
        session.run(flows.complete_load(older, mac2))
    assert card.balance == 10_000
