"""Subsidies: roster import and approval (admin), pickup (kiosks).

Admin endpoints take the gateway's ``X-Admin-Token`` and name the person acting in the
body (``actor``) or query (``declared_by``): the token says the caller may administer,
the name goes into the audit trail and the separation-of-duties rule (subsidy/store.py).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from gateway.api.deps import DB, HSM, Caller, CatalogueDep, Kiosk, Settings, admin
from gateway.api.http import json_response
from gateway.api.routes import JsonRoutes, held_load_routes
from gateway.cards import card_number_of, registry_lookup
from gateway.edges import DbId, Text
from gateway.errors import Conflict, TooLarge
from gateway.schemas import (
    ActBody,
    AuditBody,
    BankBatchBody,
    FindingCloseBody,
    ObjectionBody,
    PickupBody,
    PublishBody,
    RedirectBody,
    RejectBody,
    ResolveBody,
    SignOffBody,
)
from gateway.settings import MAX_ROSTER_BYTES
from gateway.subsidy import audit, bank, cardchange, pickup, store
from gateway.subsidy.publication import (
    publication_csv,
    publication_html,
    publication_rows,
    publication_xlsx,
)

router = APIRouter(tags=["subsidies"])
ADMIN = [Depends(admin)]
route = JsonRoutes(router)
admin_route = JsonRoutes(router, admin_only=True)


# -- admin: rosters and approval --------------------------------------------------------------
@router.post(
    "/v1/admin/subsidies/rosters",
    summary="Import a roster, CSV (UTF-8/GBK) or XLSX (body: the file); answers the report",
    dependencies=ADMIN,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def import_roster(
    request: Request,
    db: DB,
    settings: Settings,
    catalogue: CatalogueDep,
    declared_by: Annotated[Text, Query(description="who declares this roster")],
    title: Text = "",
    source: Annotated[Text, Query(description="the file name, for the record")] = "",
) -> Response:
    raw = await request.body()
    if len(raw) > MAX_ROSTER_BYTES:
        raise TooLarge("too_large", f"a roster file has at most {MAX_ROSTER_BYTES} bytes")

    def work() -> store.ImportResult:
        return store.import_roster(
            db,
            raw,
            catalogue,
            declared_by=declared_by,
            title=title,
            source=source,
            cards=registry_lookup(db) if settings.subsidy_check_cards else None,
        )

    result = await run_in_threadpool(work)
    return json_response(result.to_json(), 201 if result.roster else 200)


@admin_route.get("/v1/admin/subsidies/rosters", "Every roster and its state")
def rosters(db: DB) -> Any:
    return [x.to_json() for x in store.list_rosters(db)]


@admin_route.get("/v1/admin/subsidies/rosters/{roster_id}", "A roster, its trail, its rejections")
def roster(roster_id: DbId, db: DB) -> Any:
    return {
        "roster": store.get_roster(db, roster_id).to_json(),
        "events": store.events(db, roster_id),
        "publication": pub.to_json() if (pub := store.get_publication(db, roster_id)) else None,
        "objections": store.objections(db, roster_id),
        "import_report": store.stored_report(db, roster_id),
    }


@admin_route.post("/v1/admin/subsidies/rosters/{roster_id}/review", "declared → reviewed")
def review(roster_id: DbId, body: ActBody, db: DB) -> Any:
    return store.review(db, roster_id, body.actor, body.note).to_json()


@admin_route.post("/v1/admin/subsidies/rosters/{roster_id}/approve", "reviewed → approved")
def approve(roster_id: DbId, body: ActBody, db: DB) -> Any:
    return store.approve(db, roster_id, body.actor, body.note).to_json()


@admin_route.post("/v1/admin/subsidies/rosters/{roster_id}/reject", "Reject; lines withdrawn")
def reject(roster_id: DbId, body: RejectBody, db: DB) -> Any:
    return store.reject(db, roster_id, body.actor, body.reason).to_json()


@admin_route.post("/v1/admin/subsidies/rosters/{roster_id}/send", "approved → sent to finance")
def send(roster_id: DbId, body: ActBody, db: DB) -> Any:
    return store.send_to_finance(db, roster_id, body.actor, body.note).to_json()


# -- 公示 -------------------------------------------------------------------------------------
@admin_route.post(
    "/v1/admin/subsidies/rosters/{roster_id}/publication",
    "Put a reviewed roster on display (公示) from starts_on to ends_on",
    status=201,
)
def publish(roster_id: DbId, body: PublishBody, db: DB) -> Any:
    pub = store.publish(db, roster_id, body.actor, body.starts_on, body.ends_on, body.place)
    return pub.to_json()


@router.get(
    "/v1/admin/subsidies/rosters/{roster_id}/publication",
    summary="The 公示 listing (json, csv, xlsx or a printable html page), names and IDs masked",
    dependencies=ADMIN,
)
def publication(roster_id: DbId, db: DB, format: Text = "json") -> Response:
    report = store.roster_lines(db, roster_id)
    roster = store.get_roster(db, roster_id)
    pub = store.get_publication(db, roster_id)
    if format == "csv":
        return PlainTextResponse(publication_csv(report), media_type="text/csv")
    if format == "xlsx":
        return Response(
            publication_xlsx(report, roster.title),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    if format == "html":
        if pub is None:
            raise Conflict("not_published", f"roster #{roster_id} is not published yet")
        page = publication_html(
            report,
            title=roster.title,
            starts_on=pub.starts_on.isoformat(),
            ends_on=pub.ends_on.isoformat(),
            place=pub.place,
        )
        return HTMLResponse(page)
    return json_response(publication_rows(report))


@admin_route.post(
    "/v1/admin/subsidies/rosters/{roster_id}/objections",
    "Record an objection against a line during 公示",
    status=201,
)
def object_to(roster_id: DbId, body: ObjectionBody, db: DB) -> Any:
    return store.object_to(db, roster_id, body.row, body.actor, body.reason)


@admin_route.post(
    "/v1/admin/subsidies/objections/{objection_id}/resolve",
    "Uphold (line withdrawn) or dismiss an objection",
)
def resolve(objection_id: DbId, body: ResolveBody, db: DB) -> Any:
    return store.resolve_objection(db, objection_id, body.actor, body.outcome, body.note)


@admin_route.post(
    "/v1/admin/subsidies/rosters/{roster_id}/signoff",
    "Record the residents' sign-off (群众签字认可): who, when, how many signatures",
)
def sign_off(roster_id: DbId, body: SignOffBody, db: DB) -> Any:
    return store.sign_off(db, roster_id, body.actor, body.signatures, body.note).to_json()


@admin_route.get("/v1/admin/subsidies/report", "What was paid and what is pending")
def report(db: DB, roster_id: DbId | None = None) -> Any:
    if roster_id is not None:
        store.get_roster(db, roster_id)
    return pickup.payment_report(db, roster_id)


@admin_route.post(
    "/v1/admin/subsidies/lines/{line_id}/card",
    "Move an unpaid line to another card of its payee (recorded in the line's trail)",
)
def redirect(line_id: DbId, body: RedirectBody, db: DB) -> Any:
    card = card_number_of(body.card_number)
    return cardchange.redirect_line(db, line_id, card, body.actor, body.note)


@admin_route.get(
    "/v1/admin/subsidies/lines/{line_id}/events", "A line's own trail: bank, card changes"
)
def line_events(line_id: DbId, db: DB) -> Any:
    return cardchange.line_trail(db, line_id)


# -- the agent bank ---------------------------------------------------------------------------
@admin_route.post(
    "/v1/admin/subsidies/bank/batches",
    "A payment batch for the agent bank: every line of rosters sent to finance not yet "
    "paid or at the bank, or a batch's failed lines again (reissue_of)",
    status=201,
)
def bank_batch(body: BankBatchBody, db: DB, settings: Settings) -> Any:
    return bank.create_batch(
        db,
        body.actor,
        roster_ids=body.rosters,
        reissue_of=body.reissue_of,
        banks=bank.agent_banks(settings.banks or settings.bank_key),
        bank=body.bank,
    )


@router.get(
    "/v1/admin/subsidies/bank/batches/{batch}/file",
    summary="The payment file of a batch: csv (UTF-8) or fixed (fixed width, GBK)",
    dependencies=ADMIN,
)
def bank_file(batch: Text, db: DB, settings: Settings, format: Text | None = None) -> Response:
    head, lines = bank.batch_lines(db, batch)
    banks = bank.agent_banks(settings.banks or settings.bank_key)
    if (format or (banks.bank(head["bank"]).format if banks else "csv")) == "fixed":
        return Response(bank.payment_fixed(head, lines), media_type="text/plain; charset=gbk")
    return PlainTextResponse(bank.payment_csv(head, lines), media_type="text/csv")


@router.post(
    "/v1/admin/subsidies/bank/results",
    summary="Import the agent bank's result file (all or nothing)",
    dependencies=ADMIN,
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def bank_result(
    request: Request,
    db: DB,
    settings: Settings,
    imported_by: Annotated[Text, Query(description="who imports the bank's file")],
    x_bank_signature: Annotated[
        str | None, Header(description="the bank's MAC of the file (banks that sign apart)")
    ] = None,
) -> Response:
    raw = await request.body()
    doc = await run_in_threadpool(
        bank.import_result,
        db,
        raw,
        imported_by,
        settings.banks or settings.bank_key,
        x_bank_signature,
    )
    return json_response(doc)


@admin_route.get(
    "/v1/admin/subsidies/bank/tracking",
    "Every bank line: paid, failed, sent or overdue past 3 working days",
)
def bank_tracking(
    db: DB,
    batch: Text | None = None,
    holiday: Annotated[list[date] | None, Query(description="a holiday (repeat)")] = None,
) -> Any:
    calendar = bank.Calendar(frozenset(holiday or ()))
    return bank.tracking(db, calendar=calendar, batch=batch)


@admin_route.get(
    "/v1/admin/subsidies/funds",
    "Subsidy funds per item and period by channel; e-purse top-ups apart",
)
def funds(db: DB) -> Any:
    return bank.funds(db)


# -- audits (专项治理) ----------------------------------------------------------------------------
@admin_route.post(
    "/v1/admin/subsidies/audit",
    "Run the audit: exclusive items, twice in a period, several cards, deceased, "
    "优亲厚友, above cap, paid to lost cards; stores new findings",
)
def run_audit(body: AuditBody, db: DB, catalogue: CatalogueDep) -> Any:
    deceased = audit.checked_ids(body.deceased, "deceased")
    staff = [audit.staff_of(s.model_dump()) for s in body.staff]
    return audit.run_audit(db, catalogue, body.actor, deceased=deceased, staff=staff)


@admin_route.get("/v1/admin/subsidies/findings", "Audit findings")
def findings(db: DB, state: Text | None = None) -> Any:
    return audit.list_findings(db, state)


@admin_route.post(
    "/v1/admin/subsidies/findings/{finding_id}/rectify", "Hand a finding for rectification (整改)"
)
def rectify(finding_id: DbId, body: ActBody, db: DB) -> Any:
    return audit.rectify(db, finding_id, body.actor)


@admin_route.post("/v1/admin/subsidies/findings/{finding_id}/close", "Close a finding with a note")
def close_finding(finding_id: DbId, body: FindingCloseBody, db: DB) -> Any:
    return audit.close(db, finding_id, body.actor, body.note)


@router.get(
    "/v1/admin/subsidies/audit/report",
    summary="Lines, paid, unpaid and open findings by item, township, department or month",
    dependencies=ADMIN,
)
def audit_report(db: DB, by: Text = "item", format: Text = "json") -> Response:
    rows = audit.report(db, by)
    if format == "csv":
        return PlainTextResponse(audit.report_csv(rows), media_type="text/csv")
    if format == "xlsx":
        return Response(
            audit.report_xlsx(rows, f"补贴报表 ({by})"),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    return json_response(rows)


# -- kiosks: pickup ---------------------------------------------------------------------------
@route.get("/v1/subsidies/cards/{card_number}", "A card's subsidy lines, by status")
def for_card(card_number: Text, kiosk: Kiosk, db: DB) -> Any:
    return pickup.for_card(db, card_number_of(card_number))


@route.post("/v1/subsidies/pickups", "Authorise a load that pays approved lines")
def pick_up(body: PickupBody, terminal: Caller, hsm: HSM, db: DB, settings: Settings) -> Any:
    load, lines = pickup.authorize_pickup(
        db,
        hsm,
        terminal,
        body.load.to_request(),
        body.lines,
        body.holder,
        limits=settings.load_limits,
        rules=settings.pickup_holder,
    )
    return {"load": load.to_json(), "lines": [s.to_json(full=False) for s in lines]}


held_load_routes(
    router,
    "/v1/subsidies/loads",
    prove=pickup.prove_held,
    void_challenge=pickup.void_challenge_held,
    void=pickup.void_held,
    summaries=(
        "Settle a held pickup by PROVE",
        "A void challenge for a held pickup (the kiosk that holds it only)",
        "Void a held pickup on the card's answer to its challenge (holding kiosk only)",
    ),
)
