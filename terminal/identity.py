"""Resident identity numbers (GB 11643-1999, 公民身份号码) and masking for public listings.

An 18-character number: 6-digit address code, 8-digit birth date, 3-digit sequence and
one check character from ISO 7064 MOD 11-2 (weights 2^(17-i) mod 11, check value
(12 - sum mod 11) mod 11, with 10 written as X). The issuance desk checks applicants
with it; the subsidy roster checks every row with it.
"""

from __future__ import annotations

import re
from datetime import date

from terminal.apdu.errors import YikatongError
from terminal.text import TextError, code

ID_LENGTH = 18
WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
CHECK_CHARS = "10X98765432"  # index = weighted sum mod 11
EARLIEST_BIRTH = date(1900, 1, 1)
# Provinces, autonomous regions and municipalities (GB/T 2260 first two digits), plus 71
# Taiwan, 81 Hong Kong, 82 Macao and 83 (residence permits of Taiwan residents).
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]\Z", re.ASCII)


class IdNumberError(YikatongError, ValueError):
    """An identity number that is malformed, has an impossible birth date or a wrong check."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise IdNumberError("the check character is computed over 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def birth_date(number: str) -> date:
    """The birth date digits 7..14 as a date (IdNumberError if it is no real date)."""
    digits = number[6:14]
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise IdNumberError(f"birth date {digits} does not exist") from None


def check_id_number(text: str, *, today: date | None = None) -> str:
    """The number, normalised (NFKC, so full-width digits become ASCII; a lowercase x
    becomes X), or IdNumberError saying why not. Digits of other scripts are refused."""
    try:
        number = code(text, "ID number")
    except TextError as exc:
        raise IdNumberError(str(exc)) from None
    number = number.upper() if number.endswith("x") else number
    if len(number) != ID_LENGTH:
        raise IdNumberError(f"ID number must have 18 characters, has {len(number)}")
    if not _SHAPE.match(number):
        raise IdNumberError("ID number must be 17 digits and a digit or X")
    if int(number[:2]) not in PROVINCE_CODES:
        raise IdNumberError(f"address code {number[:6]} names no province")
    born = birth_date(number)
    if born < EARLIEST_BIRTH or born > (today or date.today()):
        raise IdNumberError(f"birth date {born.isoformat()} is out of range")
    expected = check_character(number[:17])
    if number[17] != expected:
        raise IdNumberError(f"check character is {number[17]}, should be {expected}")
    return number


def mask_id_number(number: str) -> str:
    """Publication form: the 6-digit address code and the last 4 characters stay, the 8
    characters between become * (110101********1234)."""
    if len(number) != ID_LENGTH:
        raise IdNumberError("only 18-character ID numbers are masked")
    return number[:6] + "*" * 8 + number[-4:]


def mask_name(name: str) -> str:
    """Publication form of a name: first and last character stay, each one between
    becomes * (张*三, 欧**华); a two-character name keeps its first (李*), a single
    character becomes *."""
    chars = list(name.strip())
    if len(chars) <= 1:
        return "*" * len(chars)
    if len(chars) == 2:
        return chars[0] + "*"
    return chars[0] + "*" * (len(chars) - 2) + chars[-1]


# the holder's answer: their whole ID number (the 公示 listing shows its first 6 and last 4
# characters, so any part of it would be half public; the birth date is not)
HOLDER_PATTERN = r"^[0-9]{17}[0-9X]$"


def holder_answer(text: str) -> str:
    """The holder's typed answer, checked and normalised (``x`` → ``X``); ValueError says
    what is wrong without repeating it."""
    answer = text.strip().upper()
    if not re.fullmatch(HOLDER_PATTERN, answer):
        raise ValueError(
            "the holder's answer is their whole ID number (18 characters: digits, the last "
            "may be X)"
        )
    return answer
