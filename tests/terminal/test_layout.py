"""The struct fast path of terminal/layout.py gives exactly what construct gives: the same
fields from the same bytes, the same bytes from the same fields, and construct's own errors
for anything it refuses. Commands name their INS bytes (one place each)."""

from __future__ import annotations

import random
import re
from datetime import date, datetime, time
from pathlib import Path

import construct as cs
import pytest

from terminal.apdu.errors import LayoutBuildError, MalformedResponse
from terminal.apdu.iso import IsoIns
from terminal.emv.commands import EmvIns
from terminal.epurse import commands
from terminal.epurse import layouts as ep
from terminal.layout import _fast, build, parse, parse_present
from terminal.sam import layouts as sam
from terminal.sam.commands import SamIns

LAYOUTS = {
    f"{mod.__name__.rsplit('.', 2)[-2]}.{name}": value
    for mod in (ep, sam)
    for name, value in vars(mod).items()
    if isinstance(value, cs.Struct)
}


def _valid_bytes(layout: cs.Struct, rnd: random.Random) -> bytes:
    """Bytes construct parses: random, with BCD dates/times and constants made valid."""
    sample = {
        "date": date(2026, 11, 28),
        "time": time(8, 30, 15),
        "datetime": datetime(2026, 11, 28, 8, 30, 15),
    }
    fields = {}
    for sc in layout.subcons:
        inner = sc.subcon
        if isinstance(inner, cs.GreedyRange):
            fields[sc.name] = [rnd.randbytes(8)]
        elif isinstance(inner, cs.Const):
            fields[sc.name] = None
        elif inner is ep.BalanceAmount:
            fields[sc.name] = ep.BalanceWord(rnd.randrange(2**31), rnd.random() < 0.5)
        elif type(inner).__name__ == "_BcdDate":
            fields[sc.name] = sample["date"]
        elif type(inner).__name__ == "_BcdTime":
            fields[sc.name] = sample["time"]
        elif type(inner).__name__ == "_BcdDateTime":
            fields[sc.name] = sample["datetime"]
        elif isinstance(inner, cs.Bytes):
            fields[sc.name] = rnd.randbytes(inner.length)
        else:
            fields[sc.name] = rnd.randrange(2 ** (8 * inner.sizeof()))
    return layout.build(fields)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_fast_path_parses_and_builds_what_construct_does(name: str) -> None:
    layout = LAYOUTS[name]
    assert _fast(layout)[2] is not None, f"{name} has no struct form"
    rnd = random.Random(name)
    for _ in range(20):
        data = _valid_bytes(layout, rnd)
        expected = layout.parse(data)
        fields = {k: v for k, v in expected.items() if not k.startswith("_")}
        assert build(layout, **fields) == data
        try:
            size = layout.sizeof()
        except cs.SizeofError:
            continue  # built, never parsed (the PSAM's MAC1 request)
        parsed = parse(layout, data, name)
        assert dict(parsed) == fields
        assert parse_present(layout, data, name) == fields
        assert len(data) == size


BAD_BUILDS = {
    "MAC1 of 5 bytes": (
        ep.DebitData,
        {"terminal_seq": 1, "date": date(2026, 1, 1), "time": time(), "mac1": b"12345"},
    ),
    "key index over a byte": (
        ep.InitializeData,
        {"key_index": 256, "amount": 1, "terminal_id": bytes(6)},
    ),
    "amount not an integer": (
        ep.InitializeData,
        {"key_index": 1, "amount": "1", "terminal_id": bytes(6)},
    ),
    "factor of 7 bytes": (
        sam.Mac1Request,
        {
            "card_random": bytes(4),
            "offline_atc": 1,
            "amount": 1,
            "txn_type": 6,
            "when": datetime(2026, 1, 1),
            "key_version": 1,
            "algorithm": 0,
            "card_serial": bytes(8),
            "factors": [bytes(7)],
        },
    ),
    "field missing": (ep.CreditData, {"date": date(2026, 1, 1), "time": time()}),
}


@pytest.mark.parametrize("case", sorted(BAD_BUILDS))
def test_build_refuses_values_that_do_not_fit(case: str) -> None:
    """A value the layout cannot hold is refused with a typed error naming the field, never
    written as it is (construct's compiled form writes a 5-byte MAC1 as 5 bytes)."""
    layout, fields = BAD_BUILDS[case]
    field = {
        "MAC1 of 5 bytes": "mac1",
        "key index over a byte": "key_index",
        "amount not an integer": "amount",
        "factor of 7 bytes": "factors",
        "field missing": "mac2",
    }[case]
    with pytest.raises(LayoutBuildError, match=field):
        build(layout, **fields)


def test_debit_command_refuses_a_short_or_long_mac1() -> None:
    when = datetime(2026, 1, 1, 8, 0, 0)
    assert len(commands.debit_for_purchase(1, when, bytes(4)).data) == 15
    for mac1 in (b"12345", b"123", bytearray(5)):
        with pytest.raises(LayoutBuildError, match=r"mac1.*wrong length"):
            commands.debit_for_purchase(1, when, mac1)


def test_construct_path_refuses_a_wrong_length_field() -> None:
    """A layout with no struct form (a greedy field) is built by construct, which checks too."""
    layout = cs.Struct("tag" / cs.Int8ub, "mac" / cs.Bytes(4), "rest" / cs.GreedyBytes)
    assert _fast(layout)[2] is None
    assert build(layout, tag=1, mac=bytes(4), rest=b"xy") == b"\x01" + bytes(4) + b"xy"
    assert layout.compile().build({"tag": 1, "mac": b"12345", "rest": b""}) == b"\x0112345"
    with pytest.raises(LayoutBuildError, match=r"mac.*expected 4, found 5"):
        build(layout, tag=1, mac=b"12345", rest=b"")


def test_fast_path_refuses_what_construct_refuses() -> None:
    bad_date = bytes(8) + b"\x01\x01" + bytes(10) + bytes.fromhex("20261399") + bytes(6)
    with pytest.raises(MalformedResponse, match="not a calendar date"):
        parse(ep.PublicInfo, bad_date, "0x15")
    with pytest.raises(MalformedResponse, match="start_date"):  # names the field, as before
        parse_present(ep.PublicInfo, bad_date, "0x15")
    metro = bytearray(_valid_bytes(ep.MetroRecord, random.Random(1)))
    metro[0] = 0x28  # not the 2701 tag
    with pytest.raises(MalformedResponse):
        parse(ep.MetroRecord, bytes(metro), "2701")


BARE_INS = re.compile(
    r"CommandAPDU\(\s*[^,()]+,\s*0x[0-9A-Fa-f]{2}\b"  # a builder with a bare INS
    r"|\.ins\s*[!=]=\s*0x[0-9A-Fa-f]{2}"  # an answerer matching one
    r"|bytes\(\(0x[0-9A-Fa-f]{2}, 0x(?:A4|B0|B2|5C)\b"  # an APDU spelt out byte by byte
)


def test_commands_and_their_answerers_name_each_ins() -> None:
    """No card, SAM or EMV command is built or matched with a bare INS byte: each is named
    once (``IsoIns`` for ISO 7816-4's, ``Ins``, ``SamIns``, ``EmvIns``, the COS constants)
    and used from there; no application's enum repeats an ISO instruction."""
    root = Path(__file__).resolve().parents[2]
    found = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for tree in ("terminal", "simulators")
        for path in sorted((root / tree).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BARE_INS.search(line)
    ]
    assert found == []
    iso = {int(i) for i in IsoIns}
    assert [i for enum in (commands.Ins, SamIns, EmvIns) for i in enum if int(i) in iso] == []
