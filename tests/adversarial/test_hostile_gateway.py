"""Whatever answers at the gateway's address (a broken gateway, a proxy, a captive portal, a
misrouted cache) answering a terminal's uploads and hotlist requests as it likes: the
terminal marks a row sent only on this batch's acknowledgement, and a hotlist feed it
cannot follow changes nothing and stops no sync (docs/security.md, "Red team, round two
(terminal)")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway import hotlist as gateway_hotlist
from terminal.hotlist import Hotlist
from terminal.uplink import GatewayClient, HotlistSync, Uplink
from terminal.uplink.client import GatewayRefused
from tests.traffic import JournaledTerminal, make_cards

TID = "310000000388"
ISSUER = "3100000000000000"
Answer = Callable[[dict[str, Any]], httpx.Response]


def hostile(answer: Answer) -> GatewayClient:
    """A client whose every request is answered by ``answer(request body)``."""
    return GatewayClient(
        "http://gateway",
        "token",
        transport=httpx.MockTransport(lambda req: answer(json.loads(req.content or b"{}"))),
    )


def ack(body: dict[str, Any], **change: Any) -> dict[str, Any]:
    """The gateway's honest answer to ``body`` (every record stored), then ``change``d."""
    acks = [{"terminal_seq": r["terminal_seq"], "status": "stored"} for r in body["records"]]
    doc = {
        "batch_id": body["batch_id"],
        "terminal_id": body["terminal_id"],
        "replay": False,
        "counts": {"stored": len(acks)},
        "acks": acks,
    }
    return doc | change


UPLOAD_ANSWERS: dict[str, tuple[Answer, str]] = {
    "a JSON list": (lambda b: httpx.Response(200, json=ack(b)["acks"]), "not an acknowledgement"),
    "acks as text": (
        lambda b: httpx.Response(
            200, json=ack(b, acks=[f"{r['terminal_seq']} stored" for r in b["records"]])
        ),
        "not an acknowledgement",
    ),
    "another terminal's ack": (
        lambda b: httpx.Response(200, json=ack(b, terminal_id="310000000999")),
        "terminal 310000000999",
    ),
    "another batch's ack": (
        lambda b: httpx.Response(200, json=ack(b, batch_id="another-batch")),
        "batch another-batch",
    ),
    "one record acknowledged twice, another not at all": (
        lambda b: httpx.Response(200, json=ack(b, acks=[ack(b)["acks"][0], *ack(b)["acks"][:-1]])),
        "twice",
    ),
    "a redirect carrying an ack": (
        lambda b: httpx.Response(307, json=ack(b), headers={"location": "http://elsewhere/"}),
        "307",
    ),
}


@pytest.mark.parametrize("attack", list(UPLOAD_ANSWERS))
def test_an_answer_that_is_not_this_batchs_ack_marks_nothing_sent(
    gateway, tmp_path, clock, attack: str
) -> None:
    answer, why = UPLOAD_ANSWERS[attack]
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    cards = make_cards(4)
    for card in cards:
        clock.advance(seconds=30)
        term.tap(card, 150)

    up = Uplink(term.journal, {TID: hostile(answer)}, clock=clock)
    delay = up.step(force=True)
    assert delay > 0  # backed off: the uploads go on later, the thread is alive
    assert why in up.stats.last_error, up.stats.last_error
    assert (up.stats.failures, up.stats.batches, up.stats.stored) == (1, 0, 0)
    assert term.journal.pending_upload() == 4 and term.journal.parked() == []

    # the real gateway later gets every row: nothing was dropped as "sent"
    honest = GatewayClient(gateway.url, gateway.register(TID))
    assert Uplink(term.journal, {TID: honest}, clock=clock).drain() == 4
    assert gateway.count("txn") == 4 and term.journal.pending_upload() == 0
    assert [c.balance for c in cards] == [100_000 - 150] * 4
    honest.close()
    term.close()


def feed(*changes: dict[str, Any], more: bool = False) -> Answer:
    latest = max((c["version"] for c in changes), default=0)
    return lambda _: httpx.Response(
        200, json={"latest": latest, "more": more, "changes": list(changes)}
    )


def change(version: Any, action: str, serial: bytes | str) -> dict[str, Any]:
    card_serial = serial.hex().upper() if isinstance(serial, bytes) else serial
    return {
        "version": version,
        "action": action,
        "issuer_id": ISSUER,
        "card_serial": card_serial,
        "reason": "",
    }


HOTLIST_ANSWERS: dict[str, tuple[Callable[[bytes], Answer], str]] = {
    "an old version unlisting the card": (
        lambda lost: feed(change(1, "remove", lost)),
        "version 1 is not after 1",
    ),
    "a version going back": (lambda lost: feed(change(0, "remove", lost)), "version 0"),
    "more pages promised, none given": (lambda _: feed(more=True), "no changes"),
    "a serial that is not hex": (lambda _: feed(change(2, "add", "ZZ")), "ZZ"),
    "a version that is not a number": (lambda lost: feed(change("2x", "remove", lost)), "2x"),
    "a body that is not a page": (
        lambda _: lambda _: httpx.Response(200, json=[1, 2]),
        "not a page",
    ),
}


@pytest.mark.parametrize("attack", list(HOTLIST_ANSWERS))
def test_a_hotlist_feed_the_terminal_cannot_follow_changes_nothing_and_the_sync_goes_on(
    gateway, tmp_path, attack: str
) -> None:
    lost, later = make_cards(2)
    gateway_hotlist.change(gateway.db, "add", ISSUER, lost.serial.hex().upper())
    honest = GatewayClient(gateway.url, gateway.register(TID, role="validator"))
    hotlist = Hotlist(tmp_path / "hotlist.db")
    assert HotlistSync(honest, hotlist, 60).sync_once()
    assert lost.serial in hotlist and hotlist.version == 1

    answer, why = HOTLIST_ANSWERS[attack]
    calls = 0

    def counted(body: dict[str, Any]) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 20:  # a terminal that never stops asking
            raise httpx.ConnectError("the test stops an endless sync")
        return answer(lost.serial)(body)

    sync = HotlistSync(hostile(counted), hotlist, 60)
    assert sync.sync_once() is False  # logged, tried again next interval
    assert why in sync.last_error, sync.last_error
    assert calls == 1
    assert lost.serial in hotlist and (hotlist.version, len(hotlist)) == (1, 1)

    # the next honest round brings the next loss in
    gateway_hotlist.change(gateway.db, "add", ISSUER, later.serial.hex().upper())
    assert HotlistSync(honest, hotlist, 60).sync_once()
    assert lost.serial in hotlist and later.serial in hotlist and hotlist.version == 2
    honest.close()
    hotlist.close()


REFUSALS: dict[str, tuple[Callable[[dict[str, Any]], httpx.Response], str]] = {
    "an answer bigger than any gateway sends": (
        lambda b: httpx.Response(200, content=b" " * (2 * 1024 * 1024 + 1)),
        "over the limit of 2097152 bytes",
    ),
    "an endless answer with no length": (
        lambda b: httpx.Response(200, content=iter([b" " * 65536] * 1000)),
        "over the limit of 2097152 bytes, not read further",
    ),
    "a refusal whose body is a list": (
        lambda b: httpx.Response(429, json=["busy"]),
        "429",
    ),
}


@pytest.mark.parametrize("attack", list(REFUSALS))
def test_an_oversized_or_odd_answer_is_a_failed_round_not_a_crash(
    tmp_path, clock, attack: str
) -> None:
    """A body over the client's limit is not read into memory and a refusal that is not the
    gateway's object is worded as sent: each is one failed round, every row still waits."""
    answer, why = REFUSALS[attack]
    term = JournaledTerminal(TID, tmp_path / "j.db", clock)
    clock.advance(seconds=30)
    term.tap(make_cards(1)[0], 150)
    client = GatewayClient(
        "http://gateway",
        "token",
        transport=httpx.MockTransport(lambda req: answer(json.loads(req.content))),
        max_answer_bytes=2 * 1024 * 1024,
    )
    up = Uplink(term.journal, {TID: client}, clock=clock)
    assert up.step(force=True) > 0
    assert why in up.stats.last_error, up.stats.last_error
    assert term.journal.pending_upload() == 1 and term.journal.parked() == []
    term.close()


def test_a_refusal_in_another_shape_is_worded_as_sent_not_a_crash() -> None:
    """A 4xx whose body is a JSON list or text (a proxy's page) is a GatewayRefused with the
    body's start as its reason, never an AttributeError that ends an upload thread."""
    for body in (b'["no"]', b"<html>denied</html>", b'{"reason": "quota"}'):
        client = GatewayClient(
            "http://gateway",
            "token",
            transport=httpx.MockTransport(lambda req, body=body: httpx.Response(403, content=body)),
        )
        with pytest.raises(GatewayRefused) as refused:
            client.request("GET", "/v1/hotlist")
        assert refused.value.status == 403
        expected = "quota" if b"quota" in body else body.decode()
        assert refused.value.reason == expected
