"""Every request and response body of the gateway's HTTP API (and so of its OpenAPI schema).

Field types come from ``gateway.edges`` (``Text``, ``DbId``, ``JsonValue``): text and numbers
the storage can hold. The business modules never see these models, only the values in them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gateway import ingest, loads, numbers
from gateway.edges import INT64_MAX, DbId, JsonValue, Text
from terminal.epurse.model import LoadRequest
from terminal.identity import HOLDER_PATTERN
from terminal.record import QR_RIDE, RecordKind
from terminal.record import Field as RecordField

HEX4 = r"^[0-9A-Fa-f]{8}$"  # 4 bytes in hex: a MAC or TAC, the card's random
HEX6 = r"^[0-9A-Fa-f]{12}$"  # a terminal (or desk) id
HEX8 = r"^[0-9A-Fa-f]{16}$"  # an issuer id, a card's application serial


def desk_id_field(what: str) -> Any:
    """An optional desk id in a desk's body; ``what`` says what it names (the server
    refuses it unless it is the token's own desk)."""
    return Field(
        default=None,
        pattern=HEX6,
        description=f"{what}; refused unless it is the token's desk",
    )


# -- ingest -----------------------------------------------------------------------------------
class UploadRecord(BaseModel):
    """One journal row as a terminal uploads it (``JournalRow.upload_record()``)."""

    model_config = ConfigDict(extra="forbid")  # ingest refuses unknown fields

    terminal_id: str = Field(pattern=HEX6)
    terminal_seq: int = Field(ge=0, le=0xFFFFFFFF)
    issuer_id: str = Field(pattern=HEX8)
    card_serial: str = Field(pattern=HEX8)
    txn_type: int = Field(
        ge=0, le=0xFF, description="05 ED purchase, 06 EP purchase, 09 CAPP purchase"
    )
    amount: int = Field(ge=0, le=ingest.MAX_AMOUNT, description="fen")
    balance_before: int = Field(ge=0, le=ingest.MAX_BALANCE, description="fen")
    card_atc: int = Field(ge=0, le=0xFFFF)
    key_version: int = Field(ge=0, le=0xFF)
    algorithm: int = Field(ge=0, le=0xFF)
    txn_time: Text = Field(description="card local time, ISO 8601 without zone")
    state: Text = Field(description="settled or suspect")
    tac: str | None = Field(pattern=HEX4)
    mac2: str | None = Field(pattern=HEX4)
    mac2_verified: bool | None
    resolution: Text | None
    context: dict[str, JsonValue]


def _record_field(f: RecordField) -> tuple[Any, Any]:
    """A record field as a pydantic field: its wire type and bounds (terminal/record.py)."""
    if f.type is bytes:
        kind: Any = str
        info = Field(pattern=f"^[0-9A-Fa-f]{{{2 * f.length}}}$", description=f.doc)
    elif f.type is int:
        kind, info = int, Field(ge=f.lo, le=f.hi, description=f.doc)
    elif f.type is dict:
        kind, info = dict[str, JsonValue], Field(description=f.doc)
    elif f.type is bool:
        kind, info = bool, Field(description=f.doc)
    else:
        kind, info = Text, Field(max_length=f.max_len or None, description=f.doc)
    return (kind | None if f.nullable else kind), info


def record_model(kind: RecordKind, name: str) -> type[BaseModel]:
    """The upload form of a record kind, derived from its declaration."""
    model = create_model(  # type: ignore[call-overload]
        name,
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"One {kind.name} record as a terminal uploads it.",
        **{f.name: _record_field(f) for f in kind.fields},
    )
    return model  # type: ignore[no-any-return]


QrRideRecord = record_model(QR_RIDE, "QrRideRecord")


class UploadBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: Text = Field(description="the uploader's id for this body; re-sent as is on retry")
    terminal_id: Text = Field(description="must be the authenticated terminal")
    kind: Text = Field(
        default="purchase",
        description="purchase, ec_purchase (POS only) or qr_ride (validators only): the"
        " records' kind, one per batch",
    )
    records: list[UploadRecord | QrRideRecord]  # type: ignore[valid-type]


class Ack(BaseModel):
    terminal_seq: int | None = Field(default=None, description="a purchase's sequence")
    ec_seq: int | None = Field(default=None, description="an EC sale's sequence")
    qr_seq: int | None = Field(default=None, description="a QR ride's sequence")
    status: str = Field(description="stored, duplicate, or conflict (kept aside, not stored)")


class BatchAck(BaseModel):
    batch_id: str
    terminal_id: str
    replay: bool
    counts: dict[str, int]
    acks: list[Ack]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` put in place: a raw-body route declares it in
    ``openapi_extra``, where ``#/$defs/...`` would point at the OpenAPI document's root."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


# -- online loads (kiosk loads and subsidy pickups) -------------------------------------------
class LoadRequestBody(BaseModel):
    """The card's INITIALIZE FOR LOAD answer and what the kiosk asked it."""

    issuer_id: str = Field(pattern=HEX8)
    card_serial: str = Field(pattern=HEX8)
    terminal_id: str = Field(pattern=HEX6)
    amount: int = Field(gt=0, le=INT64_MAX, description="fen")
    balance_before: int = Field(ge=0, le=INT64_MAX, description="fen")
    online_atc: int = Field(ge=0, le=0xFFFF)
    key_version: int = Field(ge=0, le=0xFF)
    algorithm: int = Field(ge=0, le=0xFF)
    card_random: str = Field(pattern=HEX4)
    mac1: str = Field(pattern=HEX4)
    when: datetime
    purpose: Text = Field(default="", max_length=200, description="e.g. a subsidy roster line")

    def to_request(self) -> LoadRequest:
        return loads.load_request(self, self.when)


class ConfirmBody(BaseModel):
    tac: str = Field(pattern=HEX4)


class ProveBody(BaseModel):
    mac: str = Field(pattern=HEX4)
    tac: str = Field(pattern=HEX4)


class VoidBody(BaseModel):
    evidence: LoadRequestBody = Field(
        description="INITIALIZE FOR LOAD run with the void challenge's terminal id and amount"
    )


# -- admin -------------------------------------------------------------------------------------
class TerminalBody(BaseModel):
    terminal_id: Text
    operator_id: Text
    role: Text = "pos"
    name: Text = Field(default="", max_length=200)


class HotlistBody(BaseModel):
    action: Text = Field(description="add (挂失) or remove (解挂)")
    issuer_id: Text = Field(description="16 hex digits")
    card_serial: Text = Field(description="16 hex digits (application serial)")
    reason: Text = Field(default="", max_length=200)


class QrParamsBody(BaseModel):
    text: str = Field(description="the whole file: one entry a line (docs/qr.md)")


# -- card book ---------------------------------------------------------------------------------
class RecordsBody(BaseModel):
    records: list[dict[str, JsonValue]] = Field(description="CardRegistry.export() records")
    desk_id: str | None = desk_id_field("the desk whose book this is")


class LeaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer_id: str = Field(pattern=HEX8)
    count: int = Field(ge=1, le=numbers.MAX_BLOCK, description="how many card numbers")
    desk_id: str | None = desk_id_field("the desk the block is for")


class ClaimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: Text = Field(description="the 19 printed digits")
    issuer_id: str = Field(pattern=HEX8)
    id_number: Text = Field(description="the holder's identity number")
    card_kind: int = Field(ge=0, le=0xFF)
    replaces: Text | None = Field(default=None, description="the lost card it replaces")


class ReleaseClaimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Text = Field(description="who at the card centre releases the claim")
    reason: Text = Field(description="why: which desk went away, and how that was checked")


class LossBody(BaseModel):
    card_number: Text = Field(description="the 19 printed digits")
    id_number: Text = Field(description="the holder's ID number, as on the card's record")


# -- subsidies ---------------------------------------------------------------------------------
class ActBody(BaseModel):
    actor: Text = Field(description="who reviews or approves (name or staff id)")
    note: Text = Field(default="", max_length=1000)


class RejectBody(BaseModel):
    actor: Text
    reason: Text = Field(max_length=1000)


class PublishBody(BaseModel):
    actor: Text = Field(description="who puts the roster on display (公示)")
    starts_on: date
    ends_on: date
    place: Text = Field(default="", max_length=200)


class ObjectionBody(BaseModel):
    actor: Text = Field(description="who records the objection")
    row: int = Field(ge=2, le=1_000_000, description="the roster row objected to")
    reason: Text = Field(max_length=1000)


class ResolveBody(BaseModel):
    actor: Text
    outcome: Literal["upheld", "dismissed"]
    note: Text = Field(max_length=1000)


class SignOffBody(BaseModel):
    actor: Text = Field(description="who collected the signed sheet (群众签字认可)")
    signatures: int = Field(ge=1, le=1_000_000)
    note: Text = Field(default="", max_length=1000)


class PickupBody(BaseModel):
    load: LoadRequestBody = Field(description="the card's INITIALIZE FOR LOAD answer")
    lines: list[DbId] = Field(description="roster line ids to pay; they add up to the amount")
    holder: str = Field(
        pattern=HOLDER_PATTERN,
        description="the holder's whole ID number, typed by the holder",
    )


class BankBatchBody(BaseModel):
    actor: Text = Field(description="who builds the payment batch for the agent bank")
    rosters: list[DbId] | None = Field(default=None, description="only these rosters")
    reissue_of: Text | None = Field(default=None, description="send this batch's failed lines")
    bank: Text | None = Field(
        default=None,
        description="the agent bank's code (needed when the office has several banks); the "
        "batch takes the lines its township and department rules route to that bank",
    )


class UnblockBody(BaseModel):
    actor: Text = Field(description="who lifts the loss (解挂)")
    id_number: Text = Field(description="the holder's ID number, as on the card's record")
    note: Text = Field(default="", max_length=150)


class AuditStaffBody(BaseModel):
    name: Text
    id_number: Text
    household_id: Text = Field(default="", description="their head of household's ID number")
    village: Text = ""
    relatives: list[Text] = Field(default=[], max_length=100, description="declared relatives")


class AuditBody(BaseModel):
    actor: Text = Field(description="who runs the audit (专项治理)")
    deceased: list[Text] = Field(
        default=[], max_length=100_000, description="ID numbers on civil affairs' list"
    )
    staff: list[AuditStaffBody] = Field(default=[], max_length=10_000)


class FindingCloseBody(BaseModel):
    actor: Text
    note: Text = Field(max_length=1000, description="what was done (整改 result)")


class RedirectBody(BaseModel):
    actor: Text = Field(description="who moves the line")
    card_number: Text = Field(description="another card of the line's payee")
    note: Text = Field(default="", max_length=1000)


# -- campus back office (gateway/api/campus.py) -----------------------------------------------
class CampusPersonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_no: Text = Field(pattern=r"^[0-9A-Za-z]{1,16}$")
    name: Text
    group: Text
    valid_from: Text = Field(description="YYYY-MM-DD")
    valid_until: Text = Field(description="YYYY-MM-DD")


class CampusCardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_serial: Text
    issuer_id: Text
    person_no: Text


class CampusLossBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text = ""


class CampusEventsBody(BaseModel):
    """A door's batch of access events (``terminal.record.ACCESS_EVENT`` each)."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: Text
    events: list[dict[str, JsonValue]]


class AllowanceRosterBody(BaseModel):
    """A month's allowance roster: each line ``{"person_no", "amount_fen"}``."""

    model_config = ConfigDict(extra="forbid")

    month: Text = Field(description="YYYY-MM")
    roster: Text = Field(description="the roster's name, as the back office approved it")
    lines: list[dict[str, JsonValue]]


class LibraryLoanBody(BaseModel):
    """A library desk lends a book to the card's holder (named by the desk's loan number)."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: Text
    loan_no: JsonValue
    card_serial: Text
    person_no: Text
    book: Text
    limit: JsonValue = Field(
        default=None, description="the desk's own lower limit, if any (the back office's rules)"
    )


class LibraryReturnBody(BaseModel):
    """A library desk takes a book back (named by the desk's return number)."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: Text
    return_no: JsonValue
    book: Text


class AllowanceVoidBody(BaseModel):
    """A canteen voids a sale whose answer it lost (the customer was refused)."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: Text
    sale_seq: JsonValue


class CampusLimitBody(BaseModel):
    """An allowance day limit for a person or a group (fen)."""

    model_config = ConfigDict(extra="forbid")

    scope: Text = Field(description="person or group")
    name: Text = Field(description="the person number or the group's name")
    day_limit_fen: JsonValue


class AllowanceSpendBody(BaseModel):
    """A canteen sale paid from the allowance purse."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: Text
    sale_seq: JsonValue
    card_serial: Text
    person_no: Text
    amount_fen: JsonValue
    meal: Text
