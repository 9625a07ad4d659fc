"""Offline data authentication: SDA, DDA (INTERNAL AUTHENTICATE), fDDA (qPBOC) and CDA.

The checks and their order follow EMV Book 2 §5-6: certificate length against the
signing key, recovery frame (6A, format, BC), algorithm indicators, hash, identity
(issuer id against the PAN, PAN in the ICC certificate), expiry, revocation. Each
failed check raises ``OdaError`` with its own ``OdaFailure``; ``run_*`` wrappers turn
that into an ``OdaResult`` so a transaction can carry on (decline, go online) and say
why.

qPBOC fDDA signs ``9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69`` (fDDA version 01 when 9F69 is present,
else only 9F37) with ICC dynamic data ``02 ‖ ATC``. The recovered format byte is 05 in
EMV DDA and 95 on Visa fDDA; PBOC's value is not public [U], so the accepted set comes
from the terminal configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from terminal.apdu import iso, tlv
from terminal.apdu.errors import MalformedResponse, TlvError
from terminal.apdu.flow import Flow, card
from terminal.emv.ca_keys import CaKeyStore, CaPublicKey
from terminal.emv.certificates import (
    FORMAT_SDAD,
    HASH_SHA1,
    PK_RSA,
    IccCertificate,
    IssuerCertificate,
    SignedDynamicData,
    SignedStaticData,
    digits,
    expiry_passed,
    hash_field,
    hashed_part,
    rsa_recover,
    sha1,
)
from terminal.emv.dol import build_dol_data
from terminal.emv.errors import OdaError, OdaFailure
from terminal.emv.tags import Tag

DEFAULT_DDOL = bytes.fromhex("9F3704")
FDDA_VERSION_01 = 0x01


class OdaMethod(StrEnum):
    NONE = "none"
    SDA = "SDA"
    DDA = "DDA"
    FDDA = "fDDA"
    CDA = "CDA"


@dataclass(frozen=True, slots=True)
class OdaResult:
    """The outcome of ODA: the method tried and, when it failed, the reason."""

    method: OdaMethod
    failure: OdaFailure | None = None
    detail: str = ""
    ca_key: str = ""
    issuer_id: str = ""
    data_authentication_code: bytes | None = None
    icc_dynamic_number: bytes | None = None

    @property
    def passed(self) -> bool:
        return self.method != OdaMethod.NONE and self.failure is None

    def describe(self) -> str:
        if self.method == OdaMethod.NONE:
            return "not performed" + (f" ({self.failure.value})" if self.failure else "")
        if self.failure is None:
            return f"{self.method.value} passed" + (f" (CA {self.ca_key})" if self.ca_key else "")
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.method.value} FAILED - {self.failure.name} ({self.failure.value}){extra}"


@dataclass(frozen=True, slots=True)
class IssuerKey:
    modulus: bytes
    exponent: bytes
    certificate: IssuerCertificate
    ca: CaPublicKey


@dataclass(frozen=True, slots=True)
class IccKey:
    modulus: bytes
    exponent: bytes
    certificate: IccCertificate


def _need(card: Mapping[int, bytes], tag: int) -> bytes:
    value = card.get(tag)
    if not value:
        raise OdaError(OdaFailure.MISSING_DATA, f"tag {tag:X} absent")
    return value


def ca_key_for(
    card: Mapping[int, bytes],
    rid: bytes,
    store: CaKeyStore,
    today: date,
    *,
    trust_test_keys: bool = False,
) -> CaPublicKey:
    index = _need(card, Tag.CA_KEY_INDEX)
    if len(index) != 1:
        raise OdaError(OdaFailure.MISSING_DATA, f"CA key index {index.hex()} is not one byte")
    key = store.get(rid, index[0], trust_test_keys=trust_test_keys)
    if key is None:
        raise OdaError(OdaFailure.CA_KEY_MISSING, f"{rid.hex().upper()}/{index[0]:02X}")
    if key.expiry is not None and today > key.expiry:
        raise OdaError(OdaFailure.CA_KEY_EXPIRED, f"{key.name} expired {key.expiry}")
    return key


def recover_issuer_key(
    card: Mapping[int, bytes],
    rid: bytes,
    store: CaKeyStore,
    today: date,
    *,
    trust_test_keys: bool = False,
) -> IssuerKey:
    """Issuer public key from 90/92/9F32 under the CA key named by 8F."""
    ca = ca_key_for(card, rid, store, today, trust_test_keys=trust_test_keys)
    cert = _need(card, Tag.ISSUER_PK_CERT)
    exponent = _need(card, Tag.ISSUER_PK_EXPONENT)
    remainder = card.get(Tag.ISSUER_PK_REMAINDER, b"")
    pan = _need(card, Tag.PAN)
    if len(cert) != len(ca.modulus):
        raise OdaError(
            OdaFailure.ISSUER_CERT_LENGTH, f"{len(cert)} bytes vs CA modulus {len(ca.modulus)}"
        )
    x = rsa_recover(cert, ca.modulus, ca.exponent)
    ic = IssuerCertificate.decode(x)
    if ic.hash_algorithm != HASH_SHA1:
        raise OdaError(OdaFailure.ISSUER_CERT_ALGORITHM, f"hash algorithm {ic.hash_algorithm:02X}")
    modulus = ic.modulus(remainder)
    if sha1(hashed_part(x) + remainder + exponent) != hash_field(x):
        raise OdaError(OdaFailure.ISSUER_CERT_HASH)
    issuer_id = digits(ic.issuer_id)
    if not 3 <= len(issuer_id) <= 8 or not digits(pan).startswith(issuer_id):
        raise OdaError(OdaFailure.ISSUER_ID_MISMATCH, f"issuer {issuer_id}, PAN {digits(pan)}")
    if expiry_passed(ic.expiry, today):
        raise OdaError(OdaFailure.ISSUER_CERT_EXPIRED, f"expiry {ic.expiry.hex()} (MMYY)")
    if store.is_revoked(ca.rid, ca.index, ic.serial):
        raise OdaError(OdaFailure.ISSUER_KEY_REVOKED, f"serial {ic.serial.hex().upper()}")
    if ic.pk_algorithm != PK_RSA:
        raise OdaError(OdaFailure.ISSUER_CERT_ALGORITHM, f"key algorithm {ic.pk_algorithm:02X}")
    if len(exponent) != ic.exponent_length:
        raise OdaError(OdaFailure.ISSUER_CERT_FORMAT, "exponent length differs from 9F32")
    return IssuerKey(modulus, exponent, ic, ca)


def recover_icc_key(
    card: Mapping[int, bytes], issuer: IssuerKey, static_data: bytes, today: date
) -> IccKey:
    """ICC public key from 9F46/9F48/9F47; the certificate's hash covers the static data."""
    cert = _need(card, Tag.ICC_PK_CERT)
    exponent = _need(card, Tag.ICC_PK_EXPONENT)
    remainder = card.get(Tag.ICC_PK_REMAINDER, b"")
    pan = _need(card, Tag.PAN)
    if len(cert) != len(issuer.modulus):
        raise OdaError(
            OdaFailure.ICC_CERT_LENGTH, f"{len(cert)} bytes vs issuer modulus {len(issuer.modulus)}"
        )
    x = rsa_recover(cert, issuer.modulus, issuer.exponent)
    cc = IccCertificate.decode(x)
    if cc.hash_algorithm != HASH_SHA1:
        raise OdaError(OdaFailure.ICC_CERT_ALGORITHM, f"hash algorithm {cc.hash_algorithm:02X}")
    modulus = cc.modulus(remainder)
    if sha1(hashed_part(x) + remainder + exponent + static_data) != hash_field(x):
        raise OdaError(OdaFailure.ICC_CERT_HASH)
    if digits(cc.pan) != digits(pan):
        raise OdaError(OdaFailure.ICC_PAN_MISMATCH, f"{digits(cc.pan)} vs {digits(pan)}")
    if expiry_passed(cc.expiry, today):
        raise OdaError(OdaFailure.ICC_CERT_EXPIRED, f"expiry {cc.expiry.hex()} (MMYY)")
    if cc.pk_algorithm != PK_RSA:
        raise OdaError(OdaFailure.ICC_CERT_ALGORITHM, f"key algorithm {cc.pk_algorithm:02X}")
    return IccKey(modulus, exponent, cc)


def verify_ssad(card: Mapping[int, bytes], issuer: IssuerKey, static_data: bytes) -> bytes:
    """Check the signed static data (93); returns the data authentication code."""
    ssad = _need(card, Tag.SSAD)
    if len(ssad) != len(issuer.modulus):
        raise OdaError(OdaFailure.SSAD_LENGTH, f"{len(ssad)} vs {len(issuer.modulus)}")
    x = rsa_recover(ssad, issuer.modulus, issuer.exponent)
    s = SignedStaticData.decode(x)
    if s.hash_algorithm != HASH_SHA1:
        raise OdaError(OdaFailure.SSAD_FORMAT, f"hash algorithm {s.hash_algorithm:02X}")
    if sha1(hashed_part(x) + static_data) != hash_field(x):
        raise OdaError(OdaFailure.SSAD_HASH)
    return s.data_authentication_code


def verify_sdad(
    icc: IccKey,
    sdad: bytes,
    signed_input: bytes,
    formats: tuple[int, ...] = (FORMAT_SDAD,),
) -> SignedDynamicData:
    """Check signed dynamic data against the data the terminal supplied."""
    if len(sdad) != len(icc.modulus):
        raise OdaError(OdaFailure.SDAD_LENGTH, f"{len(sdad)} vs {len(icc.modulus)}")
    x = rsa_recover(sdad, icc.modulus, icc.exponent)
    d = SignedDynamicData.decode(x, formats)
    if d.hash_algorithm != HASH_SHA1:
        raise OdaError(OdaFailure.SDAD_FORMAT, f"hash algorithm {d.hash_algorithm:02X}")
    if sha1(hashed_part(x) + signed_input) != hash_field(x):
        raise OdaError(OdaFailure.SDAD_HASH)
    return d


def fdda_signed_input(card: Mapping[int, bytes], terminal: Mapping[int, bytes]) -> bytes:
    """``9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69`` for fDDA version 01, ``9F37`` alone otherwise."""
    un = terminal.get(Tag.UNPREDICTABLE_NUMBER, b"")
    auth_data = card.get(Tag.CARD_AUTH_DATA)
    if auth_data and auth_data[0] == FDDA_VERSION_01:
        return (
            un
            + terminal.get(Tag.AMOUNT, bytes(6))
            + terminal.get(Tag.CURRENCY, bytes(2))
            + auth_data
        )
    return un


def verify_fdda(
    icc: IccKey,
    card: Mapping[int, bytes],
    terminal: Mapping[int, bytes],
    formats: tuple[int, ...],
) -> SignedDynamicData:
    """fDDA on a qPBOC GPO response: signature over terminal data, IDN equal to the ATC."""
    sdad = _need(card, Tag.SDAD)
    d = verify_sdad(icc, sdad, fdda_signed_input(card, terminal), formats)
    atc = card.get(Tag.ATC)
    if atc is not None and d.icc_dynamic_number != atc:
        raise OdaError(
            OdaFailure.DYNAMIC_NUMBER_MISMATCH,
            f"IDN {d.icc_dynamic_number.hex().upper()} vs ATC {atc.hex().upper()}",
        )
    return d


@dataclass(frozen=True, slots=True)
class CdaSignature:
    """What CDA's recovered signed dynamic data carries."""

    icc_dynamic_number: bytes
    cid: int
    cryptogram: bytes
    transaction_data_hash: bytes


def verify_cda(
    icc: IccKey,
    sdad: bytes,
    unpredictable_number: bytes,
    cid: int,
    transaction_data: bytes,
) -> CdaSignature:
    """CDA (EMV Book 2 §6.6): the signature over UN, then CID and the transaction data hash.

    ``transaction_data`` is PDOL data ‖ CDOL1 data [‖ CDOL2 data] ‖ the GENERATE AC
    response objects other than 9F4B, in the order the card sent them.
    """
    d = verify_sdad(icc, sdad, unpredictable_number)
    dyn = d.icc_dynamic_data
    n = dyn[0] if dyn else 0
    if len(dyn) != 1 + n + 1 + 8 + 20:
        raise OdaError(OdaFailure.SDAD_FORMAT, f"CDA dynamic data of {len(dyn)} bytes")
    sig = CdaSignature(dyn[1 : 1 + n], dyn[1 + n], dyn[2 + n : 10 + n], dyn[10 + n :])
    if sig.cid != cid:
        raise OdaError(OdaFailure.SDAD_FORMAT, f"signed CID {sig.cid:02X} vs 9F27 {cid:02X}")
    if sha1(transaction_data) != sig.transaction_data_hash:
        raise OdaError(OdaFailure.SDAD_HASH, "transaction data hash")
    return sig


# -- ODA as the kernel runs it ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OdaContext:
    """What every ODA method needs besides the card's data."""

    rid: bytes
    store: CaKeyStore
    today: date
    static_data: bytes
    static_data_error: str = ""
    trust_test_keys: bool = False


def _fail(method: OdaMethod, exc: OdaError, **kw: str) -> OdaResult:
    return OdaResult(method, exc.reason, exc.detail, **kw)  # type: ignore[arg-type]


def _keys(card: Mapping[int, bytes], ctx: OdaContext) -> tuple[IssuerKey, IccKey]:
    if ctx.static_data_error:
        raise OdaError(OdaFailure.STATIC_DATA_INVALID, ctx.static_data_error)
    issuer = recover_issuer_key(
        card, ctx.rid, ctx.store, ctx.today, trust_test_keys=ctx.trust_test_keys
    )
    return issuer, recover_icc_key(card, issuer, ctx.static_data, ctx.today)


def run_sda(card: Mapping[int, bytes], ctx: OdaContext) -> OdaResult:
    try:
        if ctx.static_data_error:
            raise OdaError(OdaFailure.STATIC_DATA_INVALID, ctx.static_data_error)
        issuer = recover_issuer_key(
            card, ctx.rid, ctx.store, ctx.today, trust_test_keys=ctx.trust_test_keys
        )
        dac = verify_ssad(card, issuer, ctx.static_data)
    except OdaError as exc:
        return _fail(OdaMethod.SDA, exc)
    return OdaResult(
        OdaMethod.SDA,
        ca_key=issuer.ca.name,
        issuer_id=digits(issuer.certificate.issuer_id),
        data_authentication_code=dac,
    )


def _sdad_from_response(data: bytes) -> bytes:
    """INTERNAL AUTHENTICATE answers ``80 L SDAD`` or ``77 {9F4B}``."""
    try:
        top = tlv.parse_one(data)
    except TlvError as exc:
        raise MalformedResponse(f"INTERNAL AUTHENTICATE response: {exc}", raw=data) from None
    if top.tag == Tag.RESPONSE_FORMAT_1:
        return top.value
    if top.tag == Tag.RESPONSE_FORMAT_2:
        sdad = top.find(Tag.SDAD)
        if sdad is not None:
            return sdad.value
    raise MalformedResponse("INTERNAL AUTHENTICATE response carries no SDAD", raw=data)


def run_dda(
    card_data: Mapping[int, bytes], ctx: OdaContext, terminal: Mapping[int, bytes]
) -> Flow[OdaResult]:
    """Recover both keys, then INTERNAL AUTHENTICATE with the DDOL data and check it."""
    try:
        issuer, icc = _keys(card_data, ctx)
    except OdaError as exc:
        return _fail(OdaMethod.DDA, exc)
    ddol = card_data.get(Tag.DDOL) or DEFAULT_DDOL
    ddol_data = build_dol_data(ddol, terminal, card_data)
    r = yield card(iso.internal_authenticate(ddol_data), check=False)
    try:
        if not r.ok:
            raise OdaError(OdaFailure.INTERNAL_AUTHENTICATE_FAILED, f"SW {r.sw:04X}")
        try:
            sdad = _sdad_from_response(r.data)
        except MalformedResponse as exc:
            raise OdaError(OdaFailure.INTERNAL_AUTHENTICATE_FAILED, str(exc)) from None
        d = verify_sdad(icc, sdad, ddol_data)
    except OdaError as exc:
        return _fail(OdaMethod.DDA, exc, ca_key=issuer.ca.name)
    return OdaResult(
        OdaMethod.DDA,
        ca_key=issuer.ca.name,
        issuer_id=digits(issuer.certificate.issuer_id),
        icc_dynamic_number=d.icc_dynamic_number,
    )


def run_fdda(
    card_data: Mapping[int, bytes],
    ctx: OdaContext,
    terminal: Mapping[int, bytes],
    formats: tuple[int, ...],
) -> OdaResult:
    try:
        issuer, icc = _keys(card_data, ctx)
        d = verify_fdda(icc, card_data, terminal, formats)
    except OdaError as exc:
        return _fail(OdaMethod.FDDA, exc)
    return OdaResult(
        OdaMethod.FDDA,
        ca_key=issuer.ca.name,
        issuer_id=digits(issuer.certificate.issuer_id),
        icc_dynamic_number=d.icc_dynamic_number,
    )
