"""GB 11643 identity numbers: check character, birth dates, shapes, and masking."""

from datetime import date

import pytest

from terminal.identity import (
    IdNumberError,
    check_character,
    check_id_number,
    mask_id_number,
    mask_name,
)

VALID = ["11010519491231002X", "110101199003074514", "440304198512151233"]


@pytest.mark.parametrize("number", VALID)
def test_known_valid_numbers(number: str) -> None:
    assert check_id_number(number) == number


def test_the_standard_example_and_a_lowercase_x() -> None:
    assert check_character("11010519491231002") == "X"
    assert check_id_number("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("110105194912310021", "check character is 1, should be X"),
        ("11010519491231002", "18 characters"),
        ("1101051949123100211", "18 characters"),
        ("11010519491231002Y", "17 digits"),
        ("1101051949123100 X", "17 digits"),
        ("11010519490230002X", "does not exist"),
        ("11010518991231002X", "out of range"),
        ("99010519491231002X", "names no province"),
    ],
)
def test_known_invalid_numbers_say_why(number: str, reason: str) -> None:
    with pytest.raises(IdNumberError, match=reason):
        check_id_number(number)


def test_a_birth_date_in_the_future_is_refused() -> None:
    with pytest.raises(IdNumberError, match="out of range"):
        check_id_number("110105202701010016", today=date(2026, 11, 28))


def test_masking_rules() -> None:
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_id_number("110101199003071234") == "110101********1234"
    assert [mask_name(n) for n in ("张三丰", "李四", "欧阳小华", "王", "")] == [
        "张*丰",
        "李*",
        "欧**华",
        "*",
        "",
    ]
