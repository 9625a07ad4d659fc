"""What the desk clerk's screen may send: ``POST /issue`` and ``POST /replace`` bodies."""

from __future__ import annotations

from typing import Any

import pytest

from terminal.runtime.desk import BadRequest, issue_request, replace_request


def test_an_issue_request_gives_the_applicant_and_pin() -> None:
    applicant, pin = issue_request(
        {"name": " 张三 ", "id_number": "11010519491231002X", "card_kind": 2, "pin": "654321"}
    )
    assert (applicant.name, applicant.id_number, applicant.card_kind) == (
        "张三",
        "11010519491231002X",
        2,
    )
    assert (applicant.id_type, applicant.card_type, pin) == (0, 1, "654321")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([], "the body must be a JSON object"),
        ({"name": "张三"}, "id_number is required"),
        ({"name": "", "id_number": "1"}, "name is required"),
        ({"name": "a", "id_number": "1", "card_kind": 256}, "card_kind must be a number 0..255"),
        ({"name": "a", "id_number": "1", "card_kind": True}, "card_kind must be a number"),
        ({"name": "a", "id_number": "1", "pin": "12a4"}, "pin must be the new card's PIN"),
        ({"name": "a", "id_number": "1", "balance": 5}, "unknown field(s) balance"),
    ],
)
def test_a_bad_issue_request_says_what_is_wrong(body: Any, why: str) -> None:
    with pytest.raises(BadRequest, match=why.replace("(", r"\(").replace(")", r"\)")):
        issue_request(body)


def test_a_replace_request_names_the_lost_card_by_its_digits() -> None:
    assert replace_request({"card_number": "3100029000010000001"}) == (
        "3100029000010000001",
        None,
    )
    for number in ("31000290", "310002900001000000X", 3100029000010000001):
        with pytest.raises(BadRequest, match="card_number must be the lost card's 19 or 20"):
            replace_request({"card_number": number})
