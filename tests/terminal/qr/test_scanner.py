"""Ride codes reach the validator's tap loop from a serial scanner (real pyserial on a pty)
and from a camera's PNG snapshots (zxing-cpp), are journaled, and a garbled frame is
refused with its reason and nothing journaled."""

from __future__ import annotations

import base64
import os
import threading
import tty
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from simulators.qr_app import RideCodeApp, qr_image
from terminal.cli.sim_devices import SoftwareDevices
from terminal.journal import Journal
from terminal.readers.scanner import FrameDecoder, ScanError
from terminal.roles.validator import TapResult
from terminal.runtime.assembly import assemble
from terminal.runtime.config import load_config
from terminal.runtime.service import Service
from terminal.text import FileError
from tests.terminal.qr.test_runtime import NOW, device


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """A pty pair in raw mode: the scanner emulator writes the master, the validator opens
    the slave by name."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def serve(path: Path, expected: int, present: callable) -> list[TapResult]:  # type: ignore[valid-type]
    """Run the device of ``path`` as a service, ``present`` codes, collect ``expected`` results."""
    terminal = assemble(load_config(path), SoftwareDevices())
    results: list[TapResult] = []
    service = Service(terminal, results.append, stop_after_taps=False)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        present()
        assert service.loop.wait_for_taps(expected, timeout=20), results
    finally:
        service.stop()
        thread.join(10)
    return results


def test_a_pty_scanner_and_a_png_both_pay_rides_and_a_garbled_frame_is_refused(
    tmp_path: Path, pty: tuple[int, str]
) -> None:
    master, port = pty
    path = device(
        tmp_path,
        f'[qr]\nroot_keys = "roots.txt"\nissuers = "issuers.txt"\nscanner = "{port}"\n'
        'scanner_baud = 115200\nimages = "camera"\n',
    )
    app = RideCodeApp()
    scanned, pictured = app.code(NOW, account=1), app.code(NOW, account=2)

    def present() -> None:
        os.write(master, base64.b64encode(scanned) + b"\r\n")
        os.write(master, b"%%not base64%%\r\n")
        qr_image(pictured, str(tmp_path / "snap.png"))  # written aside, then renamed in
        os.replace(tmp_path / "snap.png", tmp_path / "camera" / "snap.png")

    results = serve(path, 3, present)
    by_reason = {r.reason: r for r in results}
    assert [r.green for r in results].count(True) == 2, [r.line() for r in results]
    garbled = by_reason["garbled"]
    assert not garbled.green and "not base64" in garbled.message
    assert sorted(r.card_number or "" for r in results if r.green) == [
        "00000000000000000001",
        "00000000000000000002",
    ]
    journal = Journal(tmp_path / "j.db")
    try:
        rows = journal.qr_rows()
        assert sorted((r["user_account"], r["amount"]) for r in rows) == [
            ("00000000000000000001", 200),
            ("00000000000000000002", 200),
        ]
        assert {bytes.fromhex(r["code"]) for r in rows} == {scanned, pictured}
    finally:
        journal.close()
    assert not list((tmp_path / "camera").iterdir())  # each image is read once


def test_raw_length_framed_scanner_keeps_binary_bytes(tmp_path: Path, pty: tuple[int, str]) -> None:
    master, port = pty
    path = device(
        tmp_path,
        f'[qr]\nroot_keys = "roots.txt"\nissuers = "issuers.txt"\nscanner = "{port}"\n'
        'scanner_data = "raw"\nscanner_framing = "length"\n',
    )
    raw = RideCodeApp().code(NOW)
    frame = len(raw).to_bytes(2, "big") + raw

    def present() -> None:
        os.write(master, frame[:100])  # a scanner writes in pieces
        os.write(master, frame[100:])
        os.write(master, b"\xff\xff" + raw)  # a length no code has

    results = serve(path, 2, present)
    assert [(r.green, r.reason) for r in results] == [(True, None), (False, "garbled")], [
        r.line() for r in results
    ]


def test_frames_cut_short_overlong_and_empty_are_refused_with_reasons() -> None:
    line = FrameDecoder("base64", "line")
    assert line.feed(b"QUJD\n\r\n") == [b"ABC"]
    assert line.feed(b"QU") == [] and isinstance(line.expire()[0], ScanError)
    (long,) = line.feed(b"A" * 3000)
    assert isinstance(long, ScanError) and "longer than" in long.detail
    assert line.feed(b"AAAA\nQUJD\n") == [b"ABC"]  # the rest of the long line is dropped
    length = FrameDecoder("raw", "length")
    (zero,) = length.feed(b"\x00\x00abc")
    assert isinstance(zero, ScanError) and "frame length 0" in zero.detail


def test_raw_bytes_on_line_framing_are_refused_at_their_line(tmp_path: Path) -> None:
    path = device(
        tmp_path,
        '[qr]\nroot_keys = "roots.txt"\nissuers = "issuers.txt"\nscanner = "/dev/null"\n'
        'scanner_data = "raw"\n',
    )
    with pytest.raises(FileError, match=r"bus.toml:12: .*raw scanner data needs length framing"):
        load_config(path)


def test_the_png_image_keeps_binary_byte_mode(tmp_path: Path) -> None:
    from terminal.readers.images import decode_image

    raw = RideCodeApp().code(datetime(2026, 11, 28, 8, 0, 7))
    qr_image(raw, str(tmp_path / "c.png"))
    assert decode_image((tmp_path / "c.png").read_bytes()) == raw
    with pytest.raises(ScanError, match="not-an-image"):
        decode_image(b"\x89PNG not really")
