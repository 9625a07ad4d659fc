"""A taxi paid by a ride code: the meter's amount charged to the code's platform within its
per-ride limit, the driver and vehicle in the row, the same journal, upload and clearing as a
bus ride; over the limit or a code shown again, nothing is journaled."""

from __future__ import annotations

from gateway.auth import register_terminal
from gateway.forwarder import Forwarder
from simulators.qr_app import RideCodeApp
from terminal.journal import Journal
from terminal.qr.code import QrReason
from terminal.roles.transport.taxi import TaxiMeter
from terminal.uplink import GatewayClient, Uplink
from tests.gateway_fixtures import clearing, db, db_url, gateway, pg_cluster
from tests.terminal.qr.kit import TAXI_ID, qr_taxi

__all__ = ["clearing", "db", "db_url", "gateway", "pg_cluster"]


def test_a_code_pays_the_meter_and_is_cleared_under_its_platform(
    gateway, clearing, tmp_path, clock
):
    app = RideCodeApp()
    journal = Journal(tmp_path / "taxi.db", clock=clock)
    taxi = qr_taxi(journal, clock, app, meter=2_350)
    assert isinstance(taxi, TaxiMeter)

    r = taxi.scan(app.code(clock(), account=7))
    assert (r.green, r.fare, r.card_number) == (True, 2_350, "00000000000000000007")
    (row,) = journal.qr_rows()
    assert (row.amount, row["platform_code"], row.terminal_id) == (2_350, "20000001", TAXI_ID)
    ctx = row["context"]
    assert (ctx["mode"], ctx["driver"], ctx["vehicle"], ctx["ticket"]) == (
        "taxi",
        "D0042",
        "HU-A1234",
        "qr",
    )
    # the trip's amount is used once: the next code waits for the next trip
    clock.advance(seconds=30)
    again = taxi.scan(app.code(clock(), account=8))
    assert (again.green, again.message, len(journal.qr_rows())) == (
        False,
        "no fare on the meter",
        1,
    )

    token = register_terminal(gateway.db, TAXI_ID, "taxi-co", role="validator")
    client = GatewayClient(gateway.url, token)
    assert Uplink(journal, {TAXI_ID: client}, clock=clock).drain() == 1
    client.close()
    assert Forwarder(gateway.db, clearing.url, gateway_id="gw-test").drain() == 1
    doc = clearing.settlement()
    (platform,) = [i for i in doc["by_issuer"] if i["issuer_id"] == "QR20000001"]
    assert (platform["qr_rides"], platform["qr_amount"], doc["rejections"]) == (1, 2_350, 0)
    journal.close()


def test_a_meter_over_the_codes_limit_is_refused_and_nothing_journaled(tmp_path, clock):
    app = RideCodeApp()
    app.issuer().open_account(9, ride_limit=5_000)
    journal = Journal(tmp_path / "taxi.db", clock=clock)
    taxi = qr_taxi(journal, clock, app, meter=5_001)

    r = taxi.scan(app.code(clock(), account=9))
    assert (r.green, r.reason) == (False, QrReason.OVER_LIMIT)
    assert "above the code's per-ride limit" in r.message
    assert (journal.qr_rows(), journal.pending_upload()) == ([], 0)
    assert taxi.ride.meter == 5_001  # still to pay: the rider may pay by card instead

    taxi.set_meter(5_000)  # at the limit it pays
    clock.advance(seconds=5)
    assert taxi.scan(app.code(clock(), account=9)).green
    assert [row.amount for row in journal.qr_rows()] == [5_000]
    journal.close()


def test_a_code_shown_again_for_the_next_trip_is_refused(tmp_path, clock):
    app = RideCodeApp()
    journal = Journal(tmp_path / "taxi.db", clock=clock)
    taxi = qr_taxi(journal, clock, app, meter=1_800)
    raw = app.code(clock(), account=3)
    assert taxi.scan(raw).green

    clock.advance(seconds=30)  # the next trip ends within the code's validity
    taxi.set_meter(2_600)
    r = taxi.scan(raw)
    assert (r.green, r.reason) == (False, QrReason.REPLAY)
    assert [row.amount for row in journal.qr_rows()] == [1_800]
    assert taxi.ride.meter == 2_600  # the second trip is still unpaid
    journal.close()
