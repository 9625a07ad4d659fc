"""The kiosk runtime's request bodies: ``POST /pickup`` needs the holder's answer."""

from __future__ import annotations

import pytest

from terminal.runtime.kiosk import BadRequest, pickup_request


def test_a_pickup_request_carries_the_holders_answer() -> None:
    assert pickup_request({"holder": "11010519491231002x"}) == ("11010519491231002X", None)
    assert pickup_request({"holder": "110105194912310021", "pin": "1234"}) == (
        "110105194912310021",
        "1234",
    )
    with pytest.raises(BadRequest, match=r"holder .* is required"):
        pickup_request({})
    with pytest.raises(BadRequest, match="digits, the last may be X") as caught:
        pickup_request({"holder": "12345Y"})
    assert "12345Y" not in str(caught.value)
    with pytest.raises(BadRequest, match="unknown field"):
        pickup_request({"holder": "110105194912310021", "id_number": "x"})
