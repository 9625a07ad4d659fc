"""A clearing service (or its database) that lies about what it accepted: reconciliation
must never read MATCHED when clearing's records differ from what this gateway posted, and
never compare a report for another gateway or day as if it were ours."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import Unavailable
from gateway.forwarder import Forwarder
from gateway.reconcile import reconcile
from terminal.uplink import GatewayClient, Uplink
from tests.adversarial.test_hostile_validator import genuine_ec_record, qr_rides, upload_kind
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


SETTLED_COLUMNS = ("operator_id", "issuer_id", "card_serial", "business_day")


def settled_columns(tmp_path: Path, key: str) -> dict[str, str]:
    """The columns clearing booked ``key`` under (its file, read behind its back)."""
    con = sqlite3.connect(tmp_path / "clearing.db")
    try:
        row = con.execute(
            f"SELECT {', '.join(SETTLED_COLUMNS)} FROM cleared WHERE key = ?", (key,)
        ).fetchone()
    finally:
        con.close()
    return dict(zip(SETTLED_COLUMNS, row, strict=True))


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
        {"key": keys[2], "what": "changed", "fields": ["amount settled"],
         "settled": ["settled 200 fen, the record says 300"]},
        {"key": keys[3], "what": "changed", "fields": ["amount settled"],
         "settled": ["settled 500 fen, the record says 400"]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("column", "which", "said"),
    [
        ("operator_id", 0, "settled to operator"),
        ("issuer_id", 1, "charged to issuer"),
        ("business_day", 2, "settled on business day"),
        ("card_serial", 3, "settled against card"),
    ],
)
def test_a_record_moved_in_a_settled_column_only_is_named(
    gateway, clearing, tmp_path, clock, column, which, said
):
    """Clearing settles on its own operator, issuer, card and business day columns, derived
    from the body when it booked the record. One of them changed while the body stays as
    posted (the sale paid to another operator, charged to the other card's issuer or to
    the other card, settled on the next day) read MATCHED: count, amount and bodies agree.
    Reconciliation names the record, the column, and what clearing settled against what
    the record says."""
    keys = cleared_traffic(gateway, clearing, tmp_path, clock)
    before, totals = outcomes(gateway), clearing.settlement()["totals"]
    true = settled_columns(tmp_path, keys[which])[column]
    if column == "business_day":
        moved = (date.fromisoformat(true) + timedelta(days=1)).isoformat()
    elif column == "operator_id":
        moved = "rival-metro"
    else:  # the issuer of the first sale's card, or the card of the third sale
        moved = settled_columns(tmp_path, keys[which - 1 if column == "card_serial" else 0])[column]
    assert moved != true  # the two cards have different issuers and serials
    tamper(tmp_path, (f"UPDATE cleared SET {column} = ? WHERE key = ?", (moved, keys[which])))
    report = reconcile(gateway.db, clearing.url, GATEWAY_ID)
    assert report["matched"] is False
    (row,) = report["mismatches"]
    assert (row["terminal_id"], row["kind"]) == (TID, "purchase")
    assert (row["sent_count"], row["sent_amount"]) == (row["cleared_count"], row["cleared_amount"])
    assert row["differences"] == [
        {"key": keys[which], "what": "changed", "fields": [f"{column} settled"],
         "settled": [f"{said} {moved}, the record says {true}"]},
    ]  # fmt: skip
    assert "problem" not in row  # clearing's list adds up to its row: the column is the lie
    assert outcomes(gateway) == before
    assert clearing.settlement()["totals"] == totals


def test_an_ec_sale_and_a_ride_charged_to_each_others_issuer_are_named(
    gateway, clearing, psam, clock, tmp_path
):
    """An EC sale is charged to its EMV issuer (the PAN's BIN) against the PAN, a ride to its
    issuing platform against the rider's account: the gateway derives both as clearing
    books them (MATCHED). Clearing's issuer columns swapped between the two, bodies as
    posted, read MATCHED; each record is named with the issuer it was charged to."""
    ec, (ride,) = genuine_ec_record(psam, clock, tmp_path), qr_rides(clock, tmp_path)
    for rec, kind, role in ((ec, "ec_purchase", "pos"), (ride, "qr_ride", "validator")):
        token = gateway.register(rec["terminal_id"], "metro", role=role)
        r = upload_kind(gateway, token, rec["terminal_id"], kind, [rec])
        assert r.status_code == 200, r.text
    assert Forwarder(gateway.db, clearing.url, gateway_id=GATEWAY_ID).drain() == 2
    assert reconcile(gateway.db, clearing.url, GATEWAY_ID)["matched"]
    ec_key, ride_key = f"E:{ec['terminal_id']}:{ec['ec_seq']}", f"Q:{ride['terminal_id']}:1"
    ec_bin, platform = f"EC{ec['pan'][:6]}", f"QR{ride['platform_code']}"
    assert [settled_columns(tmp_path, k)[c] for k in (ec_key, ride_key) for c in (
        "issuer_id", "card_serial"
    )] == [ec_bin, ec["pan"], platform, ride["user_account"]]  # fmt: skip
    before, totals = outcomes(gateway), clearing.settlement()["totals"]
    swap = "UPDATE cleared SET issuer_id = ? WHERE key = ?"
    tamper(tmp_path, (swap, (platform, ec_key)), (swap, (ec_bin, ride_key)))
    report = reconcile(gateway.db, clearing.url, GATEWAY_ID)
    assert report["matched"] is False
    named = {m["kind"]: m["differences"] for m in report["mismatches"]}
    assert named == {
        "ec_purchase": [
            {"key": ec_key, "what": "changed", "fields": ["issuer_id settled"],
             "settled": [f"charged to issuer {platform}, the record says {ec_bin}"]}
        ],
        "qr_ride": [
            {"key": ride_key, "what": "changed", "fields": ["issuer_id settled"],
             "settled": [f"charged to issuer {ec_bin}, the record says {platform}"]}
        ],
    }  # fmt: skip
    assert outcomes(gateway) == before
    assert clearing.settlement()["totals"] == totals


def test_a_report_or_page_without_the_settled_columns_is_refused(
    gateway, clearing, tmp_path, clock
):
    """A clearing whose digests do not say they cover the settled columns (one that still
    digests key, amount and body alone), or whose record list leaves a settled column out,
    cannot be compared column by column: every row would differ, or a moved record would
    go unnamed. 503 ``bad_clearing_report`` saying what is missing; nothing moves."""
    keys = cleared_traffic(gateway, clearing, tmp_path, clock)
    tamper(tmp_path, ("UPDATE cleared SET operator_id = 'rival-metro' WHERE key = ?", (keys[0],)))
    before = outcomes(gateway)
    liar = LyingClearing(clearing.url)
    gw = start_gateway(gateway.db, clock, clearing_url=liar.url, gateway_id=GATEWAY_ID)
    try:
        liar.report = lambda doc: {k: v for k, v in doc.items() if k != "digest_covers"}
        r = httpx.get(gw.url + "/v1/admin/reconciliation", headers={"X-Admin-Token": ADMIN_TOKEN})
        assert r.status_code == 503
        assert r.json()["error"] == "bad_clearing_report"
        assert "digests cover" in r.json()["reason"] and "business_day" in r.json()["reason"]
        liar.report = lambda doc: doc
        liar.records = lambda page: {
            **page,
            "records": [
                {k: v for k, v in item.items() if k != "operator_id"} for item in page["records"]
            ],
        }
        with pytest.raises(Unavailable) as caught:
            reconcile(gateway.db, liar.url, GATEWAY_ID)
        assert caught.value.code == "bad_clearing_report"
        assert "settled columns" in caught.value.reason and keys[0] in caught.value.reason
    finally:
        gw.server.stop()
        liar.stop()
    assert outcomes(gateway) == before


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
