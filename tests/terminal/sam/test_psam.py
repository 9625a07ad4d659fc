"""PSAM driver against the software PSAM: start-up, MAC1, MAC2, key versions."""

import pytest

from simulators.profiles import demo_psam
from terminal.apdu.errors import ConditionsNotSatisfied, KeyNotFound, MacMismatch
from terminal.apdu.flow import sam as sam_step
from terminal.epurse import flows
from terminal.readers.sim import SimReader
from terminal.roles.session import TerminalSession
from terminal.sam import commands as samc


def test_startup_reads_terminal_number_and_key_index(sam_reader) -> None:  # type: ignore[no-untyped-def]
    s = TerminalSession(SimReader(), sam_reader)
    info = s.start()
    assert info.terminal_id == bytes.fromhex("310000000001")
    assert info.key_index == 1 and info.terminal_id_hex == "310000000001"


def test_startup_by_aid(sam_reader) -> None:  # type: ignore[no-untyped-def]
    from terminal.apdu.channel import Channel
    from terminal.apdu.flow import run
    from terminal.sam.psam import startup

    info = run(startup(samc.AID_MOT_CPSAM), {"sam": Channel(sam_reader)})
    assert info.key_index == 1


def test_mac2_check_needs_a_session(session: TerminalSession) -> None:
    with pytest.raises(ConditionsNotSatisfied):
        session.run(iter_one(samc.credit_sam_for_purchase(bytes(4))))


def iter_one(command):  # type: ignore[no-untyped-def]
    yield sam_step(command)


def test_wrong_mac2_is_mac_mismatch(session: TerminalSession) -> None:
    info = session.run(flows.select())
    session.run(flows.prepare_purchase(info, session.sam, 10, session.now()))
    with pytest.raises(MacMismatch):
        session.run(iter_one(samc.credit_sam_for_purchase(bytes(4))))


def test_unknown_key_version_is_key_not_found(card_reader, clock) -> None:  # type: ignore[no-untyped-def]
    psam = demo_psam("310000000002")
    psam.state.masters = {"7": psam.state.masters["1"]}
    s = TerminalSession(card_reader, SimReader(psam), clock=clock)
    s.start()
    card_reader.connect()
    info = s.run(flows.select())
    with pytest.raises(KeyNotFound):
        s.run(flows.prepare_purchase(info, s.sam, 10, s.now()))


def test_tsn_persists(tmp_path, card_reader, clock) -> None:  # type: ignore[no-untyped-def]
    from simulators.psam import SoftPsam

    path = tmp_path / "psam.json"
    demo_psam().save(path)
    s = TerminalSession(card_reader, SimReader(SoftPsam.load(path)), clock=clock)
    s.start()
    card_reader.connect()
    info = s.run(flows.select())
    first = s.run(flows.prepare_purchase(info, s.sam, 10, s.now())).terminal_seq
    assert SoftPsam.load(path).state.terminal_seq == first + 1
