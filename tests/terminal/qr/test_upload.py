"""QR rides leave the journal in the one upload order shared with card purchases, reach the
gateway's qr_txn table, and nothing waits behind them (a flush is not held up by rides)."""

from __future__ import annotations

from gateway.auth import register_terminal
from terminal.uplink import GatewayClient, Uplink
from tests.gateway_fixtures import db, db_url, gateway, pg_cluster
from tests.terminal.qr.kit import TERMINAL_ID, QrBus
from tests.traffic import JournaledTerminal, make_cards

__all__ = ["db", "db_url", "gateway", "pg_cluster"]


def test_rides_and_purchases_upload_in_journal_order(gateway, tmp_path, clock):
    path = tmp_path / "journal.db"
    bus = QrBus(path, clock)
    cards = JournaledTerminal(TERMINAL_ID, path, clock)
    taps = make_cards(2, balance=5_000)
    order = []
    for i, card in enumerate(taps, 1):
        clock.advance(seconds=30)
        order.append(("purchase", cards.tap(card, 200).terminal_seq))
        clock.advance(seconds=30)
        assert bus.scan(bus.code(account=i)).green
        order.append(("qr_ride", i))
    assert bus.journal.pending_upload() == 4

    token = register_terminal(gateway.db, TERMINAL_ID, "bus-co", role="validator")
    client = GatewayClient(gateway.url, token)
    sent: list[tuple[str, int]] = []
    up = Uplink(bus.journal, {TERMINAL_ID: client}, clock=clock)
    while batch := up.next_batch():
        sent += [(row.kind.name, row.seq) for row in batch]
        assert up.send_batch() == len(batch)
    client.close()

    # the kind whose oldest row is first goes first, a batch of its waiting rows
    assert sent == [o for o in order if o[0] == "purchase"] + [
        o for o in order if o[0] != "purchase"
    ]
    assert (bus.journal.pending_upload(), up.stats.stored) == (0, 4)
    assert (gateway.count("txn"), gateway.count("qr_txn"), gateway.count("outbox")) == (2, 2, 4)
    with gateway.db.tx() as cur:
        cur.execute("SELECT qr_seq, amount, platform_code FROM qr_txn ORDER BY qr_seq")
        assert [tuple(r) for r in cur.fetchall()] == [(1, 200, "20000001"), (2, 200, "20000001")]
    assert all(r.uploaded_at for r in bus.journal.export_qr(include_uploaded=True))
    cards.close()
