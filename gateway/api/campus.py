"""Campus one-card: the back office (admin token) and the doors' lists and events."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from gateway.api.deps import DB, Settings, admin, with_role
from gateway.api.http import json_response
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


@router.post("/v1/admin/campus/people", summary="Add a person", dependencies=[Depends(admin)])
def add_person(body: CampusPersonBody, db: DB) -> Response:
    person = store.Person(
        body.person_no,
        body.name,
        body.group,
        _day("valid_from", body.valid_from),
        _day("valid_until", body.valid_until),
    )
    store.add_person(db, person)
    return json_response({"person_no": body.person_no}, 201)


@router.post(
    "/v1/admin/campus/cards", summary="Bind a card to a person", dependencies=[Depends(admin)]
)
def bind_card(body: CampusCardBody, db: DB) -> Response:
    version = store.bind_card(db, body.card_serial, body.issuer_id, body.person_no)
    return json_response({"version": version}, 201)


@router.post(
    "/v1/admin/campus/cards/{card_serial}/loss",
    summary="Report a card lost (hotlist, deny)",
    dependencies=[Depends(admin)],
)
def report_loss(card_serial: Text, body: CampusLossBody, db: DB) -> Response:
    return json_response({"version": store.set_lost(db, card_serial, True, reason=body.reason)})


@router.post(
    "/v1/admin/campus/cards/{card_serial}/unblock",
    summary="Unblock a card (unlist, allow)",
    dependencies=[Depends(admin)],
)
def unblock(card_serial: Text, body: CampusLossBody, db: DB) -> Response:
    return json_response({"version": store.set_lost(db, card_serial, False, reason=body.reason)})


@router.get(
    "/v1/admin/campus/counts", summary="Entries and exits per area", dependencies=[Depends(admin)]
)
def counts(db: DB, day: Text | None = None) -> Response:
    if day is not None:
        _day("day", day)
    return json_response(store.area_counts(db, day))


@router.get("/v1/campus/access", summary="The doors' allow list: changes after a version")
def access(
    terminal: Listed,
    db: DB,
    since: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(MAX_DELTA, ge=1, le=MAX_DELTA),
) -> Response:
    latest, changes = store.access_delta(db, since, limit)
    more = bool(changes) and changes[-1]["version"] < latest
    return json_response({"version": latest, "since": since, "more": more, "changes": changes})


@router.post("/v1/campus/events", summary="A door's access events, each stored once")
def events(terminal: Door, body: CampusEventsBody, db: DB) -> Response:
    return json_response(store.store_events(db, terminal, body.model_dump()))


@router.post(
    "/v1/admin/campus/allowance",
    summary="Credit a month's allowance roster (each person once a month)",
    dependencies=[Depends(admin)],
)
def credit_allowance(body: AllowanceRosterBody, db: DB) -> Response:
    return json_response(allowance.credit_month(db, body.month, body.roster, body.lines))


@router.get(
    "/v1/admin/campus/allowance/{person_no}",
    summary="A person's allowance balance",
    dependencies=[Depends(admin)],
)
def allowance_balance(person_no: Text, db: DB) -> Response:
    return json_response({"person_no": person_no, "balance_fen": allowance.balance(db, person_no)})


@router.post("/v1/campus/allowance/spend", summary="A canteen sale paid from the allowance")
def spend_allowance(terminal: Canteen, body: AllowanceSpendBody, db: DB) -> Response:
    return json_response(allowance.spend(db, terminal, body.model_dump()))


@router.post("/v1/campus/library/loans", summary="A library desk lends a book (once per loan)")
def library_loan(terminal: Library, body: LibraryLoanBody, db: DB, settings: Settings) -> Response:
    return json_response(library.borrow(db, terminal, body.model_dump(), settings.library))


@router.post("/v1/campus/library/returns", summary="A library desk takes a book back")
def library_return(terminal: Library, body: LibraryReturnBody, db: DB) -> Response:
    return json_response(library.give_back(db, terminal, body.model_dump()))


@router.post(
    "/v1/campus/allowance/void",
    summary="Void a sale whose answer the canteen lost (refunded if it was taken)",
)
def void_allowance(terminal: Canteen, body: AllowanceVoidBody, db: DB) -> Response:
    return json_response(allowance.void(db, terminal, body.model_dump()))


@router.post(
    "/v1/admin/campus/limits",
    summary="Set a person's or a group's allowance day limit",
    dependencies=[Depends(admin)],
)
def set_limit(body: CampusLimitBody, db: DB) -> Response:
    allowance.set_day_limit(db, body.scope, body.name, body.day_limit_fen)
    return json_response(body.model_dump())


@router.get(
    "/v1/admin/campus/accounts",
    summary="Account review: people, their cards and status, allowance, day limit",
    dependencies=[Depends(admin)],
)
def accounts(db: DB) -> Response:
    return json_response({"people": reports.accounts(db)})


def _range(since: str, until: str | None) -> tuple[str, str]:
    lo = _day("since", since)
    hi = _day("until", until) if until is not None else lo
    if hi < lo or (hi - lo).days > 366:
        raise Invalid("bad_date", "until must be on or after since, at most a year later")
    return lo.isoformat(), hi.isoformat()


@router.get(
    "/v1/admin/campus/reports/entries",
    summary="Entries and exits per area per day",
    dependencies=[Depends(admin)],
)
def entries_report(db: DB, since: Text, until: Text | None = None) -> Response:
    return json_response({"days": reports.entries(db, *_range(since, until))})


@router.get(
    "/v1/admin/campus/reports/sales",
    summary="Canteen allowance sales per meal period per day",
    dependencies=[Depends(admin)],
)
def sales_report(db: DB, since: Text, until: Text | None = None) -> Response:
    return json_response({"days": reports.sales(db, *_range(since, until))})
