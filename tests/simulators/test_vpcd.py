"""The vpcd bridge's wire protocol, against a stand-in vpcd server.

The real vpcd runs inside pcscd and is exercised by the PC/SC tests; here a small TCP
server plays vpcd so the test can send exact control codes and see exact bytes.
"""

from __future__ import annotations

import socket
import struct
import threading

from simulators.profiles import demo_card
from simulators.vpcd import GET_ATR, POWER_ON, VpcdBridge, port_for


class FakeVpcd:
    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.accepted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conn = conn
            self.accepted.set()

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(struct.pack(">H", len(payload)) + payload)

    def recv(self) -> bytes:
        assert self.conn is not None
        (n,) = struct.unpack(">H", self._exact(2))
        return self._exact(n)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))  # type: ignore[union-attr]
            assert chunk, "bridge closed the connection"
            buf += chunk
        return buf

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


def test_reader_ports() -> None:
    assert port_for(0) == 35963 and port_for(1) == 35964


def test_atr_power_and_apdus_over_the_length_framing() -> None:
    vpcd = FakeVpcd()
    card = demo_card(31, balance=1_234)
    bridge = VpcdBridge(card, port=vpcd.port)
    bridge.plug()
    try:
        assert vpcd.accepted.wait(2.0)
        vpcd.send(bytes([GET_ATR]))
        assert vpcd.recv() == card.atr
        vpcd.send(bytes([POWER_ON]))  # no answer expected; the card resets
        vpcd.send(bytes.fromhex("00A4040008A000000632010105"))
        assert vpcd.recv()[-2:] == b"\x90\x00"
        vpcd.send(bytes.fromhex("805C000204"))
        assert vpcd.recv() == (1_234).to_bytes(4, "big") + b"\x90\x00"
        assert bridge.apdus == 2
        own = bridge._sock  # the bridge's end must not wait for Nagle
        assert own is not None and own.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        bridge.unplug()
        vpcd.close()


def test_stay_plugged_reconnects_when_vpcd_drops_the_card() -> None:
    vpcd = FakeVpcd()
    bridge = VpcdBridge(demo_card(32), port=vpcd.port, stay_plugged=True)
    bridge.plug()
    try:
        assert vpcd.accepted.wait(2.0)
        first = vpcd.conn
        vpcd.accepted.clear()
        assert first is not None
        first.close()  # pcscd restarting drops the connection
        assert vpcd.accepted.wait(3.0)
        assert vpcd.conn is not first
        vpcd.send(bytes([GET_ATR]))
        assert vpcd.recv() == bridge.card.atr
    finally:
        bridge.unplug()
        vpcd.close()


def test_unplug_closes_the_connection() -> None:
    vpcd = FakeVpcd()
    bridge = VpcdBridge(demo_card(33), port=vpcd.port)
    bridge.plug()
    assert vpcd.accepted.wait(2.0)
    bridge.unplug()
    assert not bridge.plugged
    assert vpcd.conn is not None and vpcd.conn.recv(1) == b""
    vpcd.close()
