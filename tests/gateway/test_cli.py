"""`ykt gateway` admin commands on a real database file."""

from __future__ import annotations

from gateway.auth import authenticate
from gateway.storage import open_storage
from terminal.cli.main import main


def test_terminal_registry_and_hotlist_from_the_command_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    assert (
        main(["gateway", "terminal", "add", "310000000777", "--operator", "bus-co", "--db", url])
        == 0
    )
    token = capsys.readouterr().out.strip()
    db = open_storage(url)
    assert authenticate(db, f"Bearer {token}").operator_id == "bus-co"
    assert main(["gateway", "terminal", "list", "--db", url]) == 0
    assert "310000000777  bus-co" in capsys.readouterr().out
    assert main(["gateway", "terminal", "revoke", "310000000777", "--db", url]) == 0
    assert main(["gateway", "terminal", "add", "31", "--operator", "x", "--db", url]) == 1
    assert "12 hex digits" in capsys.readouterr().err
    assert (
        main(
            [
                "gateway",
                "hotlist",
                "add",
                "02902900FFFFFFFF",
                "0290000000000001",
                "--reason",
                "挂失",
                "--db",
                url,
            ]
        )
        == 0
    )
    assert main(["gateway", "hotlist", "show", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "hotlist version 1" in out and "add    02902900FFFFFFFF 0290000000000001" in out
    db.close()
