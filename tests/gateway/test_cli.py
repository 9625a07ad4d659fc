"""`ykt gateway` admin commands on a real database file."""

from __future__ import annotations

import json

from gateway import numbers
from gateway.auth import authenticate
from gateway.storage import open_storage
from terminal.cli.main import main
from tests.cli_kit import ykt_here
from tests.issuance_kit import SHANGHAI, VALID_ID


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


def test_a_stale_claim_is_listed_and_released_from_the_command_line(tmp_path, capsys):
    """A desk claimed a number and went away: the card centre lists the claim, releases it
    (who and why), and a second release is refused."""
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = open_storage(url)
    block = numbers.lease(db, "310000000080", SHANGHAI.hex(), 10)
    number = block["first_card_number"]
    numbers.claim(db, "310000000080", number, SHANGHAI.hex(), VALID_ID, 1)
    rc, out, _ = ykt_here(capsys, "gateway", "numbers", "stale", "--db", url)
    assert (rc, json.loads(out)) == (0, [])  # a day has not passed
    rc, out, _ = ykt_here(capsys, "gateway", "numbers", "stale", "--older-than", "0", "--db", url)
    assert [c["card_number"] for c in json.loads(out)] == [number]
    release = ("gateway", "numbers", "release", number, "--by", "王主任", "--reason", "desk gone")
    rc, _, err = ykt_here(capsys, *release, "--db", url)
    assert rc == 1 and "released only after 1440 minute(s)" in err
    rc, out, _ = ykt_here(capsys, *release, "--older-than", "0", "--db", url)
    assert (rc, json.loads(out)["released_by"]) == (0, "王主任")
    rc, _, err = ykt_here(capsys, *release, "--older-than", "0", "--db", url)
    assert rc == 1 and "released already" in err
    rc, out, _ = ykt_here(capsys, "gateway", "numbers", "releases", "--db", url)
    assert [(x["card_number"], x["reason"]) for x in json.loads(out)] == [(number, "desk gone")]
    db.close()
