"""The library desk (图书借阅): the card names the patron, the gateway records the loans.

The patron is whoever the card proves to be, as at a door (``card.authenticate``: the SAM
checks the card's key; the UID alone is never enough), and the local lists (hotlist and
allow list, synced as at a door) must serve the card: a lost or blocked card is refused
even offline. Limits per group are data (a strict TOML file):

```
[limits]          # how many books a person of each group may hold at once
students = 5
staff = 10
```

A loan and a return are requests to the gateway named by the desk's own numbers (desk
terminal id, loan or return number), so a resent one is recognised and nothing is lent
twice; the desk continues above the highest numbers the gateway holds from it (asked once a
run), so a store deleted or restored from an old copy never reuses one. The gateway counts
the patron's open loans in the same transaction against the back office's limit for the
patron's group (the desk's may only lower it), refuses a lost card whatever the desk's
lists say, and answers the limit that applied, which the desk shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal.apdu.errors import CardError, MalformedResponse, TransportError, YikatongError
from terminal.campus.card import CampusCard, NotGenuine, authenticate
from terminal.campus.door import AccessList, card_refusal
from terminal.hotlist import Hotlist
from terminal.roles.session import TerminalSession
from terminal.sqlite import connect, transaction
from terminal.text import FileError
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml
from terminal.uplink import GatewayClient, GatewayRefused, GatewayUnavailable

LOANS_PATH = "/v1/campus/library/loans"
RETURNS_PATH = "/v1/campus/library/returns"
NUMBERS_PATH = "/v1/campus/library/numbers"
# the gateway's refusals of a number this desk used before: ask it again where to continue
REUSED = frozenset({"loan_conflict", "loan_reused", "return_conflict", "return_reused"})
MAX_LIMIT = 100
SCHEMA: dict[str, Any] = {"limits": ANY_KEYS}


class LibraryRefused(YikatongError):
    """The desk does not lend (or take back) the book; the message says why."""


@dataclass(frozen=True)
class LibraryRules:
    limits: dict[str, int]  # group -> books held at once


class _RulesFile(TomlFile):
    what = "library rules file"


def parse_library_rules(data: dict[str, Any], *, path: str | Path, text: str) -> LibraryRules:
    f = _RulesFile(data, str(path), text)
    f.check_keys(data, SCHEMA, ())
    limits = {
        group: f.count(n, ("limits", group), MAX_LIMIT)
        for group, n in data.get("limits", {}).items()
    }
    return LibraryRules(limits)


def load_library_rules(path: str | Path) -> LibraryRules:
    text, data = read_toml(path, "library rules file", lambda w, n: FileError(path, n, w))
    return parse_library_rules(data, path=path, text=text)


class DeskNumbers:
    """The desk's loan and return numbers, kept across restarts (the gateway's keys)."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.RLock()
        self._db = connect(path)
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS numbers (kind TEXT PRIMARY KEY, last INTEGER NOT NULL)"
        )

    def next(self, kind: str, above: int = 0) -> int:
        """The next ``kind`` number, above the last one kept and above ``above`` (the highest
        the gateway holds from this desk: a store lost or restored never reuses one)."""
        with self._lock, transaction(self._db) as db:
            row = db.execute("SELECT last FROM numbers WHERE kind = ?", (kind,)).fetchone()
            n = max(int(row[0]) if row else 0, above) + 1
            db.execute("INSERT OR REPLACE INTO numbers VALUES (?, ?)", (kind, n))
            return n

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class Loan:
    loan_no: int
    person_no: str
    book: str
    held: int  # books the patron holds now, this one included
    limit: int  # the gateway's: the back office's for the group, or the desk's if lower


class LibraryDesk:
    """One circulation desk: a card reader and SAM, the synced lists, the gateway."""

    def __init__(
        self,
        session: TerminalSession,
        rules: LibraryRules,
        access: AccessList,
        hotlist: Hotlist,
        numbers: DeskNumbers,
        client: GatewayClient,
    ):
        self.session = session
        self.rules = rules
        self.access = access
        self.hotlist = hotlist
        self.numbers = numbers
        self.client = client
        self._held: dict[str, int] | None = None  # the gateway's highest numbers, once a run

    def _next(self, kind: str) -> int:
        """The desk's next ``kind`` number, above every one the gateway holds from it (asked
        once a run, and again after the gateway refused a number as used)."""
        if self._held is None:
            held = self._send(NUMBERS_PATH, None, "the desk's numbers", method="GET")
            self._held = {k: int(held[f"{k}_no"]) for k in ("loan", "return")}
        return self.numbers.next(kind, self._held[kind])

    def patron(self) -> tuple[CampusCard, str]:
        """The card in the field, authenticated and served by the local lists; its group."""
        try:
            card = self.session.run(authenticate())
        except NotGenuine as exc:
            raise LibraryRefused(f"not a genuine campus card: {exc}") from None
        except (CardError, TransportError, MalformedResponse) as exc:
            raise LibraryRefused(f"card not read: {exc}") from None
        binding = self.access.get(card.serial_hex)
        refused = card_refusal(card, binding, self.hotlist, self.session.now().date())
        if refused or binding is None:
            raise LibraryRefused(refused or "card is not enrolled at this site")
        return card, binding.group

    def borrow(self, book: str) -> Loan:
        """Lend ``book`` to the card's holder; LibraryRefused says why not."""
        card, group = self.patron()
        limit = self.rules.limits.get(group)
        if not limit:
            raise LibraryRefused(f"group {group!r} may not borrow at this library")
        body = {
            "terminal_id": self.session.sam.terminal_id_hex,
            "loan_no": self._next("loan"),
            "card_serial": card.serial_hex,
            "person_no": card.identity.person_no,
            "book": book,
            "limit": limit,
        }
        answer = self._send(LOANS_PATH, body, "the loan")
        held, applied = int(answer["held"]), int(answer["limit"])
        return Loan(body["loan_no"], card.identity.person_no, book, held, applied)

    def give_back(self, book: str) -> dict[str, Any]:
        """Take ``book`` back (no card needed): the gateway closes its open loan."""
        body = {
            "terminal_id": self.session.sam.terminal_id_hex,
            "return_no": self._next("return"),
            "book": book,
        }
        return dict(self._send(RETURNS_PATH, body, "the return"))

    def _send(self, path: str, body: dict[str, Any] | None, what: str, method: str = "POST") -> Any:
        try:
            return self.client.request(method, path, json=body)
        except GatewayRefused as exc:
            if exc.code in REUSED:
                self._held = None
            raise LibraryRefused(f"{what} refused: {exc}") from None
        except GatewayUnavailable as exc:
            raise LibraryRefused(
                f"{what} needs the gateway, which did not answer ({exc})"
            ) from None
