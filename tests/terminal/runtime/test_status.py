"""The status page's own refusals of a POST (a body too large, not JSON) keep their English
``refused`` and say it in the terminal's language in ``text``; the action never runs."""

from __future__ import annotations

import http.client
import json
from typing import Any

from terminal.runtime.status import MAX_BODY, StatusServer
from terminal.words import set_lang
from tests.terminal.cli.test_words import english


class Quiet:
    def health(self) -> dict[str, object]:
        return {"journal_ok": True}

    def metrics(self) -> str:
        return ""


def _post(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/sale", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_bad_bodies_are_refused_in_the_terminals_language() -> None:
    reached: list[Any] = []

    def sale(body: Any) -> tuple[int, dict[str, Any]]:
        reached.append(body)
        return 200, {"ok": True}

    server = StatusServer(Quiet(), 0, actions={"/sale": sale}).start()
    set_lang("zh")
    try:
        answers = [_post(server.port, b"{amount"), _post(server.port, b" " * (MAX_BODY + 1))]
    finally:
        set_lang("en")
        server.stop()
    assert [status for status, _ in answers] == [400, 400]
    assert [doc["refused"] for _, doc in answers] == [
        "the body is not JSON",
        f"a body of 0..{MAX_BODY} bytes needed",
    ]
    texts = [doc["text"] for _, doc in answers]
    assert texts == [
        "请求内容不是 JSON，本次未办理：请核对后重新提交",
        f"请求内容长度应为 0 至 {MAX_BODY} 字节，本次未办理：请核对后重新提交",
    ]
    assert [english(t) for t in texts] == [None, None]
    assert reached == []
