"""The device's local status page: ``/health`` (JSON) and ``/metrics`` (Prometheus text) on
127.0.0.1 only, in a thread, so a supervisor or a field engineer's laptop can ask how the
terminal is doing without touching the journal; a POS also takes ``POST /sale`` from the
cash register here."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from terminal.words import say


class Reporter(Protocol):
    def health(self) -> dict[str, object]: ...

    def metrics(self) -> str: ...


Action = Callable[[Any], tuple[int, dict[str, Any]]]
MAX_BODY = 4096  # a sale request is a few dozen bytes


class StatusServer:
    """``actions``: POST paths (``/sale``) and what answers them: the parsed JSON body in,
    an HTTP status and a JSON document out."""

    def __init__(
        self,
        reporter: Reporter,
        port: int,
        host: str = "127.0.0.1",
        actions: dict[str, Action] | None = None,
    ):
        handler = _handler(reporter, actions or {})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="status", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(reporter: Reporter, actions: dict[str, Action]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                health = reporter.health()
                status = 200 if health.get("journal_ok") else 503
                self._send(status, "application/json", json.dumps(health))
            elif self.path == "/metrics":
                self._send(200, "text/plain; version=0.0.4", reporter.metrics())
            else:
                self._send(404, "text/plain", "not found\n")

        def do_POST(self) -> None:
            action = actions.get(self.path)
            if action is None:
                self._send(404, "text/plain", "not found\n")
                return
            try:
                size = int(self.headers.get("Content-Length", ""))
            except ValueError:
                size = -1
            if not 0 <= size <= MAX_BODY:
                why = f"a body of 0..{MAX_BODY} bytes needed"
                self._refuse(why, say("status.body_size", max=MAX_BODY))
                return
            try:
                body = json.loads(self.rfile.read(size) or b"null")
            except (ValueError, UnicodeDecodeError):
                self._refuse("the body is not JSON", say("status.not_json"))
                return
            self._json(*action(body))

        def _refuse(self, why: str, text: str) -> None:
            """A 400 no action saw: the English ``refused`` clients parse, ``text`` to show."""
            self._json(400, {"ok": False, "refused": why, "text": text})

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(doc, ensure_ascii=False))

        def _send(self, status: int, kind: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
