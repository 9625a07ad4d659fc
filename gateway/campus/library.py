"""Library loans and returns, named by the desk's own numbers (terminal id, loan number).

A loan is stored once: the same loan sent again is answered as before and lends nothing
more; one that reuses the number (other content, or a loan returned since) is refused, and
a desk whose store was lost or restored asks ``desk_numbers`` where to continue. The card
must be bound, not lost, and its holder the person the desk read from the card; the
patron's open loans are counted in the same transaction against the back office's limit
for the person's group (``LoanLimits``; a desk may send a lower one, never a higher), and a
book on loan is not lent again. A return names the book and the desk's return number, and
closes the book's open loan once (its number reused once the book is lent again is
refused).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.auth import Terminal
from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.hotlist import canonical_id
from gateway.storage import POSTGRES, Database, now_ms, retried
from terminal.text import FileError
from terminal.tomlfile import ANY_KEYS, TomlFile, read_toml

BOOK = re.compile(r"^[0-9A-Za-z._/-]{1,32}\Z")
MAX_LIMIT = 100
_WENT_BACK = (
    "; a desk's number names one loan or return: its numbers went back (a store lost or"
    " restored from an old copy)"
)


@dataclass(frozen=True)
class LoanLimits:
    """Books a person may hold at once, the back office's to set: per person group, and the
    site's limit for every group not named (0: that group does not borrow)."""

    site: int = 10
    groups: Mapping[str, int] = field(default_factory=dict)

    def of(self, group: str) -> int:
        return self.groups.get(group, self.site)


class _LimitsFile(TomlFile):
    what = "loan limits file"


def load_loan_limits(path: str | Path) -> LoanLimits:
    """``site = N`` and ``[groups]`` ``name = N`` (books held at once, 0..MAX_LIMIT)."""
    text, data = read_toml(path, "loan limits file", lambda w, n: FileError(path, n, w))
    f = _LimitsFile(data, str(path), text)
    f.check_keys(data, {"site": None, "groups": ANY_KEYS}, ())
    groups = {g: f.count(n, ("groups", g), MAX_LIMIT) for g, n in data.get("groups", {}).items()}
    return LoanLimits(f.count(data.get("site", LoanLimits.site), ("site",), MAX_LIMIT), groups)


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**62:
        raise Invalid("bad_number", f"{what} must be a positive whole number")
    return value


def _book(value: Any) -> str:
    if not isinstance(value, str) or not BOOK.match(value):
        raise Invalid("bad_book", "book must be 1-32 letters, digits or . _ / - (its barcode)")
    return value


def _own(terminal: Terminal, doc: Mapping[str, Any]) -> None:
    if doc.get("terminal_id") != terminal.terminal_id:
        raise Forbidden("wrong_terminal", f"terminal {terminal.terminal_id} acts only as itself")


@retried
def borrow(
    db: Database, terminal: Terminal, doc: Mapping[str, Any], limits: LoanLimits
) -> dict[str, Any]:
    """Lend a book to the card's holder; how many books they hold now and the limit that
    applied (the back office's, or the desk's when lower), or a refusal."""
    _own(terminal, doc)
    loan_no = _number(doc.get("loan_no"), "loan_no")
    book = _book(doc.get("book"))
    asked = doc.get("limit")
    if asked is not None and (
        isinstance(asked, bool) or not isinstance(asked, int) or not 0 < asked <= MAX_LIMIT
    ):
        raise Invalid("bad_limit", f"limit must be 1..{MAX_LIMIT} books")
    serial = canonical_id("card_serial", str(doc.get("card_serial", "")))
    person = doc.get("person_no")
    loan = (serial, person, book)
    with db.tx() as cur:
        if db.dialect == POSTGRES:
            cur.execute("SELECT pg_advisory_xact_lock(978018)")  # counts and lends in order
        cur.execute(
            "SELECT card_serial, person_no, book, loan_limit, returned_at FROM campus_library_loans"
            " WHERE terminal_id = ? AND loan_no = ?",
            (terminal.terminal_id, loan_no),
        )
        old = cur.fetchone()
        if old is not None:
            if tuple(old[:3]) != loan:
                raise Conflict(
                    "loan_conflict", f"loan {loan_no} was recorded with other content{_WENT_BACK}"
                )
            if old[4] is not None:
                raise Conflict(
                    "loan_reused",
                    f"loan {loan_no} was lent and returned already, so this is not its resend"
                    f"{_WENT_BACK}",
                )
            return {"held": _held(cur, str(person)), "limit": int(old[3]), "duplicate": True}
        cur.execute(
            "SELECT c.person_no, c.state, p.grp FROM campus_cards c JOIN campus_people p"
            " ON p.person_no = c.person_no WHERE c.card_serial = ?",
            (serial,),
        )
        card = cur.fetchone()
        if card is None:
            raise NotFound("unknown_card", f"card {serial} is not a campus card here")
        if card[1] != "active":
            raise Forbidden("card_lost", f"card {serial} is reported lost: no loans on it")
        if card[0] != person:
            raise Forbidden("wrong_person", f"card {serial} is not bound to person {person}")
        cur.execute(
            "SELECT 1 FROM campus_library_loans WHERE book = ? AND returned_at IS NULL", (book,)
        )
        if cur.fetchone() is not None:
            raise Conflict("book_on_loan", f"book {book} is on loan already (return it first)")
        office = limits.of(card[2])
        if office == 0:
            raise Forbidden(
                "no_loans", f"group {card[2]} does not borrow here (the back office's limits)"
            )
        limit = office if asked is None else min(asked, office)
        held = _held(cur, person)
        if held >= limit:
            whose = "the desk's" if limit < office else f"the back office's for group {card[2]}"
            raise Conflict(
                "loan_limit",
                f"person {person} holds {held} book(s), the limit is {limit} ({whose})",
            )
        cur.execute(
            "INSERT INTO campus_library_loans (terminal_id, loan_no, card_serial, person_no,"
            " book, loan_limit, borrowed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (terminal.terminal_id, loan_no, serial, person, book, limit, now_ms()),
        )
    return {"held": held + 1, "limit": limit, "duplicate": False}


@retried
def give_back(db: Database, terminal: Terminal, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Close the book's open loan; a return sent again is answered as before."""
    _own(terminal, doc)
    return_no = _number(doc.get("return_no"), "return_no")
    book = _book(doc.get("book"))
    with db.tx() as cur:
        if db.dialect == POSTGRES:
            cur.execute("SELECT pg_advisory_xact_lock(978018)")
        cur.execute(
            "SELECT r.book, r.person_no, (SELECT 1 FROM campus_library_loans n"
            " WHERE n.book = r.book AND n.returned_at IS NULL)"
            " FROM campus_library_loans r WHERE r.return_terminal = ? AND r.return_no = ?",
            (terminal.terminal_id, return_no),
        )
        old = cur.fetchone()
        if old is not None:
            if old[0] != book:
                raise Conflict(
                    "return_conflict", f"return {return_no} took back another book{_WENT_BACK}"
                )
            if old[2] is not None:
                raise Conflict(
                    "return_reused",
                    f"return {return_no} took book {book} back before it was lent again, so"
                    f" this is not its resend{_WENT_BACK}",
                )
            return {"book": book, "person_no": old[1], "duplicate": True}
        cur.execute(
            "SELECT terminal_id, loan_no, person_no FROM campus_library_loans"
            " WHERE book = ? AND returned_at IS NULL",
            (book,),
        )
        loan = cur.fetchone()
        if loan is None:
            raise NotFound("not_on_loan", f"book {book} is not on loan")
        cur.execute(
            "UPDATE campus_library_loans SET return_terminal = ?, return_no = ?, returned_at = ?"
            " WHERE terminal_id = ? AND loan_no = ?",
            (terminal.terminal_id, return_no, now_ms(), loan[0], loan[1]),
        )
    return {"book": book, "person_no": loan[2], "duplicate": False}


def desk_numbers(db: Database, terminal: Terminal) -> dict[str, int]:
    """The highest loan and return numbers this desk used (0: none), where a desk whose
    store was lost or restored from an old copy continues, so it never reuses one."""
    with db.tx() as cur:
        cur.execute(
            "SELECT MAX(loan_no) FROM campus_library_loans WHERE terminal_id = ?",
            (terminal.terminal_id,),
        )
        loans = cur.fetchone()[0]
        cur.execute(
            "SELECT MAX(return_no) FROM campus_library_loans WHERE return_terminal = ?",
            (terminal.terminal_id,),
        )
        returns = cur.fetchone()[0]
    return {"loan_no": int(loans or 0), "return_no": int(returns or 0)}


def _held(cur: Any, person_no: str) -> int:
    cur.execute(
        "SELECT COUNT(*) FROM campus_library_loans WHERE person_no = ? AND returned_at IS NULL",
        (person_no,),
    )
    return int(cur.fetchone()[0])
