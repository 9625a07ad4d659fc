"""The ride code's payload, declared once: parsed strictly by the terminal, built by the app.

Binary, big-endian, 332 + L bytes (L: the issuer's custom field, 0..32). The issuer
certificate (117 bytes) carries the issuer's SM2 key signed by the root CA; the issuer
signs the account data; the user's phone adds the generation time and signs everything.
Every malformation is a ``QrMalformed`` with its own ``QrReason``; the checks' refusals
(``terminal.qr.checks``) are ``QrRefused`` with theirs. docs/qr.md has the table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Any

import construct as cs

from terminal.apdu.bcd import BcdError, from_bcd
from terminal.apdu.errors import YikatongError
from terminal.layout import build as build_layout

CERT_HEADER = 0x24
CERT_FORMAT = 0x12
SERVICE_ID = bytes.fromhex("01010000")
ALG_SM2 = 0x04
KEY_LENGTH = 0x21  # a compressed SM2 public key
SIGNATURE_FORMAT = 0x00  # the format byte before r ‖ s (what public codes carry)
MIN_VERSION = 0x80  # 0x80 interoperable, 0x81 local; implementations accept >= 0x80
MAX_CUSTOM = 32
MIN_SIZE, MAX_SIZE = 332, 332 + MAX_CUSTOM


class QrReason(enum.StrEnum):
    """Why a code was refused: one value per malformation and per failed check."""

    # structure
    SIZE = "size"
    LENGTH_FIELD = "length-field"
    VERSION = "version"
    CERT_HEADER = "certificate-header"
    CERT_FORMAT = "certificate-format"
    ALGORITHM = "algorithm"
    CUSTOM_LENGTH = "custom-length"
    ACCOUNT_TEXT = "account-text"
    BCD = "bcd"
    # chain
    UNKNOWN_ROOT_KEY = "unknown-root-key"
    ROOT_KEY_EXPIRED = "root-key-expired"
    CERT_EXPIRED = "certificate-expired"
    CERT_SIGNATURE = "certificate-signature"
    ISSUER_SIGNATURE = "issuer-signature"
    USER_SIGNATURE = "user-signature"
    # times
    AUTH_EXPIRED = "authorisation-expired"
    CODE_EXPIRED = "code-expired"
    FUTURE = "generated-in-future"
    VALIDITY_TOO_LONG = "validity-too-long"
    # policy
    UNKNOWN_ISSUER = "unknown-issuer"
    ACCOUNT_TYPE = "account-type"
    OVER_LIMIT = "over-ride-limit"
    REPLAY = "replay"
    DEBOUNCE = "debounce"
    TOO_SOON = "too-soon"
    # at a validator
    MODE = "mode"
    FARE = "fare-refused"
    # a ride record (gateway, clearing)
    RECORD = "record-mismatch"


class QrError(YikatongError, ValueError):
    """A ride code refused; ``reason`` says which rule, the message what was wrong."""

    def __init__(self, reason: QrReason, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message


class QrMalformed(QrError):
    """The bytes are not a ride code of the declared layout."""


class QrRefused(QrError):
    """A well-formed code that fails a check (signature, time, whitelist, replay, limit)."""


CERTIFICATE = cs.Struct(
    "header" / cs.Int8ub,
    "service_id" / cs.Bytes(4),
    "root_index" / cs.Int8ub,
    "format" / cs.Int8ub,
    "issuer_id" / cs.Bytes(4),  # BCD
    "expiry" / cs.Bytes(2),  # MMYY, BCD: invalid after that month
    "serial" / cs.Bytes(3),
    "signature_algorithm" / cs.Int8ub,
    "encryption_algorithm" / cs.Int8ub,
    "parameter_id" / cs.Int8ub,
    "key_length" / cs.Int8ub,
    "public_key" / cs.Bytes(33),
    "root_signature" / cs.Bytes(64),  # r ‖ s over [format, root_signature)
)

CODE = cs.Struct(
    "version" / cs.Int8ub,
    "length" / cs.Int16ub,  # of everything after this field
    "certificate" / CERTIFICATE,
    "payment_account" / cs.Bytes(16),  # ASCII, printable
    "user_account" / cs.Bytes(10),
    "issuer_code" / cs.Bytes(4),
    "platform_code" / cs.Bytes(4),
    "account_type" / cs.Int8ub,
    "ride_limit" / cs.Int24ub,  # fen
    "user_public_key" / cs.Bytes(33),
    "auth_expiry" / cs.Int32ub,  # Unix seconds, UTC
    "validity" / cs.Int16ub,  # seconds
    "custom_length" / cs.Int8ub,
    "custom" / cs.Bytes(cs.this.custom_length),
    "issuer_signature" / cs.Bytes(65),  # format byte, r ‖ s over [certificate, here)
    "generated" / cs.Int32ub,  # Unix seconds, UTC: written by the phone
    "user_signature" / cs.Bytes(65),  # format byte, r ‖ s over [0, here)
)


def _offset(layout: cs.Struct, name: str) -> int:
    """A fixed-size field's offset in ``layout`` (fields before it are fixed-size)."""
    pos = 0
    for sub in layout.subcons:
        if sub.name == name:
            return pos
        pos += sub.sizeof()
    raise KeyError(name)


CERT_SIZE = CERTIFICATE.sizeof()
CERT_OFFSET = _offset(CODE, "certificate")
CERT_SIGNED = slice(_offset(CERTIFICATE, "format"), _offset(CERTIFICATE, "root_signature"))
CUSTOM_OFFSET = _offset(CODE, "custom")  # 198: the variable part starts here
RIDE_LIMIT_OFFSET = _offset(CODE, "ride_limit")  # 155: covered by both signatures


def _issuer_signature_at(custom_length: int) -> int:
    return CUSTOM_OFFSET + custom_length


def _user_signature_at(custom_length: int) -> int:
    return CUSTOM_OFFSET + custom_length + 65 + 4


def mmyy_last_day(mmyy: bytes) -> date:
    """The last day an MMYY (BCD) expiry is valid: the end of that month."""
    digits = from_bcd(mmyy)
    month, year = int(digits[:2]), 2000 + int(digits[2:])
    if not 1 <= month <= 12:
        raise BcdError(f"month {month:02d} in expiry {mmyy.hex().upper()}")
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


@dataclass(frozen=True)
class Certificate:
    """The issuer certificate: the issuer's key, certified by root key ``root_index``."""

    root_index: int
    issuer_id: str  # 8 digits
    expiry: date  # last valid day (end of the MMYY month)
    serial: str  # hex
    parameter_id: int
    public_key: bytes  # 33, compressed
    root_signature: bytes  # 64, r ‖ s
    signed: bytes  # the bytes the root signature covers


@dataclass(frozen=True)
class RideCode:
    """A parsed ride code: its fields, and the byte ranges each signature covers."""

    raw: bytes
    version: int
    certificate: Certificate
    payment_account: str
    user_account: str  # hex of the 10 bytes
    issuer_code: str  # hex
    platform_code: str  # hex
    account_type: int
    ride_limit: int  # fen
    user_public_key: bytes
    auth_expiry: int  # Unix seconds
    validity: int  # seconds
    custom: bytes
    issuer_signature: bytes  # 64, r ‖ s (the format byte dropped)
    generated: int  # Unix seconds
    user_signature: bytes  # 64, r ‖ s

    @property
    def issuer_signed(self) -> bytes:
        """What the issuer signed: the certificate through the custom field."""
        return self.raw[CERT_OFFSET : _issuer_signature_at(len(self.custom))]

    @property
    def user_signed(self) -> bytes:
        """What the user's phone signed: everything before the user signature."""
        return self.raw[: _user_signature_at(len(self.custom))]

    def fields(self) -> dict[str, Any]:
        """The fields people read (ykt qr verify, the ride record)."""
        return {
            "version": f"{self.version:02X}",
            "payment_account": self.payment_account,
            "user_account": self.user_account,
            "issuer_code": self.issuer_code,
            "platform_code": self.platform_code,
            "account_type": self.account_type,
            "ride_limit": self.ride_limit,
            "auth_expiry": self.auth_expiry,
            "validity": self.validity,
            "generated": self.generated,
            "issuer_id": self.certificate.issuer_id,
            "root_index": self.certificate.root_index,
            "certificate_expiry": self.certificate.expiry.isoformat(),
            "custom": self.custom.hex().upper(),
        }


def _malformed(reason: QrReason, message: str) -> QrMalformed:
    return QrMalformed(reason, message)


def _signature(value: bytes, what: str) -> bytes:
    if value[0] != SIGNATURE_FORMAT:
        raise _malformed(QrReason.ALGORITHM, f"{what} format byte {value[0]:02X}, expected 00")
    return bytes(value[1:])


def _certificate(c: Any, signed: bytes) -> Certificate:
    if c.header != CERT_HEADER:
        raise _malformed(QrReason.CERT_HEADER, f"certificate header {c.header:02X}, expected 24")
    if c.format != CERT_FORMAT or c.key_length != KEY_LENGTH:
        raise _malformed(
            QrReason.CERT_FORMAT,
            f"certificate format {c.format:02X} key length {c.key_length:02X}, expected 12/21",
        )
    if (c.signature_algorithm, c.encryption_algorithm) != (ALG_SM2, ALG_SM2):
        raise _malformed(
            QrReason.ALGORITHM,
            f"certificate algorithms {c.signature_algorithm:02X}/{c.encryption_algorithm:02X},"
            " expected 04 (SM2)",
        )
    try:
        issuer_id = from_bcd(c.issuer_id)
        expiry = mmyy_last_day(c.expiry)
    except BcdError as exc:
        raise _malformed(QrReason.BCD, f"certificate: {exc}") from None
    return Certificate(
        root_index=c.root_index,
        issuer_id=issuer_id,
        expiry=expiry,
        serial=c.serial.hex().upper(),
        parameter_id=c.parameter_id,
        public_key=bytes(c.public_key),
        root_signature=bytes(c.root_signature),
        signed=signed,
    )


def parse(raw: bytes, *, min_version: int = MIN_VERSION) -> RideCode:
    """A ride code from its bytes, strictly: size, length field, version, certificate header
    and format, custom length, account text; QrMalformed with the reason otherwise."""
    raw = bytes(raw)
    if not MIN_SIZE <= len(raw) <= MAX_SIZE:
        raise _malformed(QrReason.SIZE, f"{len(raw)} bytes, a code has {MIN_SIZE}..{MAX_SIZE}")
    if raw[0] < min_version:
        raise _malformed(QrReason.VERSION, f"version {raw[0]:02X}, accepted from {min_version:02X}")
    length = int.from_bytes(raw[1:3], "big")
    if length + 3 != len(raw):
        raise _malformed(
            QrReason.LENGTH_FIELD, f"length field {length} + 3 is not the {len(raw)} bytes read"
        )
    custom_length = raw[CUSTOM_OFFSET - 1]
    if custom_length > MAX_CUSTOM or MIN_SIZE + custom_length != len(raw):
        raise _malformed(
            QrReason.CUSTOM_LENGTH,
            f"custom field length {custom_length} (at most {MAX_CUSTOM}) does not fit"
            f" the {len(raw)} bytes",
        )
    try:
        p = CODE.parse(raw)
    except cs.ConstructError as exc:  # the checks above leave none; kept for safety
        raise _malformed(QrReason.SIZE, str(exc)) from None
    cert = _certificate(p.certificate, raw[CERT_OFFSET : CERT_OFFSET + CERT_SIZE][CERT_SIGNED])
    payment = bytes(p.payment_account)
    if not all(0x20 <= b < 0x7F for b in payment):
        raise _malformed(QrReason.ACCOUNT_TEXT, "payment account is not printable ASCII")
    return RideCode(
        raw=raw,
        version=p.version,
        certificate=cert,
        payment_account=payment.decode("ascii"),
        user_account=p.user_account.hex().upper(),
        issuer_code=p.issuer_code.hex().upper(),
        platform_code=p.platform_code.hex().upper(),
        account_type=p.account_type,
        ride_limit=p.ride_limit,
        user_public_key=bytes(p.user_public_key),
        auth_expiry=p.auth_expiry,
        validity=p.validity,
        custom=bytes(p.custom),
        issuer_signature=_signature(p.issuer_signature, "issuer signature"),
        generated=p.generated,
        user_signature=_signature(p.user_signature, "user signature"),
    )


# -- building (the software ride-code app): the same declaration, in three steps ------------
def build_certificate(**fields: Any) -> bytes:
    """A certificate's 117 bytes from its fields (``root_signature`` included)."""
    return build_layout(CERTIFICATE, **fields)


def certificate_signed(cert: bytes) -> bytes:
    """The bytes of a certificate the root CA signs."""
    return cert[CERT_SIGNED]


def build_unsigned(certificate: bytes, custom: bytes, **fields: Any) -> bytes:
    """The account part of a code with zero signatures and time: the layout filled, so
    the signed ranges can be cut from it and the signatures put in place."""
    values = {
        **fields,
        "certificate": CERTIFICATE.parse(certificate),
        "length": MIN_SIZE + len(custom) - 3,
        "custom_length": len(custom),
        "custom": custom,
        "issuer_signature": bytes(65),
        "generated": 0,
        "user_signature": bytes(65),
    }
    return bytes(CODE.build(values))


def with_issuer_signature(unsigned: bytes, signature: bytes) -> bytes:
    """``unsigned`` with the issuer's r ‖ s in place (after its format byte)."""
    at = _issuer_signature_at(unsigned[CUSTOM_OFFSET - 1])
    return unsigned[:at] + bytes([SIGNATURE_FORMAT]) + signature + unsigned[at + 65 :]


def issuer_signed_part(code: bytes) -> bytes:
    """The bytes the issuer signs in a (partly built) code."""
    return code[CERT_OFFSET : _issuer_signature_at(code[CUSTOM_OFFSET - 1])]


def with_generation(code: bytes, generated: int) -> bytes:
    """The code with the phone's generation time and no user signature yet."""
    at = _user_signature_at(code[CUSTOM_OFFSET - 1])
    return code[: at - 4] + generated.to_bytes(4, "big") + bytes(65)


def user_signed_part(code: bytes) -> bytes:
    """The bytes the user's phone signs."""
    return code[: _user_signature_at(code[CUSTOM_OFFSET - 1])]


def with_user_signature(code: bytes, signature: bytes) -> bytes:
    at = _user_signature_at(code[CUSTOM_OFFSET - 1])
    return code[:at] + bytes([SIGNATURE_FORMAT]) + signature
