"""``ykt demo``'s ride codes: a code from the software app boards the bus, a replay and a
tampered code are refused with their reasons, and the ride is cleared under its platform
while the cards' settlement still balances."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from terminal.cli.demo_clearing import settlement_balances
from terminal.cli.demo_qr import qr_cleared
from terminal.journal import Journal
from tests.cli_kit import ykt


def test_demo_rides_a_code_to_clearing_and_refuses_the_bad_ones(tmp_path: Path) -> None:
    out = ykt("--lang", "en", "demo", "--cards", "2", "--taps", "4", "--workdir", str(tmp_path))
    lines = [line.strip() for line in out.stdout.splitlines()]
    qr = [line for line in lines if line.startswith("bus 7 code")]
    assert len(qr) == 3, out.stdout
    assert qr[0].startswith("bus 7 code  GREEN 0000000000000000A001 ride code: fare ¥2.00 paid,")
    assert "charged to platform 20000001" in qr[0]
    assert "RED   -" in qr[1] and "ride code refused: this code has already paid a ride" in qr[1]
    assert (
        "ride code refused: the issuing platform's signature does not match: the code was "
        "altered" in qr[2]
    )
    assert "ride codes charged to platform QR20000001: 1 ride(s) ¥2.00" in lines
    assert "ride codes journaled 1 (¥2.00), cleared 1 (¥2.00): MATCHED" in lines
    assert any(line.endswith("against the cards: BALANCED to the fen") for line in lines)
    assert any("gateway reconciliation with clearing: MATCHED" in line for line in lines)

    # the journal's one ride is the one clearing booked, under the platform, by the same code
    journal = Journal(tmp_path / "bus.db")
    (row,) = journal.qr_rows()
    journal.close()
    assert row.uploaded_at is not None
    with sqlite3.connect(tmp_path / "servers" / "clearing.db") as db:
        cleared = db.execute(
            "SELECT terminal_id, issuer_id, card_serial, amount, body FROM cleared"
            " WHERE kind = 'qr_ride'"
        ).fetchall()
        rejected = db.execute("SELECT COUNT(*) FROM rejections").fetchone()[0]
    assert rejected == 0
    assert [c[:4] for c in cleared] == [("310000000201", "QR20000001", "0000000000000000A001", 200)]
    body = json.loads(cleared[0][4])
    assert (body["code_hash"], body["qr_seq"]) == (row["code_hash"], row.seq)


def test_ride_codes_move_no_card_but_must_match_what_was_journaled(tmp_path: Path) -> None:
    class Card:
        issuer_id, serial, balance = bytes.fromhex("02902900FFFFFFFF"), bytes(8), 700

    platform = {"issuer_id": "QR20000001", "purchases": 0, "purchase_amount": 0, "loads": 0}
    platform.update(load_amount=0, qr_rides=1, qr_amount=200)
    issuer = {"issuer_id": "02902900FFFFFFFF", "purchases": 1, "purchase_amount": 300}
    issuer.update(loads=0, load_amount=0)
    doc = {"by_issuer": [issuer, platform]}
    assert settlement_balances(doc, [Card()], {bytes(8).hex(): 1_000})

    journal = Journal(tmp_path / "j.db")
    lines: list[str] = []
    assert not qr_cleared(doc, [journal], lines.append)  # cleared a ride nobody journaled
    assert lines[-1].strip() == "ride codes journaled 0 (¥0.00), cleared 1 (¥2.00): MISMATCH"
    journal.close()
