"""A validator or POS (or its token) lying in its uploads, and a card book asked to vouch for
what it uploaded (docs/security.md: uploads from terminals, replacement balance).

Each attack goes through the real uvicorn gateway on SQLite and PostgreSQL, with real
software cards, PSAM and clearing where clearing matters, and ends with the proof that
nothing was stored, cleared or carried.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import rotate_token
from gateway.cards import CarryRules
from gateway.forwarder import Forwarder
from gateway.reconcile import reconcile
from gateway.registry import SqliteCardRegistry
from simulators.emv_profiles import resident_card
from simulators.epurse_card import SoftEPurseCard
from terminal.cli.main import main
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig
from terminal.journal import Journal
from terminal.qr.checks import QrPolicy
from terminal.readers.sim import AFTER, SimReader
from terminal.record import QR_RIDE
from terminal.roles.debit import LoadInterrupted
from terminal.roles.kiosk import Kiosk
from terminal.roles.load_host import HttpLoadHost
from terminal.roles.onecard_pos import OneCardPos
from terminal.roles.registry import CardState
from terminal.roles.session import TerminalSession
from terminal.uplink import GatewayClient, GatewayRefused
from terminal.uplink.issuance import last_known_balance, push_issuance
from tests.conftest import FrozenClock
from tests.gateway_fixtures import GatewayServer, start_gateway
from tests.issuance_kit import VALID_ID
from tests.subsidy_kit import DESK, KIOSK_A, KIOSK_B, PEOPLE, Centre, card_for
from tests.terminal.roles.fleet import CREDIT
from tests.traffic import JournaledTerminal

BUS = "310000000201"
ANOTHER_ISSUER = "1000000000000002"


@pytest.fixture
def gw(db, clock) -> Iterator[GatewayServer]:
    """A gateway on the test's clock, giving a lost card's balance without waiting."""
    server = start_gateway(db, clock, carry=CarryRules(settling=timedelta(0), clock=clock))
    yield server
    server.server.stop()


def upload(gw: GatewayServer, token: str, tid: str, records: list[dict[str, Any]], batch: str):
    return httpx.post(
        gw.url + "/v1/batches",
        json={"batch_id": batch, "terminal_id": tid, "records": records},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def rows(gw: GatewayServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with gw.db.tx() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


class Rider:
    """A card of the book: topped up 50 yuan at a kiosk through the gateway, then ridden on
    a bus whose validator uploads with its own token."""

    def __init__(self, gw: GatewayServer, clock: FrozenClock, tmp_path: Path):
        self.gw, self.clock = gw, clock
        self.centre = Centre(gw, clock)
        (self.record,) = self.centre.issue(PEOPLE[:1])
        self.card = card_for(self.record)
        kiosk, _ = self.centre.kiosk(card=self.card)
        kiosk.top_up(5_000)
        self.bus = JournaledTerminal(BUS, tmp_path / "bus.db", clock)
        self.token = gw.register(BUS, "bus-co", role="validator")

    @property
    def number(self) -> str:
        return self.record.card_number

    def ride(self, *amounts: int) -> list[dict[str, Any]]:
        out = []
        for amount in amounts:
            self.clock.advance(minutes=2)
            out.append(self.bus.tap(self.card, amount).upload_record())
        return out

    def report_lost(self) -> None:
        self.centre.registry.report_lost(self.number)
        push_issuance(self.centre.desk, self.centre.registry.export)

    def balance(self) -> dict[str, Any]:
        found = last_known_balance(self.centre.desk, self.number)
        assert found is not None
        return found

    def refused(self) -> GatewayRefused:
        with pytest.raises(GatewayRefused) as exc:
            last_known_balance(self.centre.desk, self.number)
        return exc.value

    def assert_nothing_carried(self) -> None:
        """The lost card is still lost in the book and no desk load was ever asked for."""
        book = self.centre.registry.get(self.number)
        assert book.state == CardState.LOST and book.replaced_by is None
        assert rows(self.gw, "SELECT COUNT(*) FROM loads WHERE terminal_id = ?", DESK) == [(0,)]

    def close(self) -> None:
        self.bus.close()
        self.centre.close()


@pytest.fixture
def rider(gw, clock, tmp_path) -> Iterator[Rider]:
    r = Rider(gw, clock, tmp_path)
    yield r
    r.close()


def forged_suspect(serial: str, issuer: str, seq: int) -> dict[str, Any]:
    """A validator's made-up row for someone else's card: no TAC, a fat balance, year 2099."""
    return {
        "terminal_id": BUS,
        "terminal_seq": seq,
        "issuer_id": issuer,
        "card_serial": serial,
        "txn_type": 6,
        "amount": 0,
        "balance_before": 99_999,
        "card_atc": 7,
        "key_version": 1,
        "algorithm": 0,
        "txn_time": "2099-01-01T00:00:00",
        "state": "suspect",
        "tac": None,
        "mac2": None,
        "mac2_verified": None,
        "resolution": None,
        "context": {},
    }


# -- the replacement balance ---------------------------------------------------------------
def test_honest_history_gives_the_exact_balance_to_carry(rider, gw, clearing):
    """Load + purchases with verified TACs (two cleared, one checked by the gateway's HSM)."""
    recs = rider.ride(300, 450)
    assert upload(gw, rider.token, BUS, recs, "b1").status_code == 200
    assert Forwarder(gw.db, clearing.url).drain() == 3  # the kiosk load and both purchases
    last = rider.ride(120)
    assert upload(gw, rider.token, BUS, last, "b2").status_code == 200  # not cleared yet
    rider.report_lost()
    found = rider.balance()
    assert (found["balance_fen"], rider.card.balance) == (4_130, 4_130)
    assert found["anchor"]["kind"] == "load" and found["anchor"]["balance_fen"] == 5_000
    assert [p["amount"] for p in found["purchases"]] == [300, 450, 120]


def test_forged_suspect_row_gives_no_balance(rider, gw):
    rider.ride(300)
    honest = [r.upload_record() for r in rider.bus.journal.export()]
    assert upload(gw, rider.token, BUS, honest, "b1").status_code == 200
    forged = forged_suspect(
        rider.record.serial.hex().upper(), rider.record.issuer_id.hex().upper(), 99
    )
    assert upload(gw, rider.token, BUS, [forged], "b2").status_code == 200  # looks well-formed
    rider.report_lost()
    refused = rider.refused()
    assert (refused.status, refused.code) == (409, "balance_unproven")
    assert f"terminal {BUS} seq 99 is a suspect record" in refused.reason
    assert "2099-01-01T00:00:00, in the future" in refused.reason
    rider.assert_nothing_carried()


def test_inflated_balance_before_on_a_genuine_purchase_is_inconsistent(rider, gw, clearing):
    (rec,) = rider.ride(300)
    rec["balance_before"] = 9_000  # the TAC does not cover it, so clearing accepts it
    assert upload(gw, rider.token, BUS, [rec], "b1").status_code == 200
    Forwarder(gw.db, clearing.url).drain()
    assert clearing.ledger.stats()["rejected"] == 0
    rider.report_lost()
    refused = rider.refused()
    assert (refused.status, refused.code) == (409, "balance_unproven")
    assert "claims 9000 fen before its debit, but the proven balance there is 5000" in (
        refused.reason
    )
    rider.assert_nothing_carried()


def test_a_gap_in_the_offline_counter_gives_no_balance(rider, gw):
    recs = rider.ride(100, 200, 300)
    assert upload(gw, rider.token, BUS, [recs[0], recs[2]], "b1").status_code == 200
    rider.report_lost()
    refused = rider.refused()
    assert refused.code == "balance_unproven"
    gap = f"has offline counter {recs[2]['card_atc']} after {recs[0]['card_atc']}: a gap"
    assert gap in refused.reason
    rider.assert_nothing_carried()


def test_a_future_dated_purchase_gives_no_balance(rider, gw, clock, tmp_path):
    """A terminal whose clock runs two days ahead: the card signs the date, it is still not
    a date the gateway can believe."""
    ahead = FrozenClock(clock.now + timedelta(days=2))
    fast = JournaledTerminal("310000000202", tmp_path / "fast.db", ahead)
    rec = fast.tap(rider.card, 300).upload_record()
    fast.close()
    token = gw.register("310000000202", "bus-co", role="validator")
    assert upload(gw, token, "310000000202", [rec], "b1").status_code == 200
    rider.report_lost()
    refused = rider.refused()
    assert refused.code == "balance_unproven" and "in the future" in refused.reason
    assert rec["txn_time"] in refused.reason
    rider.assert_nothing_carried()


def test_a_record_of_another_issuer_is_not_counted(rider, gw):
    recs = rider.ride(300)
    assert upload(gw, rider.token, BUS, recs, "b1").status_code == 200
    foreign = forged_suspect(rider.record.serial.hex().upper(), ANOTHER_ISSUER, 99)
    assert upload(gw, rider.token, BUS, [foreign], "b2").status_code == 200
    rider.report_lost()
    found = rider.balance()
    assert found["balance_fen"] == rider.card.balance == 4_700
    assert found["purchases"] == [{"terminal_id": BUS, "terminal_seq": 1, "amount": 300}]


def test_a_purchase_dated_before_the_load_it_followed_is_caught(rider, gw, clock, tmp_path):
    """A terminal (colluding with the holder) dates a purchase an hour before the top-up it
    followed, so that it falls out of the count while clearing still pays it."""
    behind = FrozenClock(clock.now - timedelta(hours=1))
    slow = JournaledTerminal("310000000202", tmp_path / "slow.db", behind)
    rec = slow.tap(rider.card, 300).upload_record()
    slow.close()
    assert rider.card.balance == 4_700
    token = gw.register("310000000202", "bus-co", role="validator")
    assert upload(gw, token, "310000000202", [rec], "b1").status_code == 200
    rider.report_lost()
    refused = rider.refused()
    assert refused.code == "balance_unproven"
    assert "spend 300 fen but load" in refused.reason and "found 0 of 0 fen left" in refused.reason
    assert "a purchase is dated before a load it followed" in refused.reason
    rider.assert_nothing_carried()


def test_an_unresolved_load_gives_no_balance(rider, gw):
    """A top-up torn after CREDIT FOR LOAD: the card holds it, the gateway cannot say so yet."""
    kiosk, reader = rider.centre.kiosk(KIOSK_B, card=rider.card)
    reader.tear_at_ins(CREDIT, AFTER)
    with pytest.raises(LoadInterrupted):
        kiosk.top_up(1_000)
    assert rider.card.balance == 6_000
    rider.report_lost()
    refused = rider.refused()
    assert refused.code == "balance_unproven" and "is not resolved" in refused.reason
    rider.assert_nothing_carried()


def test_a_card_in_use_or_just_lost_gives_no_balance(db, clock, tmp_path):
    """Before the loss report there is nothing to carry; after it, offline terminals have the
    settling period to upload the card's last debits."""
    gw = start_gateway(db, clock, carry=CarryRules(settling=timedelta(hours=1), clock=clock))
    rider = Rider(gw, clock, tmp_path)
    try:
        refused = rider.refused()
        assert (refused.status, refused.code) == (409, "card_in_use")
        rider.report_lost()
        refused = rider.refused()
        assert (refused.status, refused.code) == (409, "balance_settling")
        assert "offline transactions may still arrive; try after" in refused.reason
        rider.assert_nothing_carried()
    finally:
        rider.close()
        gw.server.stop()


OLD = "3100029000010000001"  # the first card ``ykt issue`` makes


@pytest.fixture
def desk(db, tmp_path, monkeypatch) -> Iterator[tuple[GatewayServer, list[str]]]:
    """A gateway on the real clock and a desk (``ykt issue`` in ``tmp_path``) that issued
    card OLD and pushed it; yields the gateway and the desk's ``--gateway`` arguments."""
    gw = start_gateway(db, carry=CarryRules(settling=timedelta(0)))
    monkeypatch.chdir(tmp_path)
    at = ["--gateway", gw.url, "--token", gw.register(DESK, "card-centre", role="issuance")]
    try:
        issue = ["issue", "--name", "张三", "--id-number", VALID_ID, "--out", "old.json"]
        assert main([*issue, *at]) == 0
        yield gw, at
    finally:
        gw.server.stop()


def test_replacement_at_the_desk_carries_nothing_after_a_forged_row(desk, capsys):
    """``ykt issue --replace`` against a gateway holding a validator's forged row: the reason
    is printed, the exit code is 1, no card is made and nothing is loaded."""
    gw, at = desk
    old = SoftEPurseCard.load("old.json")
    forged = forged_suspect(old.serial.hex().upper(), old.issuer_id.hex().upper(), 1)
    bus_token = gw.register(BUS, "bus-co", role="validator")
    assert upload(gw, bus_token, BUS, [forged], "b1").status_code == 200
    capsys.readouterr()
    rc = main(["issue", "--replace", OLD, "--out", "new.json", *at])
    err = capsys.readouterr().err
    assert rc == 1 and "nothing is carried" in err and "in the future" in err
    assert not Path("new.json").exists()
    book = SqliteCardRegistry("ykt-cards.db")
    assert book.get(OLD).state == CardState.LOST and book.get(OLD).replaced_by is None
    assert [r["card_number"] for r in book.export(0)] == [OLD]
    book.close()
    assert rows(gw, "SELECT COUNT(*) FROM loads") == [(0,)]


def test_replacement_at_the_desk_carries_the_proven_balance(desk, tmp_path, capsys):
    """The honest path through ``ykt issue --replace``: loaded at a kiosk, ridden, replaced."""
    gw, at = desk
    old = SoftEPurseCard.load("old.json")
    token = gw.register(KIOSK_A, "card-centre", role="kiosk")
    with GatewayClient(gw.url, token) as kc, Journal(tmp_path / "kiosk.db") as journal:
        kiosk = Kiosk(
            TerminalSession(SimReader(old)),
            HttpLoadHost(kc),
            bytes.fromhex(KIOSK_A),
            journal=journal,
        )
        kiosk.top_up(5_000)
    later = FrozenClock(datetime.now().replace(microsecond=0) + timedelta(minutes=1))
    bus = JournaledTerminal(BUS, tmp_path / "bus.db", later)
    rec = bus.tap(old, 300).upload_record()
    bus.close()
    bus_token = gw.register(BUS, "bus-co", role="validator")
    assert upload(gw, bus_token, BUS, [rec], "b1").status_code == 200
    capsys.readouterr()
    rc = main(["issue", "--replace", OLD, "--out", "new.json", "--json", *at])
    out = capsys.readouterr().out
    result = json.loads(out)
    assert rc == 0 and result["carried_fen"] == 4_700 and result["balance_fen"] == 4_700
    assert SoftEPurseCard.load("new.json").balance == 4_700


# -- what a terminal may upload ------------------------------------------------------------
@pytest.mark.parametrize("role", ["kiosk", "issuance"])
def test_kiosk_or_desk_token_cannot_upload_purchases(gw, clock, tmp_path, role):
    tid = "310000000090"
    token = gw.register(tid, "card-centre", role=role)
    term = JournaledTerminal(tid, tmp_path / "j.db", clock)
    rec = term.tap(card_for_number(1), 300).upload_record()
    term.close()
    r = upload(gw, token, tid, [rec], "b1")
    assert r.status_code == 403 and r.json()["error"] == "wrong_role"
    assert (
        f"is a {role}; purchase records are uploaded only by pos or validator"
        in (r.json()["reason"])
    )
    assert (gw.count("txn"), gw.count("outbox"), gw.count("batches")) == (0, 0, 0)


def test_a_stolen_token_stops_at_its_revocation_and_rotation(gw, clock, tmp_path):
    """A token that has just authenticated uploads (so any lookup path is warm) is refused on
    the very next request once the operator revokes the terminal, and its old value stays
    refused after a rotation: token lookups read the last commit, nothing caches them."""
    tid = "310000000091"
    token = gw.register(tid, "bus-co", role="validator")
    term = JournaledTerminal(tid, tmp_path / "j.db", clock)
    recs = [term.tap(card_for_number(1), 100 + i).upload_record() for i in range(3)]
    term.close()
    assert upload(gw, token, tid, recs[:1], "b1").status_code == 200
    admin = {"X-Admin-Token": "test-admin-token"}
    assert httpx.post(f"{gw.url}/v1/admin/terminals/{tid}/revoke", headers=admin).is_success
    r = upload(gw, token, tid, recs[1:2], "b2")
    assert r.status_code == 403 and r.json()["error"] == "revoked"
    assert r.json()["reason"] == f"terminal {tid} is revoked"
    new_token = rotate_token(gw.db, tid)  # the operator's `ykt gateway terminal rotate`
    r = upload(gw, token, tid, recs[2:], "b3")
    assert r.status_code == 401 and r.json()["reason"] == "unknown terminal credentials"
    assert (gw.count("txn"), gw.count("outbox"), gw.count("batches")) == (1, 1, 1)
    assert upload(gw, new_token, tid, recs[1:], "b4").status_code == 200


def card_for_number(n: int) -> SoftEPurseCard:
    from simulators.profiles import demo_card

    return demo_card(n, balance=10_000)


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("balance_before", 200, "amount 300 is more than the balance before 200"),
        ("balance_before", 100_001, "balance_before 100001 out of range 0..100000"),
        # an unhashable state once reached a set lookup and answered 500
        ("state", ["settled"], "state must be 'settled' or 'suspect'"),
        ("state", {"settled": True}, "state must be 'settled' or 'suspect'"),
    ],
)
def test_a_record_no_purse_could_make_is_refused(gw, clock, tmp_path, field, value, why):
    token = gw.register(BUS, "bus-co", role="validator")
    term = JournaledTerminal(BUS, tmp_path / "j.db", clock)
    honest = term.tap(card_for_number(1), 100).upload_record()
    rec = term.tap(card_for_number(2), 300).upload_record()
    term.close()
    rec[field] = value
    r = upload(gw, token, BUS, [honest, rec], "b1")
    assert r.status_code == 422 and r.json()["error"] == "invalid_record"
    assert why in r.json()["reason"] and "record 1" in r.json()["reason"]
    assert (gw.count("txn"), gw.count("outbox"), gw.count("batches")) == (0, 0, 0)


# -- reconciliation ----------------------------------------------------------------------------
def test_reconciliation_after_a_forged_tac_is_not_matched(gw, clearing, clock, tmp_path):
    token = gw.register(BUS, "bus-co", role="validator")
    term = JournaledTerminal(BUS, tmp_path / "j.db", clock)
    recs = [term.tap(card_for_number(i), 200).upload_record() for i in (1, 2, 3)]
    term.close()
    recs[1]["tac"] = "DEADBEEF"
    assert upload(gw, token, BUS, recs, "b1").status_code == 200
    Forwarder(gw.db, clearing.url, gateway_id="gw-test").drain()
    report = reconcile(gw.db, clearing.url, "gw-test")
    assert report["matched"] is False
    (rejected,) = report["rejected"]
    assert (rejected["kind"], rejected["terminal_id"], rejected["terminal_seq"]) == (
        "purchase",
        BUS,
        recs[1]["terminal_seq"],
    )
    assert "TAC does not verify" in rejected["reason"] and rejected["amount"] == 200
    # the two sides agree on what was accepted; the forged record was paid to nobody
    assert [(r["sent_count"], r["cleared_count"]) for r in report["rows"]] == [(2, 2)]
    assert clearing.settlement()["totals"]["purchase_amount"] == 400


# -- Electronic Cash sales ---------------------------------------------------------------------
def genuine_ec_record(psam: Any, clock: Any, tmp_path: Path) -> dict[str, Any]:
    """One real EC sale at a one-card POS (software resident card, real kernel): its upload."""
    card = resident_card(1, ec_balance=5_000, ep_balance=5_000)
    session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    session.start()
    with Journal(tmp_path / "ec-pos.db") as journal:
        pos = OneCardPos(
            session, journal, TerminalConfig(trust_test_keys=True), CaKeyStore.builtin()
        )
        sale = pos.charge(1_200)
        assert sale.ec_row is not None
        return sale.ec_row.upload_record()


def upload_kind(gw: GatewayServer, token: str, tid: str, kind: str, records: list[Any]):
    return httpx.post(
        gw.url + "/v1/batches",
        json={"batch_id": f"ec-{kind}", "terminal_id": tid, "kind": kind, "records": records},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_an_ec_sale_with_a_forged_cryptogram_is_rejected_and_listed(
    gw, clearing, psam, clock, tmp_path
):
    """A POS that invents an EC sale (its own TC, all other fields consistent) gets it stored,
    since the gateway holds no EMV keys; clearing recomputes the TC and refuses it, pays
    nothing, and reconciliation lists it."""
    rec = genuine_ec_record(psam, clock, tmp_path)
    tid = rec["terminal_id"]
    token = gw.register(tid, "corner-shop", role="pos")
    forged = {**rec, "ec_seq": 2, "cryptogram": "0123456789ABCDEF"}
    r = upload_kind(gw, token, tid, "ec_purchase", [rec, forged])
    assert r.status_code == 200, r.text
    assert [a["status"] for a in r.json()["acks"]] == ["stored", "stored"]
    fwd = Forwarder(gw.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 2 and fwd.stats.accepted == 1 and fwd.stats.rejected == 1
    (rej,) = clearing.ledger.rejections()
    assert rej["key"] == f"E:{tid}:2" and "TC does not verify" in rej["reason"]
    report = reconcile(gw.db, clearing.url, "gw-test")
    assert not report["matched"]
    (listed,) = report["rejected"]
    assert (listed["kind"], listed["ec_seq"], listed["amount"]) == ("ec_purchase", 2, 1_200)
    assert "TC does not verify" in listed["reason"]
    totals = clearing.settlement()["totals"]
    assert (totals["ec_sales"], totals["ec_amount"]) == (1, 1_200)  # the genuine sale only


@pytest.mark.parametrize("role", ["kiosk", "validator"])
def test_ec_records_from_a_terminal_that_takes_no_ec_are_refused(gw, psam, clock, tmp_path, role):
    """Only a merchant POS takes Electronic Cash: a kiosk or validator token uploading EC
    sales is refused before anything is stored."""
    rec = genuine_ec_record(psam, clock, tmp_path)
    tid = rec["terminal_id"]
    token = gw.register(tid, "bus-co", role=role)
    r = upload_kind(gw, token, tid, "ec_purchase", [rec])
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "wrong_role"
    assert f"is a {role}" in r.json()["reason"] and "pos" in r.json()["reason"]
    assert gw.count("ec_txn") == 0 and gw.count("outbox") == 0 and gw.count("batches") == 0


# -- rides paid by QR codes ----------------------------------------------------------------------
def qr_rides(clock: FrozenClock, tmp_path: Path, n: int = 1, **app: Any) -> list[dict[str, Any]]:
    """``n`` real rides at a bus validator (software ride-code app, accounts 1..n): uploads."""
    from simulators.qr_app import RideCodeApp
    from tests.terminal.qr.kit import QrBus

    bus = QrBus(tmp_path / "qr-bus.db", clock, RideCodeApp(**app))
    for account in range(1, n + 1):
        assert bus.scan(bus.code(account=account)).green
    return [row.upload_record() for row in bus.journal.export_qr()]


def qr_held(gw: GatewayServer) -> tuple[int, int, int]:
    return gw.count("qr_txn"), gw.count("outbox"), gw.count("batches")


def test_qr_rides_from_a_pos_token_are_refused(gw, clock, tmp_path):
    """Ride codes are taken at validators: a POS token uploading QR rides is refused before
    anything is stored."""
    recs = qr_rides(clock, tmp_path)
    tid = recs[0]["terminal_id"]
    token = gw.register(tid, "corner-shop", role="pos")
    r = upload_kind(gw, token, tid, "qr_ride", recs)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "wrong_role"
    assert "is a pos" in r.json()["reason"] and "validator" in r.json()["reason"]
    assert qr_held(gw) == (0, 0, 0)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"amount": 5_001},
            "over-ride-limit: fare ¥50.01 is above the code's per-ride limit ¥50.00",
        ),
        ({"platform_code": "20000002"}, "platform_code is not the code's"),
        ({"user_account": "00000000000000000002"}, "user_account is not the code's"),
    ],
    ids=["over-limit", "other-platform", "other-account"],
)
def test_a_ride_the_code_does_not_back_is_refused_at_ingest(gw, clock, tmp_path, change, reason):
    """A validator charging more than the code allows, or booking the ride to a platform or
    account the code does not name, is refused whole: the code in the record says otherwise."""
    (rec,) = qr_rides(clock, tmp_path)
    tid = rec["terminal_id"]
    token = gw.register(tid, "bus-co", role="validator")
    r = upload_kind(gw, token, tid, "qr_ride", [{**rec, **change}])
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_record" and reason in r.json()["reason"]
    assert qr_held(gw) == (0, 0, 0)


def test_a_ride_whose_code_does_not_verify_is_rejected_at_clearing(gw, clearing, clock, tmp_path):
    """A validator journaling rides from codes a forger's own root CA signed (same root index,
    every field consistent) gets them stored, since the gateway holds no root keys; clearing
    re-verifies the chain, books nothing and reconciliation lists the ride."""
    from simulators.qr_app import RootCA

    forged = RootCA(private_key=bytes.fromhex("11" * 32))
    (rec,) = qr_rides(clock, tmp_path, root=forged)
    tid = rec["terminal_id"]
    token = gw.register(tid, "bus-co", role="validator")
    r = upload_kind(gw, token, tid, "qr_ride", [rec])
    assert r.status_code == 200, r.text
    fwd = Forwarder(gw.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 1 and fwd.stats.rejected == 1
    (rej,) = clearing.ledger.rejections()
    assert rej["key"] == f"Q:{tid}:1"
    assert "certificate-signature" in rej["reason"] and "not signed by root key 01" in rej["reason"]
    (listed,) = reconcile(gw.db, clearing.url, "gw-test")["rejected"]
    assert (listed["kind"], listed["qr_seq"], listed["amount"]) == ("qr_ride", 1, 200)
    assert "qr_rides" not in clearing.settlement()["totals"]
    assert clearing.ledger.stats()["accepted"] == 0


def test_a_replayed_qr_batch_is_refused_and_booked_once(gw, clearing, clock, tmp_path):
    """The same batch id with other content, and the same codes resent as new rides (new
    sequence numbers, new batch id), are refused; the rides are stored and booked once."""
    recs = qr_rides(clock, tmp_path, n=2)
    tid = recs[0]["terminal_id"]
    token = gw.register(tid, "bus-co", role="validator")
    first = upload_kind(gw, token, tid, "qr_ride", recs)
    assert [a["status"] for a in first.json()["acks"]] == ["stored", "stored"], first.text
    assert [a["qr_seq"] for a in first.json()["acks"]] == [1, 2]

    other = upload_kind(gw, token, tid, "qr_ride", recs[:1])  # same batch id, other body
    assert other.status_code == 409 and other.json()["error"] == "batch_replayed", other.text

    again = [{**rec, "qr_seq": rec["qr_seq"] + 10} for rec in recs]
    r = httpx.post(
        gw.url + "/v1/batches",
        json={"batch_id": "again", "terminal_id": tid, "kind": "qr_ride", "records": again},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 409 and r.json()["error"] == "code_hash_held", r.text
    assert "a ride code pays one ride" in r.json()["reason"] and "qr_seq 1" in r.json()["reason"]
    twice = upload_kind(gw, token, tid, "qr_ride", [recs[0], {**recs[0], "qr_seq": 11}])
    assert twice.status_code == 422 and "appears twice" in twice.json()["reason"], twice.text
    assert qr_held(gw) == (2, 2, 1)

    fwd = Forwarder(gw.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == 2 and fwd.stats.accepted == 2
    totals = clearing.settlement()["totals"]
    assert (totals["qr_rides"], totals["qr_amount"]) == (2, 400)


RACED_RIDES = 60  # rides in each of two batches: long enough for their transactions to overlap


def test_the_same_code_from_two_validators_at_once_is_stored_once(gw, clearing, clock, tmp_path):
    """Two validators (two tokens, two gateway connections) upload batches at the same moment
    that both hold one captured code: one batch checks it first, the other last, so each
    check runs before the other batch commits. The database holds the code once; the batch
    that commits second is refused whole with the same reason as one sent later, and
    clearing books each ride once."""
    recs = qr_rides(clock, tmp_path, n=2 * RACED_RIDES - 1)
    code, first, second = recs[0], recs[0]["terminal_id"], "3100000002FF"
    batches = {
        first: recs[:RACED_RIDES],  # the code first
        second: [{**rec, "terminal_id": second} for rec in [*recs[RACED_RIDES:], code]],
    }
    tokens = {tid: gw.register(tid, "bus-co", role="validator") for tid in batches}
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def send(tid: str) -> None:
        start.wait()
        answers[tid] = upload_kind(gw, tokens[tid], tid, "qr_ride", batches[tid])

    threads = [threading.Thread(target=send, args=(tid,)) for tid in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in answers.values())
    assert statuses == [200, 409], {tid: r.text for tid, r in answers.items()}
    (lost,) = (r for r in answers.values() if r.status_code == 409)
    assert lost.json()["error"] == "code_hash_held", lost.text
    assert "a ride code pays one ride" in lost.json()["reason"], lost.text
    assert qr_held(gw) == (RACED_RIDES, RACED_RIDES, 1)
    held = rows(gw, "SELECT COUNT(DISTINCT code_hash), COUNT(DISTINCT terminal_id) FROM qr_txn")
    assert held == [(RACED_RIDES, 1)]
    fwd = Forwarder(gw.db, clearing.url, gateway_id="gw-test")
    assert fwd.drain() == fwd.stats.accepted == RACED_RIDES
    totals = clearing.settlement()["totals"]
    assert (totals["qr_rides"], totals["qr_amount"]) == (RACED_RIDES, 200 * RACED_RIDES)


@pytest.mark.parametrize(
    ("shift", "why"),
    [
        (timedelta(hours=1), "code generated 3600 s ago, valid 60 s"),
        (timedelta(seconds=61), "code generated 61 s ago, valid 60 s"),
        (timedelta(minutes=-5), "generated 300 s in the future (clock skew allowed 20 s)"),
    ],
    ids=["an-hour-later", "just-expired", "before-it-existed"],
)
def test_a_ride_dated_outside_its_codes_validity_is_refused(
    gw, clearing, clock, tmp_path, shift, why
):
    """A hostile operator keeps a captured code and books it as a ride at another time: the
    gateway refuses the batch and clearing, offered the record by a gateway of its own,
    books nothing; the same ride at its real time clears."""
    (rec,) = qr_rides(clock, tmp_path)
    tid = rec["terminal_id"]
    moved = {**rec, "txn_time": (datetime.fromisoformat(rec["txn_time"]) + shift).isoformat()}
    token = gw.register(tid, "bus-co", role="validator")
    r = upload_kind(gw, token, tid, "qr_ride", [moved])
    assert (r.status_code, r.json()["error"]) == (422, "invalid_record"), r.text
    assert why in r.json()["reason"], r.text
    assert qr_held(gw) == (0, 0, 0)
    offered = [QR_RIDE.clearing_record(x, "bus-co") for x in (moved, rec)]
    answer = httpx.post(
        clearing.url + "/v1/records", json={"gateway_id": "rogue", "records": offered}, timeout=30
    )
    assert [x["status"] for x in answer.json()["results"]] == ["rejected", "accepted"]
    assert why in answer.json()["results"][0]["reason"], answer.text
    totals = clearing.settlement()["totals"]
    assert (totals["qr_rides"], totals["qr_amount"]) == (1, 200)


@pytest.mark.parametrize(
    ("policy", "shift", "why"),
    [
        (
            QrPolicy(future_skew=5),
            timedelta(seconds=-15),
            "generated 15 s in the future (clock skew allowed 5 s)",
        ),
        (QrPolicy(max_validity=30), timedelta(0), "validity 60 s is above the 30 s allowed"),
    ],
    ids=["skew", "validity"],
)
def test_the_gateway_checks_ride_times_by_the_deployments_policy(
    db, clearing, clock, tmp_path, policy, shift, why
):
    """The deployment allows 5 s of clock skew (or codes valid 30 s at most), as its clearing
    does. A validator booking a ride 15 s before its code existed (inside the default 20 s),
    or taking a code that claims 60 s, is refused at ingest with the deployment's numbers:
    nothing stored or forwarded, where a gateway on the defaults took it for clearing to
    reject."""
    server = start_gateway(db, clock, qr=policy)
    try:
        (rec,) = qr_rides(clock, tmp_path)
        tid = rec["terminal_id"]
        moved = {**rec, "txn_time": (datetime.fromisoformat(rec["txn_time"]) + shift).isoformat()}
        token = server.register(tid, "bus-co", role="validator")
        r = upload_kind(server, token, tid, "qr_ride", [moved])
        assert (r.status_code, r.json()["error"]) == (422, "invalid_record"), r.text
        assert why in r.json()["reason"], r.text
        assert qr_held(server) == (0, 0, 0)
        assert Forwarder(server.db, clearing.url, gateway_id="gw-test").drain() == 0
        assert "qr_rides" not in clearing.settlement()["totals"]
    finally:
        server.server.stop()
