"""Online load end to end, card reads, and malformed responses from a replayed card."""

from dataclasses import replace

import pytest

from gateway.hsm import LocalLoadHost
from terminal.apdu.errors import MacMismatch, MalformedResponse, PinBlocked, TlvError, WrongPin
from terminal.epurse import flows
from terminal.epurse.commands import TxnType
from terminal.epurse.host import LoadDeclined
from terminal.epurse.model import LoadAuthorization
from terminal.readers import ReplayReader, parse_trace
from terminal.roles.session import TerminalSession

KIOSK = bytes.fromhex("310000000090")


def test_load_end_to_end(session: TerminalSession, card, load_host: LocalLoadHost, clock) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    result = session.run(flows.load(info, KIOSK, 2_000, session.now(), load_host, pin="123456"))
    assert (result.request.balance_before, result.balance_after, card.balance) == (
        10_000,
        12_000,
        12_000,
    )
    assert result.request.online_atc == 0 and card.state.online_atc == 1
    assert card.state.offline_atc == 0
    assert load_host.confirmed and load_host.confirmed[0][2] == result.tac
    entry = session.run(flows.read_log())[0]
    assert (entry.txn_type, entry.amount, entry.terminal_id, entry.when) == (
        TxnType.EP_LOAD,
        2_000,
        KIOSK,
        clock.now,
    )


def test_load_with_forged_mac2_is_refused(session: TerminalSession, card, hsm) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    request = session.run(flows.prepare_load(info, KIOSK, 500, session.now()))
    auth = hsm.load_mac2(request)
    with pytest.raises(MacMismatch):
        session.run(flows.complete_load(request, LoadAuthorization(bytes(4), auth.when)))
    assert card.balance == 10_000 and card.state.online_atc == 0


def test_host_refuses_forged_mac1(session: TerminalSession, hsm) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    request = session.run(flows.prepare_load(info, KIOSK, 500, session.now()))
    with pytest.raises(LoadDeclined, match="MAC1"):
        hsm.load_mac2(replace(request, amount=50_000))
    with pytest.raises(LoadDeclined, match="unknown issuer"):
        hsm.load_mac2(replace(request, issuer_id=bytes(8)))


def test_load_above_purse_ceiling_is_refused(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    from terminal.apdu.errors import ConditionsNotSatisfied

    info = session.run(flows.select())
    with pytest.raises(ConditionsNotSatisfied):
        session.run(flows.prepare_load(info, KIOSK, card.state.max_balance, session.now()))


def test_wrong_pin_counts_down_then_blocks(session: TerminalSession) -> None:
    info = session.run(flows.select())
    tries = []
    for _ in range(2):
        with pytest.raises(WrongPin) as exc:
            session.run(flows.prepare_load(info, KIOSK, 100, session.now(), pin="000000"))
        tries.append(exc.value.tries_left)
    assert tries == [2, 1]
    with pytest.raises(PinBlocked):
        session.run(flows.prepare_load(info, KIOSK, 100, session.now(), pin="000000"))
    with pytest.raises(PinBlocked):
        session.run(flows.prepare_load(info, KIOSK, 100, session.now(), pin="123456"))


def test_read_card_snapshot(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    snap = session.run(flows.read_card())
    assert snap.balance == 10_000 and snap.log == []
    assert snap.info.serial == card.serial and snap.info.issuer_id == card.issuer_id
    assert snap.info.card_number == card.public_info[10:20].hex().upper()[1:]
    assert snap.management is not None and snap.management.interoperable


def test_select_by_fid_falls_back_to_read_binary(session: TerminalSession, card) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select(fid=0x1001))
    assert info.serial == card.serial


def replay_session(lines: str) -> TerminalSession:
    reader = ReplayReader(parse_trace(lines))
    reader.connect()
    return TerminalSession(reader)


@pytest.mark.parametrize(
    ("trace", "error", "match"),
    [
        (
            "00A4040008A00000063201010500 : 6F03840100 9000\n00B095001E : 00119000",
            MalformedResponse,
            "2 bytes, too short for the issuer id and serial",
        ),
        ("00A4040008A00000063201010500 : 6F05A503 9F0C05 9000", TlvError, "claims 5 bytes"),
    ],
)
def test_malformed_card_answers_are_typed_errors(trace: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        replay_session(trace).run(flows.select())


def test_bad_balance_length_is_malformed() -> None:
    s = replay_session("805C000204 : 00019000")
    with pytest.raises(MalformedResponse, match="GET BALANCE"):
        s.run(flows.read_balance())


def test_bad_bcd_date_in_public_info_is_malformed() -> None:
    public = "02902900FFFFFFFF0201" + "31000290000000000001" + "20249999" + "20341231" + "0000"
    s = replay_session(f"00A4040008A00000063201010500 : 9000\n00B095001E : {public}9000")
    with pytest.raises(MalformedResponse, match="0x15"):
        s.run(flows.select())
