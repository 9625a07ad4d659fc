"""``ykt readers``, ``ykt sim plug`` and a PC/SC program we did not write (scriptor)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import demo_card
from tests.cli_kit import YKT, ykt
from tests.stacks import CARD_READER, SAM_READER, pcscd, plug, wait_reader_state  # noqa: F401


@pytest.fixture
def plugged_process(pcscd, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:  # noqa: F811
    """``ykt sim plug --reader 0 --card FILE`` running as its own process."""
    card_file = tmp_path / "card.json"
    proc = subprocess.Popen(
        [*YKT, "sim", "plug", "--reader", "0", "--card", str(card_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "plugged fresh demo T-Union card" in proc.stdout.readline()
        assert wait_reader_state(CARD_READER, present=True)
        yield proc, card_file
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        wait_reader_state(CARD_READER, present=False)


def test_sim_plug_card_is_read_by_ykt_over_pcsc(plugged_process) -> None:
    _, card_file = plugged_process
    r = ykt("read", "--reader", f"pcsc:{CARD_READER}", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["balance_fen"] == SoftEPurseCard.load(card_file).balance == 5_000


def test_sim_plug_unplug_and_plug_again_on_stdin(plugged_process) -> None:
    proc, _ = plugged_process
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("unplug\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("type")  # the banner's second line
    assert proc.stdout.readline().strip() == "unplugged"
    assert wait_reader_state(CARD_READER, present=False)
    proc.stdin.write("plug\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "plugged"
    assert wait_reader_state(CARD_READER, present=True)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "card pulled" in out


def test_scriptor_selects_and_reads_the_balance(plug, tmp_path: Path) -> None:  # noqa: F811
    card = demo_card(41, balance=8_888)
    plug(card, reader=0)
    assert shutil.which("scriptor"), "pcsc-tools (scripts/system-packages.txt) provides scriptor"
    script = tmp_path / "balance.apdu"
    script.write_text("00 A4 04 00 08 A0 00 00 06 32 01 01 05\n80 5C 00 02 04\n")
    r = subprocess.run(
        ["scriptor", "-r", CARD_READER, str(script)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    answers = [line for line in r.stdout.splitlines() if line.startswith("< ")]
    assert len(answers) == 2
    assert "90 00" in r.stdout.split("80 5C 00 02 04")[0]  # SELECT succeeded
    assert answers[1].startswith("< 00 00 22 B8 90 00")  # 8,888 fen = 0x22B8


def test_readers_lists_pcsc_readers_with_their_card(plug) -> None:  # noqa: F811
    plug(demo_card(42), reader=1)
    r = ykt("readers", "--json")
    assert r.returncode == 0, r.stderr
    found = {x["spec"]: x for x in json.loads(r.stdout)["readers"]}
    assert found[f"pcsc:{SAM_READER}"]["detail"] == "card present"
    assert found[f"pcsc:{CARD_READER}"]["detail"] == "empty"
    assert found[f"pcsc:{CARD_READER}"]["kind"] == "pcsc"
    assert {"sim", "replay:FILE"} <= set(found)


def test_read_over_nfc_udp_from_the_command_line() -> None:
    from simulators.iso_dep_card import UdpCardEmulator
    from tests.terminal.readers.test_nfc import free_udp_port

    card = demo_card(43, balance=4_242)
    with UdpCardEmulator(card, port=free_udp_port(), fwi=10) as emulator:
        r = ykt("read", "--reader", f"nfc:{emulator.path}", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["balance_fen"] == 4_242


def test_missing_nfc_usb_reader_is_a_clear_error() -> None:
    r = ykt("read", "--reader", "nfc:usb", check=False)
    assert r.returncode == 1
    assert "no NFC device" in r.stderr


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("nfc:tty:/nonexistent:pn532", "could not open port /nonexistent"),
        ("nfc:tty:/dev/null:pn532", "could not configure port"),
    ],
)
def test_unusable_nfc_device_is_reader_unavailable_not_a_traceback(spec: str, reason: str) -> None:
    _refused_as_unavailable(spec, reason)


def _refused_as_unavailable(spec: str, reason: str) -> None:
    r = ykt("--lang", "en", "read", "--reader", spec, check=False)
    assert (r.returncode, "Traceback" in r.stderr) == (1, False), r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ykt read: the reader is not available: {spec}: "), line
    assert reason in line.lower()


def _named_port() -> tuple[int, str] | None:
    """A port this machine's services database names, as nfcpy's UDP driver reads it back
    (getnameinfo), whatever the database holds; None when it names none."""
    for port in range(1, 1024):
        service = socket.getnameinfo(("127.0.0.1", port), socket.NI_NUMERICHOST)[1]
        if not service.isdigit():
            return port, service
    return None


def test_a_udp_port_with_a_service_name_is_reader_unavailable_not_a_traceback() -> None:
    """nfcpy's UDP driver cannot use a port the machine gives a service name: the reader is
    unavailable, with the name and what to do, on whatever machine the test runs."""
    named = _named_port()
    if named is None:  # no services database: nfcpy reads every port back as a number
        pytest.skip("this machine names no port, so nfcpy's UDP driver refuses none")
    port, service = named
    spec = f"nfc:udp:127.0.0.1:{port}"
    _refused_as_unavailable(spec, f"port {port} is the {service.lower()!r} service's")


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_nfc_udp_port_out_of_range_is_refused_as_a_spec_error(port: str) -> None:
    r = ykt("--lang", "en", "read", "--reader", f"nfc:udp:127.0.0.1:{port}", check=False)
    assert (r.returncode, "Traceback" in r.stderr) == (1, False), r.stderr
    assert f"nfc:udp port must be 1 to 65535, not {port!r}" in r.stderr
