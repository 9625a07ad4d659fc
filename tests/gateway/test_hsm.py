"""The host security module refuses what it cannot verify."""

from dataclasses import replace

import pytest

from terminal.epurse import flows
from terminal.epurse.host import LoadDeclined

KIOSK = bytes.fromhex("310000000090")


def test_confirm_rejects_wrong_tac(session, load_host) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    request = session.run(flows.prepare_load(info, KIOSK, 100, session.now()))
    auth = load_host.authorize_load(request)
    with pytest.raises(LoadDeclined, match="TAC"):
        load_host.confirm_load(request, auth, bytes(4))
    assert load_host.confirmed == []


def test_wrong_key_version_declined(session, hsm) -> None:  # type: ignore[no-untyped-def]
    info = session.run(flows.select())
    request = session.run(flows.prepare_load(info, KIOSK, 100, session.now()))
    with pytest.raises(LoadDeclined, match="key version"):
        hsm.load_mac2(replace(request, key_version=9))
