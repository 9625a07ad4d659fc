"""A card reported lost (挂失) in the hands of whoever found it: the hotlist refuses it at
every payment source, not only the T-Union purse (docs/security.md)."""

from __future__ import annotations

import pytest

from simulators.emv_profiles import resident_card
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import TerminalConfig
from terminal.hotlist import Hotlist
from terminal.journal import Journal
from terminal.readers.sim import SimReader
from terminal.roles.onecard_pos import OneCardPos, PaymentRule
from terminal.roles.pos import CardRefused
from terminal.roles.session import TerminalSession


@pytest.mark.parametrize("rule", ["ec", "ep", "auto"])
def test_a_lost_resident_card_pays_from_no_source(psam, clock, tmp_path, rule: str) -> None:  # type: ignore[no-untyped-def]
    card = resident_card(1, ec_balance=5_000, ep_balance=5_000)
    ep = card.app("epurse").card
    hotlist = Hotlist()
    hotlist.apply(1, added=[ep.serial])
    session = TerminalSession(SimReader(card), SimReader(psam), clock=clock)
    session.start()
    with Journal(tmp_path / "pos.db") as journal:
        pos = OneCardPos(
            session,
            journal,
            TerminalConfig(trust_test_keys=True),
            CaKeyStore.builtin(),
            PaymentRule.named(rule),
            hotlist=hotlist,
        )
        with pytest.raises(CardRefused, match="reported lost"):
            pos.charge(1_200)
        assert journal.rows() == [] and journal.pending_upload() == 0
    assert card.app("emv").ec_balance == 5_000 and ep.balance == 5_000
