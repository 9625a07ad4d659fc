"""61xx GET RESPONSE and 6Cxx re-issue are handled once, in the channel."""

import pytest

from terminal.apdu.channel import Channel
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import InsufficientBalance, MalformedResponse

H = bytes.fromhex


class Script:
    """A transport answering from a list of (expected command hex, response hex)."""

    def __init__(self, *pairs: tuple[str, str]):
        self.pairs = list(pairs)
        self.sent: list[str] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu.hex().upper())
        expected, response = self.pairs.pop(0)
        assert apdu.hex().upper() == expected
        return H(response)


def test_get_response_chain_concatenates() -> None:
    t = Script(
        ("8070000024" + "00" * 36, "6108"),
        ("00C0000008", "00000001123456786104"),
        ("00C0000004", "AABBCCDD9000"),
    )
    r = Channel(t).send(CommandAPDU(0x80, 0x70, 0, 0, bytes(0x24)))
    assert t.sent[1:] == ["00C0000008", "00C0000004"]
    assert r.data == H("0000000112345678AABBCCDD") and r.sw == 0x9000


def test_6c_reissues_with_exact_le() -> None:
    t = Script(("00B0950000", "6C1E"), ("00B095001E", "11" * 30 + "9000"))
    r = Channel(t).exchange(CommandAPDU(0x00, 0xB0, 0x95, 0x00, le=256))
    assert len(r.data) == 30


def test_6c_then_61_both_followed() -> None:
    t = Script(("00B2011400", "6C17"), ("00B2011417", "6117"), ("00C0000017", "22" * 23 + "9000"))
    r = Channel(t).exchange(CommandAPDU(0x00, 0xB2, 0x01, 0x14, le=256))
    assert r.data == b"\x22" * 23


def test_error_sw_after_get_response_is_raised_by_exchange() -> None:
    t = Script(("805C000204", "6104"), ("00C0000004", "9401"))
    with pytest.raises(InsufficientBalance):
        Channel(t).exchange(CommandAPDU(0x80, 0x5C, 0x00, 0x02, le=4))


def test_endless_6c_is_stopped() -> None:
    class Loop:
        def transmit(self, apdu: bytes) -> bytes:
            return H("6C10")

    with pytest.raises(MalformedResponse, match="6Cxx"):
        Channel(Loop()).send(CommandAPDU(0x00, 0xB0, 0x95, 0x00, le=4))


def test_endless_61_is_stopped() -> None:
    class Loop:
        def transmit(self, apdu: bytes) -> bytes:
            return H("01" * 10 + "6110")

    with pytest.raises(MalformedResponse, match="GET RESPONSE"):
        Channel(Loop()).send(CommandAPDU(0x00, 0xB0, 0x95, 0x00, le=4))


def test_short_response_is_malformed_with_command() -> None:
    class One:
        def transmit(self, apdu: bytes) -> bytes:
            return b"\x90"

    cmd = CommandAPDU(0x80, 0x5C, 0x00, 0x02, le=4)
    with pytest.raises(MalformedResponse) as info:
        Channel(One()).send(cmd)
    assert info.value.command == cmd
