"""Campus one-card: the back office (admin token) and the doors' lists and events."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Query

from gateway.api.deps import DB, Settings, with_role
from gateway.api.routes import JsonRoutes
from gateway.campus import allowance, library, reports, store
from gateway.edges import INT64_MAX, Text
from gateway.errors import Invalid
from gateway.schemas import (
    AllowanceRosterBody,
    AllowanceSpendBody,
    AllowanceVoidBody,
    CampusCardBody,
    CampusEventsBody,
    CampusLimitBody,
    CampusLossBody,
    CampusPersonBody,
    LibraryLoanBody,
    LibraryReturnBody,
)

router = APIRouter(tags=["campus"])
route = JsonRoutes(router)
admin_route = JsonRoutes(router, admin_only=True)
Door = with_role("door")
Listed = with_role("door", "library")  # the terminals that keep the allow list
Library = with_role("library")
Canteen = with_role("pos")
MAX_DELTA = 10_000


def _day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid("bad_date", f"{name} must be a date YYYY-MM-DD, got {text[:20]!r}") from None


@admin_route.post("/v1/admin/campus/people", "Add a person", status=201)
def add_person(body: CampusPersonBody, db: DB) -> Any:
    person = store.Person(
        body.person_no,
        body.name,
        body.group,
        _day("valid_from", body.valid_from),
        _day("valid_until", body.valid_until),
    )
    store.add_person(db, person)
    return {"person_no": body.person_no}


@admin_route.post("/v1/admin/campus/cards", "Bind a card to a person", status=201)
def bind_card(body: CampusCardBody, db: DB) -> Any:
    version = store.bind_card(db, body.card_serial, body.issuer_id, body.person_no)
    return {"version": version}


@admin_route.post("/v1/admin/campus/cards/{card_serial}/loss", "Report a card lost (hotlist, deny)")
def report_loss(card_serial: Text, body: CampusLossBody, db: DB) -> Any:
    return {"version": store.set_lost(db, card_serial, True, reason=body.reason)}


@admin_route.post("/v1/admin/campus/cards/{card_serial}/unblock", "Unblock a card (unlist, allow)")
def unblock(card_serial: Text, body: CampusLossBody, db: DB) -> Any:
    return {"version": store.set_lost(db, card_serial, False, reason=body.reason)}


@admin_route.get("/v1/admin/campus/counts", "Entries and exits per area")
def counts(db: DB, day: Text | None = None) -> Any:
    if day is not None:
        _day("day", day)
    return store.area_counts(db, day)


@route.get("/v1/campus/access", "The doors' allow list: changes after a version")
def access(
    terminal: Listed,
    db: DB,
    since: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(MAX_DELTA, ge=1, le=MAX_DELTA),
) -> Any:
    latest, changes = store.access_delta(db, since, limit)
    more = bool(changes) and changes[-1]["version"] < latest
    return {"version": latest, "since": since, "more": more, "changes": changes}


@route.post("/v1/campus/events", "A door's access events, each stored once")
def events(terminal: Door, body: CampusEventsBody, db: DB) -> Any:
    return store.store_events(db, terminal, body.model_dump())


@admin_route.post(
    "/v1/admin/campus/allowance", "Credit a month's allowance roster (each person once a month)"
)
def credit_allowance(body: AllowanceRosterBody, db: DB) -> Any:
    return allowance.credit_month(db, body.month, body.roster, body.lines)


@admin_route.get("/v1/admin/campus/allowance/{person_no}", "A person's allowance balance")
def allowance_balance(person_no: Text, db: DB) -> Any:
    return {"person_no": person_no, "balance_fen": allowance.balance(db, person_no)}


@route.post("/v1/campus/allowance/spend", "A canteen sale paid from the allowance")
def spend_allowance(terminal: Canteen, body: AllowanceSpendBody, db: DB) -> Any:
    return allowance.spend(db, terminal, body.model_dump())


@route.post("/v1/campus/library/loans", "A library desk lends a book (once per loan)")
def library_loan(terminal: Library, body: LibraryLoanBody, db: DB, settings: Settings) -> Any:
    return library.borrow(db, terminal, body.model_dump(), settings.library)


@route.get("/v1/campus/library/numbers", "A library desk's highest loan and return numbers")
def library_numbers(terminal: Library, db: DB) -> Any:
    return library.desk_numbers(db, terminal)


@route.post("/v1/campus/library/returns", "A library desk takes a book back")
def library_return(terminal: Library, body: LibraryReturnBody, db: DB) -> Any:
    return library.give_back(db, terminal, body.model_dump())


@route.post(
    "/v1/campus/allowance/void",
    "Void a sale whose answer the canteen lost (refunded if it was taken)",
)
def void_allowance(terminal: Canteen, body: AllowanceVoidBody, db: DB) -> Any:
    return allowance.void(db, terminal, body.model_dump())


@admin_route.post("/v1/admin/campus/limits", "Set a person's or a group's allowance day limit")
def set_limit(body: CampusLimitBody, db: DB) -> Any:
    allowance.set_day_limit(db, body.scope, body.name, body.day_limit_fen)
    return body.model_dump()


@admin_route.get(
    "/v1/admin/campus/accounts",
    "Account review: people, their cards and status, allowance, day limit",
)
def accounts(db: DB) -> Any:
    return {"people": reports.accounts(db)}


def _range(since: str, until: str | None) -> tuple[str, str]:
    lo = _day("since", since)
    hi = _day("until", until) if until is not None else lo
    if hi < lo or (hi - lo).days > 366:
        raise Invalid("bad_date", "until must be on or after since, at most a year later")
    return lo.isoformat(), hi.isoformat()


@admin_route.get("/v1/admin/campus/reports/entries", "Entries and exits per area per day")
def entries_report(db: DB, since: Text, until: Text | None = None) -> Any:
    return {"days": reports.entries(db, *_range(since, until))}


@admin_route.get(
    "/v1/admin/campus/reports/sales", "Canteen allowance sales per meal period per day"
)
def sales_report(db: DB, since: Text, until: Text | None = None) -> Any:
    return {"days": reports.sales(db, *_range(since, until))}
