"""挂失 end to end: a loss reported at a kiosk goes to the gateway's hotlist, and a bus
validator refuses and blocks the card from its next hotlist sync on - not before."""

from __future__ import annotations

import pytest

from simulators.profiles import demo_psam
from terminal.apdu.errors import ApplicationBlocked
from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined
from terminal.fares import Mode, load_rules
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.kiosk_host import report_loss
from terminal.roles.session import TerminalSession
from terminal.roles.validator import Validator, ValidatorConfig
from terminal.uplink import GatewayClient, sync_local_hotlist
from tests.subsidy_kit import PEOPLE, Centre, card_for

BUS = "310000000201"


def test_a_card_reported_lost_at_a_kiosk_is_refused_after_the_next_hotlist_sync(
    gateway, clock, tmp_path
):
    centre = Centre(gateway, clock)
    lost, other = centre.issue(PEOPLE[:2])
    card, other_card = card_for(lost, balance=5_000), card_for(other, balance=5_000)
    reader = SimReader(name="bus")
    session = TerminalSession(reader, SimReader(demo_psam(BUS)), clock=clock)
    session.start()
    hotlist = Hotlist(tmp_path / "bus-hotlist.db")
    bus = Validator(
        session,
        Journal(tmp_path / "bus.db", clock=clock),
        hotlist,
        ValidatorConfig(mode=Mode.BUS, rules=load_rules(), line=b"\x00\x07"),
    )
    uplink = GatewayClient(gateway.url, gateway.register(BUS, "bus-co", role="validator"))

    def tap(c):  # type: ignore[no-untyped-def]
        clock.advance(minutes=10)
        reader.insert(c)
        return bus.tap()

    assert sync_local_hotlist(uplink, hotlist) == 0
    assert tap(card).green

    kiosk, _ = centre.kiosk()
    done = report_loss(kiosk.subsidies.client, lost.card_number, PEOPLE[0][1])  # type: ignore[union-attr]
    assert done["state"] == "lost" and done["hotlist_version"] == 1

    # offline-first: until it syncs, the validator does not know
    before = tap(card)
    assert before.green and card.balance == 5_000 - 2 * before.fare

    assert sync_local_hotlist(uplink, hotlist) == 1 and hotlist.version == 1
    assert lost.serial in hotlist and other.serial not in hotlist
    refused = tap(card)
    assert not refused.green and refused.message == "card reported lost: blocked"
    balance = card.balance
    with pytest.raises(ApplicationBlocked):  # blocked on the card itself, for every terminal
        reader.connect()
        session.run(flows.select())
    assert tap(card).message == "card blocked: refer to the service desk"
    assert card.balance == balance
    assert tap(other_card).green  # everybody else rides on

    # the gateway refuses to load the lost card at any kiosk, too
    kiosk_b, reader_b = centre.kiosk("310000000091", card=other_card)
    reader_b.insert(card)
    with pytest.raises((LoadDeclined, ApplicationBlocked)):
        kiosk_b.top_up(1_000)
    # a restarted validator keeps the version and the set (the hotlist is on disk)
    hotlist.close()
    again = Hotlist(tmp_path / "bus-hotlist.db")
    assert again.version == 1 and lost.serial in again
    assert sync_local_hotlist(uplink, again) == 1
    uplink.close()
    centre.close()
