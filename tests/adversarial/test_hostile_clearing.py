"""A clearing service (or its database) that lies about what it accepted: reconciliation
must never read MATCHED when clearing's records differ from what this gateway posted, and
never compare a report for another gateway or day as if it were ours."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import Unavailable
from gateway.forwarder import Forwarder
from gateway.reconcile import reconcile
from terminal.uplink import GatewayClient, Uplink
from tests.gateway_fixtures import ADMIN_TOKEN, start_gateway
from tests.lying_clearing import LyingClearing
from tests.traffic import JournaledTerminal, make_cards

TID = "310000000101"
GATEWAY_ID = "gw-test"
AMOUNTS = (100, 200, 300, 400)


def cleared_traffic(gateway: Any, clearing: Any, tmp_path: Path, clock: Any) -> list[str]:
    """Four purchases of ``AMOUNTS`` uploaded and accepted by clearing; their keys in order."""
    token = gateway.register(TID, "metro")
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    cards = make_cards(2)
    for i, amount in enumerate(AMOUNTS):
        clock.advance(seconds=17)
        term.tap(cards[i % 2], amount)
    with GatewayClient(gateway.url, token) as client:
        Uplink(term.journal, {TID: client}).drain()
    term.close()
    with gateway.db.tx() as cur:
        cur.execute("SELECT terminal_seq, amount FROM txn ORDER BY terminal_seq")
        held = cur.fetchall()
    assert [a for _, a in held] == list(AMOUNTS)
    keys = [f"P:{TID}:{seq}" for seq, _ in held]
    fwd = Forwarder(gateway.db, clearing.url, gateway_id=GATEWAY_ID)
    assert fwd.drain() == 4
    fwd.stop()
    assert reconcile(gateway.db, clearing.url, GATEWAY_ID)["matched"]
    return keys


def outcomes(gateway: Any) -> list[tuple[Any, ...]]:
    with gateway.db.tx() as cur:
        cur.execute("SELECT ref_id, outcome FROM outbox ORDER BY id")
        return cur.fetchall()


def tamper(tmp_path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Change clearing's database behind its back (the clearing fixture's file)."""
    con = sqlite3.connect(tmp_path / "clearing.db")
    with con:
        for sql, params in statements:
            assert con.execute(sql, params).rowcount == 1
    con.close()


def test_two_records_changed_so_count_and_sum_still_agree_is_a_mismatch(
    gateway, clearing, tmp_path, clock
):
    """Clearing's books turn the 100 fen sale into 150 and the 200 fen one into 150: the
    terminal's count (4) and sum (1,000) still agree, which read MATCHED. Reconciliation
    must name both records and the field that changed."""
    keys = cleared_traffic(gateway, clearing, tmp_path, clock)
    before = outcomes(gateway)
    change = "UPDATE cleared SET amount = 150, body = json_set(body, '$.amount', 150) WHERE key = ?"
    tamper(tmp_path, (change, (keys[0],)), (change, (keys[1],)))
    report = reconcile(gateway.db, clearing.url, GATEWAY_ID)
    assert report["matched"] is False
    (row,) = report["mismatches"]
    assert (row["terminal_id"], row["kind"]) == (TID, "purchase")
    assert (row["sent_count"], row["sent_amount"]) == (row["cleared_count"], row["cleared_amount"])
    assert row["differences"] == [
        {"key": keys[0], "what": "changed", "fields": ["amount"]},
        {"key": keys[1], "what": "changed", "fields": ["amount"]},
    ]
    assert outcomes(gateway) == before  # nothing in the gateway moved
    assert clearing.settlement()["totals"]["purchase_amount"] == sum(AMOUNTS)


def test_a_swapped_record_is_named_missing_and_extra(gateway, clearing, tmp_path, clock):
    """Clearing holds, in place of the 300 fen sale it accepted, another record of the same
    terminal and amount the gateway never posted (another sequence number): count and sum
    agree, which read MATCHED. Reconciliation names the one missing and the one extra."""
    keys = cleared_traffic(gateway, clearing, tmp_path, clock)
    before = outcomes(gateway)
    forged = f"P:{TID}:999"
    tamper(
        tmp_path,
        (
            "UPDATE cleared SET key = ?, body = json_set(json_set(body, '$.key', ?),"
            " '$.terminal_seq', 999) WHERE key = ?",
            (forged, forged, keys[2]),
        ),
    )
    report = reconcile(gateway.db, clearing.url, GATEWAY_ID)
    assert report["matched"] is False
    (row,) = report["mismatches"]
    assert row["differences"] == [
        {"key": keys[2], "what": "missing", "amount": 300},
        {"key": forged, "what": "extra", "amount": 300},
    ]
    assert outcomes(gateway) == before


def test_an_amount_changed_in_clearings_column_only_is_named(gateway, clearing, tmp_path, clock):
    """Clearing settles on its amount column: changed there (400 -> 500) and on another
    record (300 -> 200) while the records' bodies stay as posted, the totals agree."""
    keys = cleared_traffic(gateway, clearing, tmp_path, clock)
    tamper(
        tmp_path,
        ("UPDATE cleared SET amount = 500 WHERE key = ?", (keys[3],)),
        ("UPDATE cleared SET amount = 200 WHERE key = ?", (keys[2],)),
    )
    report = reconcile(gateway.db, clearing.url, GATEWAY_ID)
    assert report["matched"] is False
    (row,) = report["mismatches"]
    assert row["differences"] == [
        {"key": keys[2], "what": "changed", "fields": ["amount settled"]},
        {"key": keys[3], "what": "changed", "fields": ["amount settled"]},
    ]


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ({"gateway_id": "gw-other"}, "gateway gw-other"),
        ({"day": "2001-01-01"}, "day 2001-01-01"),
        ({"gateway_id": None}, "gateway None"),
    ],
)
def test_a_report_for_another_gateway_or_day_is_refused(
    gateway, clearing, tmp_path, clock, label, why
):
    """Clearing answers with a report labelled for another gateway or another day (its
    rows the real ones): it was compared as ours and read MATCHED. It is refused: 503
    ``bad_clearing_report`` saying whose report it is, and nothing in the gateway moves."""
    cleared_traffic(gateway, clearing, tmp_path, clock)
    before = outcomes(gateway)
    liar = LyingClearing(clearing.url)
    liar.report = lambda doc: {**doc, **label}
    gw = start_gateway(gateway.db, clock, clearing_url=liar.url, gateway_id=GATEWAY_ID)
    try:
        with pytest.raises(Unavailable) as caught:
            reconcile(gateway.db, liar.url, GATEWAY_ID)
        assert caught.value.code == "bad_clearing_report"
        r = httpx.get(gw.url + "/v1/admin/reconciliation", headers={"X-Admin-Token": ADMIN_TOKEN})
        assert r.status_code == 503
        assert r.json()["error"] == "bad_clearing_report"
        assert why in r.json()["reason"] and GATEWAY_ID in r.json()["reason"]
    finally:
        gw.server.stop()
        liar.stop()
    assert outcomes(gateway) == before
