"""Hostile bytes from a card: every parser answers with data or a typed project error,
never IndexError, KeyError or a bare ValueError from deep inside."""

from __future__ import annotations

import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from terminal.apdu.errors import YikatongError
from terminal.emv.ec import parse_scripts, split_dol_data
from terminal.emv.fci import ApplicationFci, DirectoryFci
from terminal.emv.kernel import parse_generate_ac_response
from terminal.emv.processing import parse_afl, parse_gpo_response
from terminal.ssse.records import BASIC_INFO_RECORDS, decode_record

PARSERS = [
    DirectoryFci.parse,
    ApplicationFci.parse,
    parse_gpo_response,
    parse_afl,
    parse_generate_ac_response,
    parse_scripts,
    lambda b: split_dol_data(bytes.fromhex("9F02069A03"), b),
    lambda b: decode_record(BASIC_INFO_RECORDS[0], b),
]

# bytes that look like the start of real objects, so the fuzzer gets past the first tag
PREFIXES = [b"", b"\x6f", b"\x77", b"\x80", b"\x70", b"\x61", b"\x72", b"\xa5", b"\xbf\x0c"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PREFIXES), st.binary(max_size=80))
def test_parsers_only_raise_typed_errors(prefix: bytes, data: bytes) -> None:
    raw = prefix + data
    for parser in PARSERS:
        with contextlib.suppress(YikatongError):
            parser(raw)


def _selected_resident_card():  # type: ignore[no-untyped-def]
    from simulators.emv_profiles import resident_card

    card = resident_card(1)
    card.process(bytes.fromhex("00A4040008A00000033301010100"))
    return card


CARD = _selected_resident_card()
GPO_HEADER = bytes.fromhex("80A8000023")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.binary(min_size=4, max_size=60), st.binary(max_size=40).map(GPO_HEADER.__add__))
)
@example(GPO_HEADER + bytes.fromhex("37000000" + "FF" * 6 + "00" * 23) + b"\x00")
def test_software_card_answers_any_command_with_a_status_word(apdu: bytes) -> None:
    response = CARD.process(apdu)
    assert len(response) >= 2
