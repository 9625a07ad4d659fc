"""A campus library desk under ``ykt run``: each loan and return comes from the librarian's
screen over ``POST /loan`` and ``POST /return`` on the status port.

A ``CounterService`` (terminal/runtime/counter.py): one request at a time, 409 while one
runs, SIGTERM finishes the request in progress. The desk's work is the library's
(terminal/campus/library.py): a loan goes to whoever the card in the field proves to be,
served by the synced lists, booked at the gateway under the desk's loan number; a return
names only the book (no card). The desk keeps no payment journal: nothing waits for upload;
its hotlist and allow list are synced in the background every ``hotlist.sync_interval``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from terminal.campus.door import sync_access
from terminal.campus.library import LibraryDesk, LibraryRefused
from terminal.readers.base import Reader
from terminal.readers.sim import SimCard
from terminal.roles.session import TerminalSession
from terminal.runtime.assembly import LibraryDevice, SimDevices, assemble_library
from terminal.runtime.config import TerminalConfig
from terminal.runtime.counter import CounterService, Outcome, refused, request_log_line
from terminal.uplink.hotlist import HotlistSync
from terminal.words import say

MAX_BOOK = 64  # characters: the gateway checks the book number's form, this only its size


class LibrarySync(HotlistSync):
    """The hotlist and the allow list brought up to the gateway's versions in one round."""

    def __init__(self, device: LibraryDevice):
        desk = device.desk
        super().__init__(desk.client, desk.hotlist, device.config.hotlist_sync)
        self.desk = desk

    name = "library"

    def round(self) -> None:
        sync_access(self.client, self.desk.access, self.desk.hotlist)


@dataclass
class LibraryTerminal:
    """A library desk as a counter service runs it: its readers, session and software cards,
    and its lists synced in the background. It has no payment journal (``journal`` None):
    each loan is booked at the gateway at once and nothing waits for upload."""

    device: LibraryDevice
    journal: None = None
    sync: LibrarySync = field(init=False)

    def __post_init__(self) -> None:
        self.sync = LibrarySync(self.device)

    @property
    def config(self) -> TerminalConfig:
        return self.device.config

    @property
    def role(self) -> LibraryDesk:
        return self.device.desk

    @property
    def session(self) -> TerminalSession:
        return self.device.desk.session

    @property
    def card_reader(self) -> Reader:
        return self.device.card_reader

    @property
    def reader(self) -> Reader:
        return self.device.reader

    @property
    def cards(self) -> list[SimCard]:
        return self.device.cards

    def start_background(self) -> None:
        self.sync.start()

    def close(self, flush_timeout: float | None = None) -> int:
        """Stop the sync and close the desk's files; nothing waits for upload (0)."""
        self.sync.stop()
        self.device.close()
        return 0


def library_terminal(config: TerminalConfig, sim: SimDevices | None) -> LibraryTerminal:
    """The library desk ``config`` describes, ready for ``LibraryService``."""
    return LibraryTerminal(assemble_library(config, sim))


class BadRequest(ValueError):
    """A loan or return the librarian's screen got wrong (answered 400 with this reason)."""


def book_request(body: Any, what: str) -> str:
    """The book of a ``POST /loan`` or ``/return`` body; BadRequest says why not (the
    patron is the card in the field, never named in the body)."""
    if not isinstance(body, dict) or set(body) != {"book"}:
        raise BadRequest(f'a {what} is {{"book": "..."}}: the patron is the card in the field')
    book = body["book"]
    if not isinstance(book, str) or not 0 < len(book) <= MAX_BOOK:
        raise BadRequest(f"book must be the book's number (1 to {MAX_BOOK} characters)")
    return book


def library_refusal(exc: Exception) -> str:
    """Why a card could not be read for a loan, in words (the detail stays in ``refused``)."""
    return f"card not read, present it again ({exc})"


def library_log_line(terminal_id: str, outcome: Outcome) -> str:
    """One structured JSON line per loan or return (what a log collector indexes)."""
    doc = outcome.doc
    fields = {
        "action": doc.get("action"),
        "book": doc.get("book"),
        "person": doc.get("person_no"),
        "loan_no": doc.get("loan_no"),
        "held": doc.get("held"),
        "limit": doc.get("limit"),
    }
    return request_log_line(terminal_id, outcome, fields, doc.get("text"))


class LibraryService(CounterService):
    """One assembled library desk run as a service: loans and returns from its screen, its
    lists synced in the background."""

    noun = "request"
    device = "library desk"
    routes = (("/loan", "post_loan"), ("/return", "post_return"))
    role: LibraryDesk

    def post_loan(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /loan``: lend the book to the card's holder."""
        return self._request(body, "loan", self._lend, card=True)

    def post_return(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /return``: take the book back (no card needed)."""
        return self._request(body, "return", self._take_back, card=False)

    def _request(
        self, body: Any, action: str, work: Callable[[str], dict[str, Any]], *, card: bool
    ) -> tuple[int, dict[str, Any]]:
        """200 with the result (done, or refused in words), 400 for a bad request, 409 while
        another runs, 503 when stopping."""
        try:
            book = book_request(body, action)
        except BadRequest as exc:
            return 400, {"ok": False, "refused": f"bad {action} request: {exc}"}
        echo = {"action": action, "book": book}

        def operate() -> Outcome:
            started = time.monotonic()
            try:
                doc = {"ok": True, "terminal_id": self.terminal_id, **echo, **work(book)}
                outcome = Outcome(doc)
            except LibraryRefused as exc:
                outcome = refused(
                    None, self.terminal_id, str(exc), say("library.refused", reason=exc)
                )
                outcome.doc.update(echo)
            outcome.ms = (time.monotonic() - started) * 1000
            return outcome

        return self.serve(echo, operate, library_refusal, card=card)

    def _lend(self, book: str) -> dict[str, Any]:
        loan = self.role.borrow(book)
        return {
            "loan_no": loan.loan_no,
            "person_no": loan.person_no,
            "held": loan.held,
            "limit": loan.limit,
            "text": say("library.lent", book=book, held=loan.held, limit=loan.limit),
        }

    def _take_back(self, book: str) -> dict[str, Any]:
        answer = self.role.give_back(book)
        return {
            "person_no": answer.get("person_no"),
            "duplicate": bool(answer.get("duplicate")),
            "text": say("library.returned", book=book),
        }

    def settle(self) -> None:
        """Nothing to fold in: the desk keeps no payment journal."""

    def check_store(self) -> None:
        """Nothing to check in idle time: loans are booked at the gateway at once."""

    counts = (
        ("requests", "ykt_library_requests_total"),
        ("approved", "ykt_library_done_total"),
        ("refused", "ykt_library_refused_total"),
    )

    def health(self) -> dict[str, object]:
        """What /health answers: the lists' versions, their last sync, and the counts."""
        desk, sync = self.role, self.terminal.sync  # type: ignore[attr-defined]
        doc: dict[str, object] = {
            "status": "ok",
            "terminal_id": self.terminal_id,
            "role": "library",
            "hotlist_version": desk.hotlist.version,
            "access_version": desk.access.version,
            "last_sync": (sync.last_sync.isoformat(timespec="seconds") if sync.last_sync else None),
            "sync_error": sync.last_error,
            "started": self.started.isoformat(timespec="seconds"),
        }
        served = (self.served, self.approved, self.refused)
        doc.update(zip([key for key, _ in self.counts], served, strict=True))
        return doc

    def metrics(self) -> str:
        h = self.health()
        values = {"ykt_up": 1, **{metric: h[key] for key, metric in self.counts}}
        values.update(
            ykt_hotlist_version=h["hotlist_version"], ykt_access_version=h["access_version"]
        )
        label = json.dumps(self.terminal_id)
        return "".join(f"{k}{{terminal={label}}} {v}\n" for k, v in values.items())
