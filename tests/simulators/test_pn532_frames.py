"""PN532 host-interface frames (NXP UM0701): build, parse, checksums, ACK, extended frames."""

from __future__ import annotations

import pytest

from simulators.pn532 import ACK, FrameError, Pn532Emulator, build_frame, parse_frames


def test_normal_frame_layout() -> None:
    frame = build_frame(b"\xd4\x02")
    assert frame == bytes.fromhex("0000FF02FED4022A00")  # GetFirmwareVersion as sent by hosts


def test_extended_frame_round_trip() -> None:
    payload = b"\xd4\x00" + bytes(range(256)) * 2
    frame = build_frame(payload)
    assert frame[3:5] == b"\xff\xff" and frame[5] << 8 | frame[6] == len(payload)
    assert parse_frames(bytearray(frame)) == [payload]


def test_parse_skips_preamble_and_wakeup_and_sees_acks() -> None:
    buffer = bytearray(b"\x55\x55\x00" * 3 + ACK + build_frame(b"\xd4\x14\x01") + b"\x00\x00")
    assert parse_frames(buffer) == [None, b"\xd4\x14\x01"]


def test_incomplete_frame_waits_for_more_bytes() -> None:
    frame = build_frame(b"\xd4\x4a\x01\x00")
    buffer = bytearray(frame[:6])
    assert parse_frames(buffer) == []
    buffer += frame[6:]
    assert parse_frames(buffer) == [b"\xd4\x4a\x01\x00"]


@pytest.mark.parametrize("index", [4, -2])  # LCS, DCS
def test_checksum_errors_are_rejected(index: int) -> None:
    frame = bytearray(build_frame(b"\xd4\x02"))
    frame[index] ^= 0x01
    with pytest.raises(FrameError):
        parse_frames(frame)


def test_unknown_command_and_wrong_tfi_get_the_error_frame() -> None:
    emulator = Pn532Emulator()
    try:
        assert emulator.answer(b"\xd4\xee") == bytes.fromhex("0000FF01FF7F8100")
        assert emulator.answer(b"\xd5\x02") == bytes.fromhex("0000FF01FF7F8100")
        assert emulator.answer(b"\xd4\x4a\x01\x00") == build_frame(b"\xd5\x4b\x00")  # no card
    finally:
        emulator.stop()
