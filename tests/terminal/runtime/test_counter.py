"""A counter device's answers that no operation reached (bad request, busy, stopping, out of
service) keep their English ``refused`` and say it in the terminal's language in ``text``."""

from __future__ import annotations

import threading
from pathlib import Path

from simulators.profiles import demo_card, demo_psam
from terminal.readers.sim import SimReader
from terminal.roles.issuance import CardAlreadyIssued, IssuanceError, IssuanceRefusal
from terminal.roles.registry import CentreRefused
from terminal.runtime.assembly import Parts, assemble
from terminal.runtime.config import TerminalConfig
from terminal.runtime.counter import CounterService, Outcome, refused
from terminal.runtime.desk import desk_text, refusal
from terminal.runtime.pos import PosService
from terminal.uplink.client import GatewayUnavailable
from terminal.words import desk_refusal, set_lang
from tests.terminal.cli.test_words import english


def test_answers_before_the_card_are_in_the_terminals_language(tmp_path: Path) -> None:
    card = demo_card(1, balance=1_000)
    reader = SimReader(card)
    parts = Parts(card_reader=reader, sam_reader=SimReader(demo_psam("310000000101")))
    pos = assemble(TerminalConfig(role="pos", journal=str(tmp_path / "pos.db")), parts=parts)
    service = PosService(pos, lambda outcome: None)
    started, release = threading.Event(), threading.Event()

    def slow() -> Outcome:
        started.set()
        release.wait(10)
        return refused(100, service.terminal_id, "not done", "未办理")

    set_lang("zh")
    try:
        answers = [CounterService.worded(service.post_sale)({"amount_fen": 0})]
        first = threading.Thread(target=service.serve, args=({}, slow, str))
        first.start()
        assert started.wait(10)
        answers.append(service.serve({"amount_fen": 100}, slow, str))  # while one runs
        release.set()
        first.join(10)
        service.stop()
        answers.append(service.serve({"amount_fen": 100}, slow, str))
        service.fault = "journal: disk I/O error"
        answers.append(service.serve({"amount_fen": 100}, slow, str))
    finally:
        set_lang("en")
        assert pos.journal.rows() == []
        pos.close(flush_timeout=0)
    assert [status for status, _ in answers] == [400, 409, 503, 503]
    texts = [doc["text"] for _, doc in answers]
    assert texts == [
        "请求内容有误，本次未办理：请核对后重新提交",
        "上一笔尚未完成，本次未办理：请稍后重新提交",
        "本机正在停止，本次未办理：请稍后再试",
        "本机暂停服务，本次未办理：请联系管理员",
    ]
    assert [english(t) for t in texts] == [None] * 4
    # the English reason stays as clients parse it
    assert [doc["refused"] for _, doc in answers] == [
        "bad sale request: amount_fen must be a whole number of fen above 0, got 0",
        "another sale is in progress; send this one when it is done",
        "the POS is stopping",
        "out of service: journal: disk I/O error",
    ]
    assert card.balance == 1_000 and card.state.offline_atc == 0


def test_a_desk_refusal_is_in_the_clerks_language() -> None:
    answers = [
        GatewayUnavailable("connection refused"),
        CardAlreadyIssued(IssuanceRefusal.PERSONALISED, number="3100029000000000001"),
        IssuanceError(
            IssuanceRefusal.CLAIM_REFUSED,
            number="3100029000000000001",
            refusal=CentreRefused("same_person", "one person, one card"),
        ),
    ]
    set_lang("zh")
    try:
        texts = [
            desk_text(refused(None, "310000000501", refusal(exc), desk_refusal(exc)).doc)
            for exc in answers
        ]
    finally:
        set_lang("en")
    assert texts == [
        "暂时无法连接卡务中心，未发卡，请稍后再试",
        "读卡器上的卡已发过，请放一张空白卡",
        "未发卡，卡号 3100029000000000001 已作废：此人已持有同类有效卡（一人一卡）",
    ]
    assert [english(t) for t in texts] == [None] * 3, texts
    assert desk_text(refused(None, "x", refusal(answers[2]), desk_refusal(answers[2])).doc) == (
        "no card issued, number 3100029000000000001 voided: one person, one card"
    )
