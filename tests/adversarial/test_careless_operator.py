"""Operators and their files: rosters with look-alike digits, operator names with invisible
characters, corrupt card files, misspelt fare files, the journal lost or damaged under a
running validator and a library desk's store deleted under it (docs/security.md, "Operators
and their files")."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import Forbidden
from gateway.subsidy import store
from simulators.campus import campus_card
from simulators.profiles import demo_card
from terminal.fares import DEMO_FARES
from terminal.journal import Journal, JournalUnavailable
from tests.campus_kit import LIBRARY_ID, LibrarySite, enrol
from tests.cli_kit import YKT, ykt
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer
from tests.subsidy_kit import admin, holder_row, import_roster, roster


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one line on stderr and no traceback; that line."""
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- Unicode digits ---------------------------------------------------------------------------
def live_lines(gateway: Any, person_id: str) -> int:
    with gateway.db.tx() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM subsidy_lines WHERE id_number = ? AND live = 1", (person_id,)
        )
        return int(cur.fetchone()[0])


def test_full_width_period_cannot_declare_the_same_line_twice(gateway, centre):
    rec = centre.records[0]
    who = holder_row(rec)
    first = import_roster(gateway, roster(f"{who},H18,20000,2026-09"))
    assert first["report"]["accepted"] == 1
    # the same person, item and period, the period typed with full-width digits
    r = admin(
        gateway,
        "POST",
        "/v1/admin/subsidies/rosters",
        params={"declared_by": "declarer", "source": "again.csv"},
        content=roster(f"{who},H18,20000,２０２６-０９"),
    )
    doc = r.json()
    assert doc["report"]["accepted"] == 0, doc
    reasons = doc["report"]["rejections"][0]["reasons"]
    assert any("already declared in roster" in x for x in reasons), reasons
    assert live_lines(gateway, rec.holder.id_number) == 1


def test_full_width_digits_inside_one_roster_are_the_same_line(gateway, centre):
    rec = centre.records[1]
    full_width_card = rec.card_number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    body = roster(
        f"{holder_row(rec)},H18,100,2026-09",
        f"{rec.holder.name},{rec.holder.id_number},{full_width_card},H18,100,２０２６-09",
    )
    report = import_roster(gateway, body)["report"]
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["rejections"][0]["reasons"] == [
        "duplicate of row 2 (same ID number, item and period)"
    ]
    assert live_lines(gateway, rec.holder.id_number) == 1


def test_a_full_width_amount_refuses_the_roster_naming_the_line(gateway, centre):
    rec = centre.records[1]
    who = holder_row(rec)
    body = roster(f"{who},H18,100,2026-08", f"{who},H17,１００,2026-08")
    r = admin(
        gateway, "POST", "/v1/admin/subsidies/rosters", params={"declared_by": "x"}, content=body
    )
    assert r.status_code == 422 and r.json()["error"] == "bad_roster", r.text
    assert r.json()["reason"].startswith("line 3: amount '１００' has full-width")
    assert gateway.count("subsidy_rosters") == 0 and gateway.count("subsidy_lines") == 0


def test_digits_of_other_scripts_are_refused_in_rosters_and_paths(gateway, centre):
    rec = centre.records[2]
    arabic = "٢٠٢٦-09"  # Arabic-Indic digits: int() reads them, NFKC keeps them
    body = roster(f"{holder_row(rec)},H18,100,{arabic}")
    r = admin(
        gateway,
        "POST",
        "/v1/admin/subsidies/rosters",
        params={"declared_by": "declarer"},
        content=body,
    )
    reasons = r.json()["report"]["rejections"][0]["reasons"]
    assert any("period" in x and "must look like YYYY-MM" in x for x in reasons), reasons
    assert live_lines(gateway, rec.holder.id_number) == 0
    token = gateway.register("310000000099", "card-centre", role="kiosk")
    odd = rec.card_number[:-1] + "٣"
    resp = httpx.get(
        f"{gateway.url}/v1/subsidies/cards/{odd}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert resp.status_code == 422 and resp.json()["error"] == "bad_card_number", resp.text
    assert "other than ASCII" in resp.json()["reason"]


def test_card_book_reads_full_width_card_numbers_as_the_same_card(gateway, centre):
    """A loss typed with full-width digits is the same card (one hotlist entry, not a 404
    or a second card); digits of other scripts are refused with a reason, nothing listed."""
    rec = centre.records[0]
    token = gateway.register("310000000098", "card-centre", role="kiosk")
    auth = {"Authorization": f"Bearer {token}"}

    def loss(number: str, id_number: str) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/cards/loss",
            json={"card_number": number, "id_number": id_number},
            headers=auth,
            timeout=30,
        )

    arabic = rec.card_number[:-1] + "٣"
    bad = loss(arabic, rec.holder.id_number)
    assert bad.status_code == 422 and bad.json()["error"] == "bad_card_number", bad.text
    assert gateway.count("hotlist_changes") == 0
    wide = rec.card_number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    wide_id = rec.holder.id_number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    done = loss(wide, wide_id)
    assert done.status_code == 200, done.text
    assert done.json()["card_number"] == rec.card_number and done.json()["state"] == "lost"
    assert loss(rec.card_number, rec.holder.id_number).json()["hotlist_version"] == 1
    assert gateway.count("hotlist_changes") == 1


def test_cli_numbers_in_other_scripts_are_refused(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    r = ykt("validator", "--journal", str(journal), "--taps", "٣", check=False)
    assert r.returncode == 2 and "other than ASCII" in r.stderr and "Traceback" not in r.stderr
    assert not journal.exists()
    card = tmp_path / "c.json"
    r = ykt("sim", "new-card", "--out", str(card), "--balance", "٥", check=False)
    assert r.returncode == 2 and "not an amount" in r.stderr and not card.exists()
    ok = ykt("sim", "new-card", "--out", str(card), "--number", "７", "--balance", "５.００")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ykt("read", "--card", str(card), "--json").stdout)["balance_fen"] == 500
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    for args in (
        ("subsidy", "show", "٣", "--db", db),
        ("subsidy", "report", "--roster", "٣", "--db", db),
        ("gateway", "hotlist", "show", "--since", "٣", "--db", db),
        ("demo", "--cards", "٣"),
    ):
        r = ykt(*args, check=False)
        assert r.returncode == 2 and "other than ASCII" in r.stderr, (args, r.stderr)
    assert not (tmp_path / "gw.db").exists()


# -- invisible characters in operator names ------------------------------------------------
@pytest.mark.parametrize("disguise", ["\u200b", "\u202e", "\ufeff", " \u2060", "\u00ad"])
def test_invisible_characters_do_not_make_a_second_person(gateway, centre, disguise: str):
    rec = centre.records[0]
    body = roster(f"{holder_row(rec)},H18,100,2026-08")
    rid = import_roster(gateway, body, by="赵审核")["roster"]["id"]
    r = admin(
        gateway,
        "POST",
        f"/v1/admin/subsidies/rosters/{rid}/review",
        json={"actor": "赵审核" + disguise},
    )
    assert r.status_code == 403 and r.json()["error"] == "four_eyes", r.text
    assert "may not also review" in r.json()["reason"]
    with pytest.raises(Forbidden, match="may not also review"):
        store.review(gateway.db, rid, "\u200d赵审核")
    assert store.get_roster(gateway.db, rid).state == "declared"
    assert [e["action"] for e in store.events(gateway.db, rid)] == ["declared"]


# -- key files open to others ---------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620], ids=lambda m: f"{m:04o}")
def test_a_bank_key_file_open_to_others_stops_the_gateway_at_start(tmp_path: Path, mode: int):
    """The agent bank's key signs the result files that free or pay subsidy lines: a key file
    anyone else on the machine may read (or write) lets them forge a bank file. The gateway
    refuses to start with it, says which file and what to do, and opens no database."""
    keys = tmp_path / "bank.toml"
    keys.write_text(f'mac = "hmac-sm3"\nsignature = "line"\nkey = "{"5A" * 16}"\n')
    keys.chmod(mode)
    db = tmp_path / "gateway.db"
    serve = ["gateway", "serve", "--db", f"sqlite:///{db}", "--workers", "1", "--port", "0"]
    r = ykt(*serve, "--bank-key", str(keys), check=False, timeout=30)
    line = one_error_line(r)
    assert f"{keys}:1: is open to group or others (mode {mode:04o})" in line, line
    assert f"chmod 600 {keys}" in line and "5A5A" not in line, line
    assert not db.exists()


# -- token files open to others -------------------------------------------------------------
def _open_token(path: Path, token: str, mode: int) -> Path:
    """A token file as a careless operator leaves it: written, then opened to others."""
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640], ids=lambda m: f"{m:04o}")
def test_a_terminal_refuses_a_token_file_others_may_read(gateway, tmp_path: Path, mode: int):
    """Anyone who reads a validator's token uploads in its name: ``ykt run`` with a token
    file open to others stops at start, says which file and what to do, never shows the
    token, and has tapped no card, opened no journal and uploaded nothing."""
    token = gateway.register("310000000201", "bus-co", role="validator")
    token_file = _open_token(tmp_path / "bus.token", token, mode)
    card = tmp_path / "card1.json"
    demo_card(1, balance=5_000).save(card)
    before = card.read_text()
    config = tmp_path / "bus.toml"
    config.write_text(
        f"""\
[terminal]
role = "bus"

[readers]
card = "sim"
sam = "sim"

[sim]
terminal_id = "310000000201"
sam_state = "psam.json"
cards = ["card1.json"]
taps = 3

[journal]
path = "journal.db"

[gateway]
url = "{gateway.url}"
token_file = "bus.token"
""",
        encoding="utf-8",
    )
    line = one_error_line(ykt("run", str(config), check=False, timeout=30))
    assert f"{token_file}" in line and f"(mode {mode:04o})" in line, line
    assert f"chmod 600 {token_file}" in line and token not in line, line
    assert not (tmp_path / "journal.db").exists() and not (tmp_path / "psam.json").exists()
    assert card.read_text() == before
    assert gateway.count("txn") == 0


def test_the_gateway_refuses_an_admin_token_file_others_may_read(tmp_path: Path):
    """The admin token approves rosters and lifts 挂失: a gateway given an admin token file
    others may read refuses to start, names the file and its mode, and opens no database."""
    token_file = _open_token(tmp_path / "admin.token", "adm-" + "7" * 40, 0o644)
    db = tmp_path / "gateway.db"
    serve = ["gateway", "serve", "--db", f"sqlite:///{db}", "--workers", "1", "--port", "0"]
    r = ykt(*serve, "--admin-token-file", str(token_file), check=False, timeout=30)
    line = one_error_line(r)
    assert f"{token_file}" in line and "is open to group or others (mode 0644)" in line, line
    assert f"chmod 600 {token_file}" in line and "7777" not in line, line
    assert not db.exists()


# -- corrupt card files -------------------------------------------------------------------
def _card_text(tmp_path: Path) -> str:
    path = tmp_path / "good.json"
    demo_card(3, balance=1_000).save(path)
    return path.read_text()


def _patched(text: str, change: Any) -> str:
    doc = json.loads(text)
    change(doc["state"])
    return json.dumps(doc, indent=1)


CARD_VARIANTS: dict[str, Any] = {
    "empty": lambda t: "",
    "white space": lambda t: "\n  \n",
    "binary": lambda t: b"\x00\xff\x13\x80PK\x03\x04".decode("latin-1"),
    "not json": lambda t: "kind = epurse\n",
    "a json list": lambda t: "[1, 2, 3]\n",
    "truncated after 10": lambda t: t[:10],
    "truncated in half": lambda t: t[: len(t) // 2],
    "truncated near the end": lambda t: t[:-3],
    "wrong kind": lambda t: t.replace('"epurse"', '"toaster"', 1),
    "no state": lambda t: json.dumps({"kind": "epurse"}),
    "state not an object": lambda t: json.dumps({"kind": "epurse", "state": [1]}),
    "missing key": lambda t: _patched(t, lambda s: s.pop("public_info")),
    "unknown key": lambda t: _patched(t, lambda s: s.update(balanse=5)),
    "balance a string": lambda t: _patched(t, lambda s: s.update(balance="1000")),
    "balance negative": lambda t: _patched(t, lambda s: s.update(balance=-1)),
    "balance huge": lambda t: _patched(t, lambda s: s.update(balance=10**30)),
    "bad hex in the log": lambda t: _patched(t, lambda s: s.update(log=["ZZ" * 23])),
    "short public info": lambda t: _patched(t, lambda s: s.update(public_info="00")),
    "keys missing one": lambda t: _patched(t, lambda s: s["keys"].pop("tac")),
}


@pytest.mark.parametrize("variant", sorted(CARD_VARIANTS))
def test_corrupt_card_file_is_one_line_with_file_and_line(tmp_path: Path, variant: str) -> None:
    bad = tmp_path / "card.json"
    content = CARD_VARIANTS[variant](_card_text(tmp_path))
    bad.write_bytes(content.encode("latin-1" if variant == "binary" else "utf-8"))
    before = bad.read_bytes()
    line = one_error_line(ykt("read", "--card", str(bad), check=False))
    assert line.startswith(f"ykt: {bad}:"), line
    number, what = line[len(f"ykt: {bad}:") :].split(": ", 1)
    assert number.isdigit() and int(number) >= 1 and what, line
    assert bad.read_bytes() == before  # the card file is left as it was


def test_corrupt_card_file_stops_the_validator_before_its_journal(tmp_path: Path) -> None:
    bad, journal = tmp_path / "card.json", tmp_path / "j.db"
    bad.write_text(CARD_VARIANTS["balance huge"](_card_text(tmp_path)))
    line = one_error_line(
        ykt("validator", "--card", str(bad), "--journal", str(journal), check=False)
    )
    assert "balance" in line and "out of range" in line, line
    assert not journal.exists()


# -- fare files -----------------------------------------------------------------------------
def _fares(tmp_path: Path, old: str, new: str) -> Path:
    text = DEMO_FARES.read_text()
    assert old in text
    path = tmp_path / "fares.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "line_no", "message"),
    [
        ("[bus]", "[buss]", 13, "unknown key 'buss' in the fare file"),
        ("overtime_penalty = 300", "overtime_penalti = 300", 20, "unknown key 'overtime_penalti'"),
        ("flat_fare = 200", "flat_fare = 99999999999", 14, "more than a card balance can hold"),
        ("flat_fare = 200", "flat_fare = 2.5", 14, "whole number of fen"),
        ("percent = 50", "percent = 500", 55, "percent above 100"),
        ("max_trip_minutes = 240", "max_trip_minutes = 10000000", 19, "max_trip_minutes"),
        ('"0101-0103" = 400', '"0101-0103" = "400"', 33, "metro.fares.0101-0103"),
        ('city_code = "2900"', 'city_code = "29ZZ"', 9, "2 bytes of hex"),
        ("[transfer]", "[transfer", 43, "not valid TOML"),
    ],
)
def test_bad_fare_file_is_refused_with_its_line_before_any_card(
    tmp_path: Path, old: str, new: str, line_no: int, message: str
) -> None:
    fares, journal, card = tmp_path / "f.toml", tmp_path / "j.db", tmp_path / "c.json"
    fares = _fares(tmp_path, old, new)
    demo_card(4, balance=1_000).save(card)
    r = ykt(
        "validator",
        "--fares",
        str(fares),
        "--card",
        str(card),
        "--journal",
        str(journal),
        check=False,
    )
    line = one_error_line(r)
    assert line.startswith(f"ykt: {fares}:{line_no}: "), line
    assert message in line, line
    assert "GREEN" not in r.stdout and not journal.exists()
    assert json.loads(card.read_text())["state"]["balance"] == 1_000


# -- the journal lost or damaged ------------------------------------------------------------
CHECK = ("--journal-check", "0.2")


def _start_validator(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*YKT, "validator", "--journal", "j.db", "--taps", "1000000", "--cards", "40", *CHECK],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _after_some_taps(proc: subprocess.Popen[str], n: int = 50) -> list[str]:
    assert proc.stdout is not None
    lines = []
    while len(lines) < n:
        line = proc.stdout.readline()
        assert line, "validator ended early"
        if line.startswith(("GREEN", "RED")):
            lines.append(line)
    return lines


def _remove(tmp_path: Path) -> None:
    for name in ("j.db", "j.db-wal", "j.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)


def _replace(tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    copy.write_bytes((tmp_path / "j.db").read_bytes())
    os.replace(copy, tmp_path / "j.db")


def _corrupt(tmp_path: Path) -> None:
    """Garbage over every page of the file, in place (the WAL's next checkpoint rewrites
    only the pages it holds; the others stay damaged)."""
    path = tmp_path / "j.db"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\xde\xad\xbe\xef" * (size // 4))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_remove, "was removed"), (_replace, "was replaced"), (_corrupt, "is damaged")],
)
def test_journal_lost_during_a_run_puts_the_validator_out_of_service(
    tmp_path: Path, damage: Any, reason: str
) -> None:
    proc = _start_validator(tmp_path)
    try:
        _after_some_taps(proc)
        damage(tmp_path)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, (out[-500:], err)
    assert "Traceback" not in err and "awaiting upload" not in out
    assert err.strip().splitlines()[-1].startswith("ykt validator: out of service: journal j.db")
    assert reason in err
    last = out.strip().splitlines()[-1]
    assert last.startswith("RED   out of service:") and reason in last
    # no tap is served once the journal is gone: the out-of-service line is the last one,
    # and the run stopped long before its million taps
    taps = [x for x in out.splitlines() if x.startswith(("GREEN", "RED  "))]
    assert len(taps) < 100_000


def test_damaged_journal_at_start_is_one_line_with_the_path_and_what_to_do(
    tmp_path: Path,
) -> None:
    journal, card = tmp_path / "j.db", tmp_path / "c.json"
    journal.write_bytes(b"this is not a journal" * 100)
    before = journal.read_bytes()
    demo_card(5, balance=1_000).save(card)
    r = ykt("validator", "--journal", str(journal), "--card", str(card), "--taps", "1", check=False)
    line = one_error_line(r)
    assert str(journal) in line and "is damaged" in line and "move it aside" in line, line
    assert "GREEN" not in r.stdout
    assert journal.read_bytes() == before
    assert json.loads(card.read_text())["state"]["balance"] == 1_000


def test_journal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    old = os.umask(0o022)
    try:
        with Journal(path) as j:
            j.verify()
            modes = {
                p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.is_file()
            }
    finally:
        os.umask(old)
    assert modes == {"j.db": 0o600, "j.db-wal": 0o600, "j.db-shm": 0o600}


def test_a_journal_write_after_removal_is_refused_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    for name in ("j.db", "j.db-wal", "j.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(JournalUnavailable, match="was removed while in use"):
        j.check_identity()
    with pytest.raises(JournalUnavailable, match="was removed while in use"):
        j.record_intent(
            terminal_id=bytes(6),
            terminal_seq=1,
            issuer_id=bytes(8),
            card_serial=bytes(8),
            txn_type=9,
            amount=100,
            balance_before=1_000,
            card_atc=1,
            key_version=1,
            algorithm=0,
            txn_time=datetime(2026, 11, 30, 12, 0),
        )
    assert j.failure is not None
    j.close()


def test_a_library_store_deleted_under_the_desk_never_reuses_a_loan_number(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    """The library desk's store (allow list and loan numbers) is deleted while the desk runs,
    which then restarts on a fresh one. Its numbers would start at 1 again: loan 1 of the
    same card and book (lent and returned before) would be answered as a resend - the book
    handed out with no loan booked - and return 1 would not close it. The restarted desk
    continues above the numbers the gateway holds, so the loan is booked and closed."""
    card = campus_card(1, "S1")
    enrol(gateway.url, "S1", "students", card)
    token = gateway.register(LIBRARY_ID, "campus", role="library")
    clock = FrozenClock(datetime(2026, 11, 30, 15, 0))
    desk = LibrarySite(tmp_path, clock, gateway.url, token)
    desk.sync()
    assert desk.borrow(card, "B-0001").loan_no == 1
    assert desk.desk.give_back("B-0001")["duplicate"] is False
    for name in ("library-store.db", "library-store.db-wal", "library-store.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    desk.device.close()
    desk = LibrarySite(tmp_path, clock, gateway.url, token)  # the restart, on a fresh store
    desk.sync()
    loan = desk.borrow(card, "B-0001")
    assert (loan.loan_no, loan.held) == (2, 1)
    with gateway.db.tx() as cur:
        cur.execute("SELECT COUNT(*) FROM campus_library_loans WHERE returned_at IS NULL")
        assert cur.fetchone()[0] == 1  # the book is booked out to S1
    assert desk.desk.give_back("B-0001") == {
        "book": "B-0001",
        "person_no": "S1",
        "duplicate": False,
    }
    with gateway.db.tx() as cur:
        cur.execute("SELECT loan_no, return_no FROM campus_library_loans ORDER BY loan_no")
        assert [tuple(r) for r in cur.fetchall()] == [(1, 1), (2, 2)]
    desk.device.close()


def test_corrupt_psam_file_is_one_line_too(tmp_path: Path) -> None:
    from simulators.profiles import demo_psam

    path = tmp_path / "psam.json"
    demo_psam().save(path)
    path.write_text(path.read_text().replace('"310000000001"', '"31000000ZZ01"'))
    line = one_error_line(ykt("read", "--card", str(path), check=False))
    assert line.startswith(f"ykt: {path}:") and "terminal_id" in line, line


# -- a data directory restored from a backup --------------------------------------------------
def test_a_journal_and_psam_restored_from_a_backup_park_the_reused_sequences(
    gateway, tmp_path: Path, clock
) -> None:
    """Yesterday's copy of the journal and the PSAM comes back: today's purchases reuse
    sequence numbers the gateway already holds with other content. The gateway answers
    ``conflict``; each such row is the only record of money taken from a card, so the
    terminal parks it with the reason (listed, counted in /health) instead of marking it
    sent."""
    from terminal.uplink import GatewayClient, Uplink
    from tests.traffic import JournaledTerminal, make_cards

    tid = "310000000377"
    path, backup = tmp_path / "j.db", tmp_path / "backup.db"
    client = GatewayClient(gateway.url, gateway.register(tid))
    term = JournaledTerminal(tid, path, clock)
    with sqlite3.connect(path) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # the backup, before the day's taps
    backup.chmod(0o600)
    yesterday = make_cards(3)
    for card in yesterday:
        clock.advance(seconds=30)
        term.tap(card, 200)
    assert Uplink(term.journal, {tid: client}, clock=clock).drain() == 3
    term.close()

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    backup.rename(path)
    term = JournaledTerminal(tid, path, clock)  # and the PSAM's state from the same backup
    today = make_cards(3, first=10)
    rows = []
    for card in today:
        clock.advance(seconds=30)
        rows.append(term.tap(card, 350))
    assert [r.terminal_seq for r in rows] == [1, 2, 3]  # the numbers yesterday's taps had

    up = Uplink(term.journal, {tid: client}, clock=clock)
    assert up.drain() == 3
    parked = term.journal.parked()
    assert [(r.terminal_seq, r.amount) for r in parked] == [(r.terminal_seq, 350) for r in rows]
    for row in parked:
        assert row.uploaded_at is None
        assert row.parked_reason.startswith("409 conflict:"), row.parked_reason
        assert "other content" in row.parked_reason and "reused" in row.parked_reason
    assert (up.stats.conflicts, up.stats.parked, term.journal.pending_upload()) == (3, 3, 0)
    # the money is on the rows: the cards paid, the gateway stored none of it
    assert [c.balance for c in today] == [100_000 - 350] * 3
    assert gateway.count("txn") == 3 and gateway.count("txn_conflicts") == 3
    term.close()
    client.close()


# -- a validator's clock set back ----------------------------------------------------------------
def test_a_clock_set_back_does_not_make_a_later_tap_the_torn_taps_retry(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """A bus tap is torn after DEBIT committed (the card paid 200). The validator's clock is
    then set back three hours; the rider comes back an hour later (the clock now shows two
    hours before the torn tap). The torn debit is settled, but this later ride is not the
    torn tap retried: it is charged, and both rides are in the journal."""
    from terminal.readers.sim import AFTER
    from tests.terminal.roles.fleet import DEBIT, Fleet

    f = Fleet(tmp_path / "bus.db", clock)
    f.add_cards(1, balance=5_000)
    card = f.cards[0]
    f.reader.insert(card)
    f.reader.tear_at_ins(DEBIT, AFTER)
    assert not f.bus.tap().green
    assert card.balance == 4_800 and len(f.journal.open_rows()) == 1
    clock.advance(hours=-3)
    clock.advance(hours=1)
    later = f.tap(card, f.bus)
    assert later.green and later.message == "paid", later
    assert card.balance == 4_600  # two rides, two fares
    rows = f.journal.rows()
    assert [(r.amount, r.state) for r in rows] == [(200, "settled"), (200, "settled")]
    assert rows[0].resolution == "recovered with GET TRANSACTION PROVE; MAC2 verified by the PSAM"
    assert f.journal.open_rows() == []


# -- a journal edited between runs --------------------------------------------------------------
def _bus_journal(tmp_path: Path, clock: FrozenClock, taps: int) -> tuple[Path, list[int]]:
    """A bus validator's journal with ``taps`` settled rides, none uploaded yet."""
    from tests.terminal.roles.fleet import Fleet

    f = Fleet(tmp_path / "bus.db", clock)
    f.add_cards(taps, balance=5_000)
    for card in f.cards:
        assert f.tap(card, f.bus).green
        clock.advance(minutes=1)
    ids = [r.id for r in f.journal.export()]
    f.journal.close()
    return tmp_path / "bus.db", ids


@pytest.mark.parametrize("which", ["middle", "newest"])
def test_a_row_deleted_from_the_journal_stops_the_terminal_before_upload(
    tmp_path: Path, clock: FrozenClock, which: str
) -> None:
    """Someone deletes a settled, not yet uploaded ride from the journal file while the
    terminal is off. The journal holds no keys and cannot prove a row true, but it can
    tell that one is gone: rows are never deleted, so their ids run 1..n with nothing
    missing. It refuses to open, naming the missing row, so the loss is not silent."""
    path, ids = _bus_journal(tmp_path, clock, 3)
    assert ids == [1, 2, 3]
    gone = 2 if which == "middle" else 3
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM txn WHERE id=?", (gone,))
    db.close()
    with pytest.raises(JournalUnavailable) as caught:
        Journal(path)
    assert f"row {gone} of txn is missing" in str(caught.value)
    assert str(path) in str(caught.value)
    with sqlite3.connect(path) as db:  # the rest is kept as it was, for the operator
        left = db.execute("SELECT id, uploaded_at FROM txn ORDER BY id").fetchall()
    db.close()
    assert left == [(i, None) for i in ids if i != gone]
