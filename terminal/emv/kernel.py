"""The kernel: process one selected application, contact (PBOC) or contactless (qPBOC).

``process_application`` runs GPO with the PDOL data, reads the AFL records, performs
offline data authentication (contact: DDA with INTERNAL AUTHENTICATE, else SDA;
contactless: fDDA over the GPO response) and, on qPBOC, decides the outcome from the
cryptogram the card returned with GPO:

* TC (9F27 = 40) and fDDA passed and the card not expired: approved offline. fDDA
  failed: declined, or sent online when the terminal can and is set to (fdda_failure).
* ARQC (80): online request (declined on an offline-only terminal).
* AAC (00): declined.
* GPO refused with 6985, or an amount over the contactless limit: try another interface.

Contact processing here stops after ODA (reading and top-up do their own GENERATE AC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from terminal.apdu import iso, tlv
from terminal.apdu.bcd import from_bcd
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import ConditionsNotSatisfied, MalformedResponse, TlvError
from terminal.apdu.flow import Flow, card
from terminal.emv import commands as c
from terminal.emv.ca_keys import CaKeyStore
from terminal.emv.config import (
    FDDA_FAILURE_DECLINE,
    TerminalConfig,
    Transaction,
    transaction_data,
    transaction_date,
)
from terminal.emv.dol import build_dol_data, parse_dol
from terminal.emv.ec import (
    EcLoadHost,
    EcLoadRequest,
    EcLoadResult,
    ScriptResult,
    get_data,
    parse_scripts,
)
from terminal.emv.ec import amount_n12 as _n12
from terminal.emv.errors import MissingCardData, OdaFailure
from terminal.emv.fci import ApplicationFci
from terminal.emv.oda import OdaContext, OdaMethod, OdaResult, run_dda, run_fdda, run_sda
from terminal.emv.processing import (
    AIP_DDA,
    AIP_ISSUER_AUTH,
    AIP_SDA,
    GpoResponse,
    RecordData,
    get_processing_options,
    read_records,
    static_data_to_authenticate,
)
from terminal.emv.selection import CONTACTLESS
from terminal.emv.tags import Tag

EC_LOAD_TXN_TYPE = 0x60  # PBOC EC load to a designated account [U: see docs/emv.md]


class Outcome(StrEnum):
    APPROVED_OFFLINE = "approved offline"
    ONLINE_REQUEST = "online request"
    DECLINED = "declined"
    TRY_ANOTHER_INTERFACE = "try another interface"
    READ_ONLY = "read only (no cryptogram requested)"


CID_FROM_9F27 = "9F27"
CID_FROM_CVR = "CVR in 9F10"


@dataclass(frozen=True, slots=True)
class Cryptogram:
    cid: int
    cryptogram: bytes
    atc: bytes
    iad: bytes = b""
    cid_from: str = CID_FROM_9F27  # where the type came from: the card's CID, or the CVR

    @property
    def kind(self) -> c.CryptogramType:
        return (
            c.CryptogramType(self.cid & 0xC0) if self.cid & 0xC0 != 0xC0 else c.CryptogramType.AAC
        )

    @property
    def kind_name(self) -> str:
        return self.kind.name


def parse_generate_ac_response(data: bytes) -> tuple[Cryptogram, dict[int, bytes]]:
    """GENERATE AC in format 1 (CID ‖ ATC ‖ AC ‖ IAD) or format 2 (77 TLVs)."""
    try:
        top = tlv.parse_one(data)
    except TlvError as exc:
        raise MalformedResponse(f"GENERATE AC response: {exc}", raw=data) from None
    if top.tag == Tag.RESPONSE_FORMAT_1:
        v = top.value
        if len(v) < 11:
            raise MalformedResponse(f"GENERATE AC format 1 of {len(v)} bytes", raw=data)
        crypt = Cryptogram(v[0], v[3:11], v[1:3], v[11:])
        return crypt, {Tag.CID: v[:1], Tag.ATC: v[1:3], Tag.CRYPTOGRAM: v[3:11], Tag.IAD: v[11:]}
    if top.tag == Tag.RESPONSE_FORMAT_2:
        flat = tlv.flatten(top.children)
        return cryptogram_from(flat, data), flat
    raise MalformedResponse(f"GENERATE AC template {top.tag:X} is neither 80 nor 77", raw=data)


def cryptogram_from(objects: dict[int, bytes], raw: bytes = b"") -> Cryptogram:
    try:
        cid, ac, atc = objects[Tag.CID], objects[Tag.CRYPTOGRAM], objects[Tag.ATC]
    except KeyError as exc:
        raise MissingCardData(f"cryptogram response lacks tag {exc.args[0]:X}", raw=raw) from None
    if len(cid) != 1 or len(ac) != 8 or len(atc) != 2:
        raise MalformedResponse("CID/AC/ATC of the wrong length", raw=raw)
    return Cryptogram(cid[0], ac, atc, objects.get(Tag.IAD, b""))


# CVR byte 2 bits 6-5 (IAD byte 5 in the VIS/PBOC layout): the type of the first AC
_CVR_FIRST_AC = {0x00: c.CryptogramType.AAC, 0x10: c.CryptogramType.TC, 0x20: c.CryptogramType.ARQC}


def cid_from_iad(iad: bytes) -> int | None:
    """The cryptogram type a qPBOC/qVSDC card states in its CVR when it sends no 9F27.

    The issuer application data in the VIS/PBOC layout is: length (06..0F), key index,
    cryptogram version, then the CVR (its own length 03, then the CVR bytes); bits 6-5 of
    the CVR's second byte say which AC the card returned (00 AAC, 01 TC, 10 ARQC), as
    contactless kernels read it. None when 9F10 is not in that layout or says 11 (RFU).
    """
    if len(iad) < 5 or not 0x06 <= iad[0] <= 0x0F or iad[0] + 1 > len(iad) or iad[3] != 0x03:
        return None
    kind = _CVR_FIRST_AC.get(iad[4] & 0x30)
    return None if kind is None else int(kind)


def qpboc_cryptogram(objects: dict[int, bytes], raw: bytes = b"") -> Cryptogram:
    """The cryptogram of a qPBOC GPO answer: 9F27 when present, else the CVR's type."""
    if Tag.CID in objects:
        return cryptogram_from(objects, raw)
    iad = objects.get(Tag.IAD, b"")
    cid = cid_from_iad(iad)
    if cid is None:
        raise MissingCardData(
            "qPBOC GPO response carries no 9F27 and its 9F10 "
            + ("is absent" if not iad else f"({iad.hex().upper()}) states no cryptogram type"),
            raw=raw,
        )
    try:
        ac, atc = objects[Tag.CRYPTOGRAM], objects[Tag.ATC]
    except KeyError as exc:
        raise MissingCardData(f"cryptogram response lacks tag {exc.args[0]:X}", raw=raw) from None
    if len(ac) != 8 or len(atc) != 2:
        raise MalformedResponse("AC/ATC of the wrong length", raw=raw)
    return Cryptogram(cid, ac, atc, iad, CID_FROM_CVR)


def _date_yymmdd(raw: bytes | None) -> date | None:
    if not raw or len(raw) != 3:
        return None
    try:
        return datetime.strptime(from_bcd(raw), "%y%m%d").date()
    except ValueError:
        return None


@dataclass
class ApplicationData:
    """Everything processing learnt about one application."""

    aid: bytes
    interface: str
    fci: ApplicationFci
    terminal: dict[int, bytes]
    gpo: GpoResponse | None = None
    records: RecordData = field(default_factory=RecordData)
    card: dict[int, bytes] = field(default_factory=dict)
    oda: OdaResult = field(default_factory=lambda: OdaResult(OdaMethod.NONE))
    cryptogram: Cryptogram | None = None
    outcome: Outcome = Outcome.READ_ONLY
    reason: str = ""

    @property
    def pan(self) -> str:
        raw = self.card.get(Tag.PAN)
        if raw is None and Tag.TRACK2 in self.card:
            return self.card[Tag.TRACK2].hex().upper().split("D")[0]
        return raw.hex().upper().rstrip("F") if raw else ""

    @property
    def psn(self) -> str:
        raw = self.card.get(Tag.PAN_SEQUENCE)
        return raw.hex() if raw else "00"

    @property
    def expiry(self) -> date | None:
        return _date_yymmdd(self.card.get(Tag.EXPIRY_DATE))

    @property
    def effective(self) -> date | None:
        return _date_yymmdd(self.card.get(Tag.EFFECTIVE_DATE))

    @property
    def cardholder_name(self) -> str:
        raw = self.card.get(Tag.CARDHOLDER_NAME, b"")
        return raw.decode("gbk", errors="replace").strip()

    @property
    def label(self) -> str:
        return self.fci.preferred_name or self.fci.label

    @property
    def available_offline_amount(self) -> int | None:
        raw = self.card.get(Tag.AVAILABLE_OFFLINE_AMOUNT)
        return _n12(raw) if raw is not None else None

    @property
    def aip(self) -> bytes:
        return self.gpo.aip if self.gpo is not None else b""


def _oda_context(
    aid: bytes,
    data: ApplicationData,
    config: TerminalConfig,
    store: CaKeyStore,
    today: date,
) -> OdaContext:
    static, error = static_data_to_authenticate(
        data.records, data.card.get(Tag.SDA_TAG_LIST), data.aip
    )
    return OdaContext(aid[:5], store, today, static, error, config.trust_test_keys)


def process_application(
    aid: bytes,
    fci: ApplicationFci,
    config: TerminalConfig,
    store: CaKeyStore,
    txn: Transaction,
    *,
    interface: str = CONTACTLESS,
    now: datetime | None = None,
) -> Flow[ApplicationData]:
    """GPO, records and ODA for a selected application; the outcome on qPBOC."""
    terminal = transaction_data(config, txn, now=now)
    data = ApplicationData(aid, interface, fci, terminal)
    contactless = interface == CONTACTLESS
    if contactless and txn.amount >= config.contactless_limit:
        data.outcome = Outcome.TRY_ANOTHER_INTERFACE
        data.reason = "amount at or above the contactless transaction limit"
        return data
    pdol_data = build_dol_data(fci.pdol, terminal) if fci.pdol else b""
    try:
        data.gpo = yield from get_processing_options(pdol_data)
    except ConditionsNotSatisfied:
        if not contactless:
            raise
        data.outcome = Outcome.TRY_ANOTHER_INTERFACE
        data.reason = "card refused GPO on this interface (6985)"
        return data
    data.records = yield from read_records(data.gpo.afl)
    for source in (data.gpo.data, data.records.data, fci.data):
        for key, value in source.items():
            data.card.setdefault(key, value)
    today = transaction_date(config, txn, now)
    ctx = _oda_context(aid, data, config, store, today)
    gpo = data.gpo
    if contactless:
        if Tag.SDAD in data.gpo.data:
            data.oda = run_fdda(data.card, ctx, terminal, config.fdda_formats)
        elif gpo.aip_has(AIP_SDA) and config.supports_sda and Tag.SSAD in data.card:
            data.oda = run_sda(data.card, ctx)
        else:
            data.oda = OdaResult(OdaMethod.NONE, OdaFailure.NOT_SUPPORTED)
        if Tag.CID in data.gpo.data or Tag.CRYPTOGRAM in data.gpo.data:
            data.cryptogram = qpboc_cryptogram(data.gpo.data)
        _qpboc_outcome(data, config, today)
    else:
        if gpo.aip_has(AIP_DDA) and config.supports_dda:
            data.oda = yield from run_dda(data.card, ctx, terminal)
        elif gpo.aip_has(AIP_SDA) and config.supports_sda:
            data.oda = run_sda(data.card, ctx)
        else:
            data.oda = OdaResult(OdaMethod.NONE, OdaFailure.NOT_SUPPORTED)
    return data


def _qpboc_outcome(data: ApplicationData, config: TerminalConfig, today: date) -> None:
    crypt = data.cryptogram
    if crypt is None:
        raise MissingCardData("qPBOC GPO response carries no cryptogram (9F27/9F26/9F36)")
    if crypt.kind == c.CryptogramType.AAC:
        data.outcome, data.reason = Outcome.DECLINED, "card declined (AAC)"
        return
    if crypt.kind == c.CryptogramType.ARQC:
        if config.offline_only:
            data.outcome, data.reason = (
                Outcome.DECLINED,
                "online requested on an offline-only terminal",
            )
        else:
            data.outcome, data.reason = Outcome.ONLINE_REQUEST, "card requested online (ARQC)"
        return
    expiry = data.expiry
    if expiry is not None and today > expiry:
        data.outcome, data.reason = Outcome.DECLINED, f"application expired {expiry}"
        return
    if data.oda.passed:
        data.outcome, data.reason = Outcome.APPROVED_OFFLINE, "TC with fDDA passed"
        return
    why = f"fDDA failed: {data.oda.failure.name if data.oda.failure else 'not performed'}"
    if config.offline_only or config.fdda_failure == FDDA_FAILURE_DECLINE:
        data.outcome, data.reason = Outcome.DECLINED, why
    else:
        data.outcome, data.reason = Outcome.ONLINE_REQUEST, why


# -- EC top-up (contact, online, issuer script) -----------------------------------------


def _run_script(commands: list[CommandAPDU], script_id: bytes, template: int) -> Flow[ScriptResult]:
    """Send one script's commands; stop at the first that fails (EMV Book 3 §10.10)."""
    sws: list[int] = []
    for command in commands:
        r = yield card(command, check=False)
        sws.append(r.sw)
        if r.sw != 0x9000 and r.sw1 not in (0x62, 0x63):
            break
    return ScriptResult(script_id, template, sws)


def ec_load(
    app: ApplicationData,
    amount: int,
    host: EcLoadHost,
    config: TerminalConfig,
    *,
    now: datetime | None = None,
) -> Flow[EcLoadResult]:
    """Top up Electronic Cash: ARQC to the host, its script to the card, TC, new balance."""
    if amount <= 0:
        raise ValueError("an EC load amount must be a positive number of fen")
    raw = yield from get_data(Tag.EC_BALANCE)
    if raw is None:
        raise MissingCardData("the application has no Electronic Cash balance (9F79)")
    before = _n12(raw)
    cdol1 = app.card.get(Tag.CDOL1)
    cdol2 = app.card.get(Tag.CDOL2)
    if not cdol1 or not cdol2:
        raise MissingCardData("EC load needs CDOL1 (8C) and CDOL2 (8D)")
    terminal = dict(app.terminal)
    terminal[Tag.AMOUNT] = bytes.fromhex(f"{amount:012d}")
    terminal[Tag.TXN_TYPE] = bytes((EC_LOAD_TXN_TYPE,))
    terminal[Tag.EC_TERMINAL_SUPPORT] = b"\x00"
    cdol1_data = build_dol_data(cdol1, terminal, app.card)
    r = yield card(c.generate_ac(c.CryptogramType.ARQC, cdol1_data))
    first, _ = parse_generate_ac_response(r.data)
    if first.kind != c.CryptogramType.ARQC:
        return EcLoadResult(
            False,
            before,
            before,
            first.cryptogram,
            first.cryptogram,
            first.cid,
            [],
            f"card answered {first.kind_name} to the load request",
        )
    request = EcLoadRequest(
        pan=app.pan,
        psn=app.psn,
        aid=app.aid,
        aip=app.aip,
        amount=amount,
        balance_before=before,
        atc=first.atc,
        arqc=first.cryptogram,
        cid=first.cid,
        cdol1_data=cdol1_data,
        iad=first.iad,
        terminal_data=terminal,
    )
    auth = host.authorize_ec_load(request)
    scripts = parse_scripts(auth.scripts) if auth.scripts else []
    results: list[ScriptResult] = []
    for s in scripts:
        if s.template == Tag.ISSUER_SCRIPT_BEFORE:
            results.append((yield from _run_script(s.commands, s.script_id, s.template)))
    online = {Tag.ARC: auth.arc, Tag.ISSUER_AUTH_DATA: auth.issuer_auth_data}
    issuer_auth_ok = True
    if (
        auth.issuer_auth_data
        and app.gpo is not None
        and app.gpo.aip_has(AIP_ISSUER_AUTH)
        and Tag.ISSUER_AUTH_DATA not in _dol_tags(cdol2)
    ):
        r = yield card(iso.external_authenticate(auth.issuer_auth_data), check=False)
        issuer_auth_ok = r.ok
    kind = c.CryptogramType.TC if auth.approved and issuer_auth_ok else c.CryptogramType.AAC
    r = yield card(c.generate_ac(kind, build_dol_data(cdol2, online, terminal, app.card)))
    second, _ = parse_generate_ac_response(r.data)
    for s in scripts:
        if s.template == Tag.ISSUER_SCRIPT_AFTER:
            results.append((yield from _run_script(s.commands, s.script_id, s.template)))
    raw = yield from get_data(Tag.EC_BALANCE)
    after = _n12(raw) if raw is not None else None
    approved = auth.approved and after == before + amount
    reason = (
        ""
        if approved
        else (
            f"host response {auth.arc!r}"
            if not auth.approved
            else "issuer authentication failed"
            if not issuer_auth_ok
            else "script did not change the balance as expected"
        )
    )
    return EcLoadResult(
        approved, before, after, first.cryptogram, second.cryptogram, second.cid, results, reason
    )


def _dol_tags(dol: bytes) -> set[int]:
    return {e.tag for e in parse_dol(dol)}
