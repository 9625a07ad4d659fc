"""The kiosk runtime's request bodies: ``POST /pickup`` needs the holder's answer."""

from __future__ import annotations

import pytest

from terminal.runtime.kiosk import BadRequest, pickup_request


def test_a_pickup_request_carries_the_holders_answer() -> None:
    assert pickup_request({"holder": "01001x"}) == ("01001X", None)
    assert pickup_request({"holder": "123456", "pin": "1234"}) == ("123456", "1234")
    with pytest.raises(BadRequest, match=r"holder .* is required"):
        pickup_request({})
    with pytest.raises(BadRequest, match="digits, the last may be X") as caught:
        pickup_request({"holder": "12345Y"})
    assert "12345Y" not in str(caught.value)
    with pytest.raises(BadRequest, match="unknown field"):
        pickup_request({"holder": "123456", "id_number": "x"})
