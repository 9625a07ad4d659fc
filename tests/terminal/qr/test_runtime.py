"""A bus validator's [qr] section: the assembly builds its QrGate from the root keys file,
the issuer whitelist file and the policy values; bad values are refused at their line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from simulators.qr_app import RideCodeApp
from terminal.cli.sim_devices import SoftwareDevices
from terminal.runtime.assembly import assemble
from terminal.runtime.config import load_config
from terminal.text import FileError

NOW = datetime(2026, 11, 28, 8, 0)


def device(tmp_path: Path, qr: str, role: str = "bus") -> Path:
    """A bus validator's directory: its configuration, the app's root key and issuer."""
    app = RideCodeApp()
    key = app.root.root_key
    (tmp_path / "roots.txt").write_text(
        f"# root CA\n{key.index:02X}:{key.public_key.hex().upper()}\n", encoding="utf-8"
    )
    (tmp_path / "issuers.txt").write_text("10000001:20000001:qr\n", encoding="utf-8")
    path = tmp_path / "bus.toml"
    path.write_text(
        f'[terminal]\nrole = "{role}"\nclock = {NOW.isoformat()}\n'
        f'[journal]\npath = "j.db"\n[sim]\ndemo_cards = 1\n{qr}',
        encoding="utf-8",
    )
    return path


def test_the_assembly_builds_the_qr_gate_from_the_qr_section(tmp_path: Path) -> None:
    path = device(
        tmp_path,
        '[qr]\nroot_keys = "roots.txt"\nissuers = "issuers.txt"\nmin_interval = 300\n'
        "debounce = 0\naccount_types = [1, 2]\n",
    )
    terminal = assemble(load_config(path), SoftwareDevices())
    try:
        gate = terminal.role.qr
        assert gate is not None and set(gate.roots) == {1}
        assert (gate.policy.min_interval, gate.policy.debounce) == (300, 0)
        assert gate.policy.account_types == frozenset({1, 2})
        assert gate.policy.issuers["10000001"].platform_code == "20000001"
        app = RideCodeApp()
        ride = terminal.role.scan(app.code(NOW))
        assert (ride.green, ride.fare) == (True, 200), ride.line()
        again = terminal.role.scan(app.code(NOW.replace(second=5)))
        assert (again.green, again.reason) == (False, "too-soon"), again.line()
        other = terminal.role.scan(app.code(NOW, issuer="10000002"))
        assert (other.green, other.reason) == (False, "unknown-issuer"), other.line()
        assert len(terminal.journal.qr_rows()) == 1
    finally:
        terminal.close()


def test_without_a_qr_section_codes_are_not_taken(tmp_path: Path) -> None:
    terminal = assemble(load_config(device(tmp_path, "")), SoftwareDevices())
    try:
        r = terminal.role.scan(RideCodeApp().code(NOW))
        assert (r.green, r.reason) == (False, "not-accepted")
    finally:
        terminal.close()


@pytest.mark.parametrize(
    ("qr", "line", "what"),
    [
        ('[qr]\nissuers = "issuers.txt"\n', 8, "[qr] is missing 'root_keys'"),
        ('[qr]\nroot_keys = "roots.txt"\nissuers = "i"\nskew = 5\n', 11, "unknown key 'skew'"),
        (
            '[qr]\nroot_keys = "r"\nissuers = "i"\ndebounce = -1\n',
            11,
            "qr.debounce must be a whole number >= 0",
        ),
        (
            '[qr]\nroot_keys = "r"\nissuers = "i"\naccount_types = [256]\n',
            11,
            "qr.account_types must be a list of 0..255",
        ),
        ('[qr]\nroot_keys = "r"\nissuers = "i"\nmin_version = 1\n', 11, "min_version must be"),
    ],
)
def test_bad_qr_settings_are_refused_at_their_line(
    tmp_path: Path, qr: str, line: int, what: str
) -> None:
    path = device(tmp_path, qr)
    with pytest.raises(FileError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and what in str(err.value)


def test_a_taxi_from_its_configuration_takes_a_code_for_the_meter(tmp_path: Path) -> None:
    path = device(
        tmp_path,
        '[ride]\nmeter = 2350\ndriver = "D0042"\nvehicle = "HU-A1234"\n'
        '[qr]\nroot_keys = "roots.txt"\nissuers = "issuers.txt"\n',
        role="taxi",
    )
    terminal = assemble(load_config(path), SoftwareDevices())
    try:
        ride = terminal.role.scan(RideCodeApp().code(NOW))
        assert (ride.green, ride.fare) == (True, 2_350), ride.line()
        (row,) = terminal.journal.qr_rows()
        assert (row["context"]["mode"], row["context"]["driver"]) == ("taxi", "D0042")
    finally:
        terminal.close()


def test_qr_on_a_metro_gate_is_refused(tmp_path: Path) -> None:
    path = device(tmp_path, '[qr]\nroot_keys = "r"\nissuers = "i"\n', role="metro-entry")
    with pytest.raises(FileError, match="ride codes are taken on buses"):
        load_config(path)


@pytest.mark.parametrize(
    ("name", "text", "what"),
    [
        ("roots.txt", "01:ABCD\n", "roots.txt:1: root key must be 64 bytes"),
        ("roots.txt", "# none\n", "roots.txt:1: lists no root key"),
        ("issuers.txt", "10000001:20000001\n10000001:*\n", "issuers.txt:2: issuer 10000001 is"),
        ("issuers.txt", "10000001\n", "issuers.txt:1: issuer '10000001' must be ISSUER:PLATFORM"),
    ],
)
def test_a_bad_parameter_file_stops_the_start(
    tmp_path: Path, name: str, text: str, what: str
) -> None:
    path = device(tmp_path, '[qr]\nroot_keys = "roots.txt"\nissuers = "issuers.txt"\n')
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(FileError) as err:
        assemble(load_config(path), SoftwareDevices())
    assert what in str(err.value)
    assert not (tmp_path / "j.db").exists()  # refused before the journal was opened


def test_the_bus_example_takes_the_test_apps_codes() -> None:
    config = load_config(Path(__file__).parents[3] / "examples" / "validator-bus.toml")
    assert config.qr is not None
    roots, policy = config.qr.load()
    assert set(roots) == {1} and roots[1] == RideCodeApp().root.root_key
    assert policy.issuers["10000001"].platform_code == "20000001"
