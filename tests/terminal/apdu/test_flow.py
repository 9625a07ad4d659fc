"""The sans-I/O flow driver: steps, thrown errors, replay."""

import pytest

from terminal.apdu.channel import Channel
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import CardRemoved, InsufficientBalance
from terminal.apdu.flow import Flow, card, replay, run, sam
from terminal.apdu.response import ResponseAPDU

PING = CommandAPDU(0x80, 0x01, 0, 0, le=1)


def two_step() -> Flow[tuple[bytes, bytes]]:
    a = yield card(PING)
    b = yield sam(PING)
    return a.data, b.data


def test_run_routes_steps_to_targets() -> None:
    channels = {
        "card": Channel(lambda _: b"\x01\x90\x00"),
        "sam": Channel(lambda _: b"\x02\x90\x00"),
    }
    assert run(two_step(), channels) == (b"\x01", b"\x02")


def test_card_error_is_thrown_into_the_flow() -> None:
    def flow() -> Flow[str]:
        try:
            yield card(PING)
        except InsufficientBalance as exc:
            return f"caught {exc.sw:04X}"
        return "no error"

    assert run(flow(), {"card": Channel(lambda _: b"\x94\x01")}) == "caught 9401"


def test_unchecked_step_receives_raw_sw() -> None:
    def flow() -> Flow[int]:
        r = yield card(PING, check=False)
        return r.sw

    assert run(flow(), {"card": Channel(lambda _: b"\x6a\x82")}) == 0x6A82


def test_transport_error_propagates_when_not_handled() -> None:
    def pulled(_: bytes) -> bytes:
        raise CardRemoved("gone")

    with pytest.raises(CardRemoved):
        run(two_step(), {"card": Channel(pulled), "sam": Channel(pulled)})


def test_replay_from_precomputed_responses() -> None:
    responses = [ResponseAPDU(b"\x0a", 0x90, 0), ResponseAPDU(b"\x0b", 0x90, 0)]
    assert replay(two_step(), responses) == (b"\x0a", b"\x0b")
    with pytest.raises(ValueError, match="ran out"):
        replay(two_step(), responses[:1])
