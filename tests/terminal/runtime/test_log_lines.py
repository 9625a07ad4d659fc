"""``ykt run``'s JSON log lines keep their technical fields for log tooling and add ``text``,
the operator's sentence in the terminal's language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal.apdu.errors import error_for
from terminal.apdu.status import SW
from terminal.campus.door import Decision
from terminal.roles.validator import TapOutcome, TapResult
from terminal.runtime.counter import Outcome, refused
from terminal.runtime.desk import desk_log_line
from terminal.runtime.door import decision_line
from terminal.runtime.kiosk import kiosk_log_line
from terminal.runtime.kiosk import refusal as kiosk_reason
from terminal.runtime.library import library_log_line
from terminal.runtime.pos import refusal as sale_reason
from terminal.runtime.pos import sale_log_line
from terminal.runtime.service import log_line
from terminal.runtime.till import till_log_line
from terminal.runtime.trips import trip_log_line, trip_outcome
from terminal.uplink.client import GatewayRefused
from terminal.words import kiosk_refusal, sale_refusal, set_lang


@pytest.fixture(autouse=True)
def english_after() -> object:
    yield
    set_lang("en")


def test_a_tap_line_keeps_its_fields_and_says_the_outcome_in_the_terminals_language() -> None:
    paid = TapResult(TapOutcome.PAID, "paid", "3100029000000000001", 200, 1_800)
    short = TapResult(TapOutcome.INSUFFICIENT, "insufficient balance", "3100029000000000002", 200)
    lines = {}
    for lang in ("zh", "en"):
        set_lang(lang)
        lines[lang] = [json.loads(log_line("310000000201", r, "bus")) for r in (paid, short)]
    for line in lines["zh"] + lines["en"]:
        assert {"time", "terminal_id", "green", "message", "card", "fare", "balance"} <= set(line)
    zh, en = lines["zh"], lines["en"]
    assert (en[0]["green"], en[0]["outcome"], en[0]["message"], en[0]["fare"]) == (
        True,
        "paid",
        "paid",
        200,
    )
    assert (en[0]["text"], zh[0]["text"]) == ("bus fare ¥2.00 paid", "公交车费 ¥2.00 已付")
    assert (en[1]["green"], en[1]["outcome"]) == (False, "insufficient")
    assert en[1]["text"].startswith("insufficient balance (fare ¥2.00)")
    assert zh[1]["text"].startswith("余额不足（车费 ¥2.00）")


def test_sale_and_kiosk_lines_keep_the_reason_and_add_words() -> None:
    short = error_for(SW.INSUFFICIENT_BALANCE)
    set_lang("zh")
    sale = refused(500, "310000000301", sale_reason(short), sale_refusal(short))
    line = json.loads(sale_log_line("310000000301", sale))
    assert (line["ok"], line["amount"], line["refused"]) == (False, 500, "insufficient balance")
    assert line["text"] == "余额不足，请换卡或充值"
    paid = Outcome({"ok": True, "amount_fen": 500, "balance_fen": 9_500, "card_number": "x"})
    assert json.loads(sale_log_line("310000000301", paid))["text"] == "消费 ¥5.00 已付；余额 ¥95.00"

    set_lang("en")
    gone = GatewayRefused(409, "hotlisted", "card 3100029000000000001 is reported lost")
    kiosk = refused(1_000, "310000000401", kiosk_reason(gone), kiosk_refusal(gone))
    line = json.loads(kiosk_log_line("310000000401", kiosk))
    assert line["refused"] == "the card centre refused: card 3100029000000000001 is reported lost"
    assert line["text"].startswith("this card is reported lost and cannot be topped up")
    assert line["text"].endswith("(card centre: card 3100029000000000001 is reported lost)")
    topped = Outcome({"ok": True, "action": "top-up", "amount_fen": 1_000, "balance_fen": 3_000})
    assert json.loads(kiosk_log_line("x", topped))["text"] == "top-up ¥10.00 done; balance ¥30.00"


def test_every_field_of_every_log_line_is_documented_for_operators() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "operators.md").read_text(encoding="utf-8")
    section = docs.split("## The JSON log line of each transaction")[1]
    tap = TapResult(TapOutcome.CARD_REFUSED, "card refused", "3100029000000000001", sw=0x6985)
    nothing = Outcome({"ok": False, "amount_fen": 100, "refused": "no"})
    lines = [
        log_line("310000000201", tap, "bus"),
        sale_log_line("310000000301", nothing),
        kiosk_log_line("310000000401", nothing),
        desk_log_line("310000000501", nothing),
        till_log_line("310000000301", nothing),
        library_log_line("310000000401", nothing),
        trip_log_line("310000000601", trip_outcome(tap, "310000000601", {})),
        decision_line("310000000701", Decision(False, "no", "lab-east", "S1", "02", 1)),
    ]
    examples = [tuple(json.loads(x)) for x in section.splitlines() if x.startswith('{"time"')]
    for line in lines:
        doc = json.loads(line)
        assert [key for key in doc if f"`{key}`" not in section] == [], doc
        assert tuple(doc) in examples, doc  # an example line of the role, with every field
    assert json.loads(lines[0])["sw"] == "6985" and json.loads(lines[-2])["sw"] == "6985"
    assert json.loads(lines[-1])["text"] == "refused: no"  # the door's line says it in words
