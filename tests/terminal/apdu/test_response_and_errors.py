"""Response APDUs and the status-word -> typed-exception map."""

import pytest

from terminal.apdu import errors as e
from terminal.apdu.channel import check
from terminal.apdu.command import CommandAPDU
from terminal.apdu.response import ResponseAPDU

CMD = CommandAPDU(0x80, 0x50, 0x01, 0x02, bytes(11), le=15)


def test_response_decode() -> None:
    r = ResponseAPDU.decode(bytes.fromhex("000013889000"))
    assert (r.data, r.sw, r.ok) == (bytes.fromhex("00001388"), 0x9000, True)
    assert r.encode().hex() == "000013889000"


@pytest.mark.parametrize("raw", [b"", b"\x90"])
def test_response_without_sw_is_malformed(raw: bytes) -> None:
    with pytest.raises(e.MalformedResponse) as info:
        ResponseAPDU.decode(raw)
    assert info.value.raw == raw


@pytest.mark.parametrize(
    ("sw", "cls"),
    [
        (0x9401, e.InsufficientBalance),
        (0x9302, e.MacMismatch),
        (0x9303, e.ApplicationLocked),
        (0x9403, e.KeyNotFound),
        (0x9406, e.MacUnavailable),
        (0x6983, e.PinBlocked),
        (0x6A82, e.FileNotFound),
        (0x6A83, e.RecordNotFound),
        (0x6985, e.ConditionsNotSatisfied),
        (0x6982, e.SecurityStatusNotSatisfied),
        (0x6283, e.ApplicationBlocked),
        (0x6A81, e.FunctionNotSupported),
        (0x6901, e.StateMismatch),
        (0x6974, e.CappCacheFailed),
        (0x6700, e.WrongLength),
        (0x6A80, e.WrongData),
        (0x6A86, e.WrongP1P2),
        (0x6D00, e.InsNotSupported),
        (0x6E00, e.ClaNotSupported),
        (0x6F00, e.UnknownStatus),
    ],
)
def test_every_sw_maps_to_its_exception(sw: int, cls: type) -> None:
    with pytest.raises(cls) as info:
        check(ResponseAPDU.from_sw(sw), CMD)
    exc = info.value
    assert exc.sw == sw
    assert exc.command is CMD
    assert f"{sw:04X}" in str(exc)
    assert "80500102" in str(exc)


@pytest.mark.parametrize("tries", [0, 1, 2, 15])
def test_wrong_pin_carries_tries_left(tries: int) -> None:
    exc = e.error_for(0x63C0 | tries, CMD)
    assert isinstance(exc, e.WrongPin)
    assert exc.tries_left == tries


def test_9000_passes() -> None:
    r = ResponseAPDU.from_sw(0x9000, b"\x01")
    assert check(r) is r
