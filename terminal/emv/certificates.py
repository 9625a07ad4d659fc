"""RSA recovery and the byte layouts of EMV certificates and signatures (EMV Book 2).

One place for each layout, used both ways: the kernel decodes what it recovers, the
software card's issuer encodes what it signs. Recovery is the RSA public operation
``X = cert^e mod N`` with an output as long as the modulus. Every recovered object is
``6A ‖ format ‖ ... ‖ SHA-1 hash(20) ‖ BC``; the hash covers ``X[1:N-21]`` followed by the
object's extra inputs (remainder and exponent, static data, dynamic data).
"""

from __future__ import annotations

import hashlib
from calendar import monthrange
from dataclasses import dataclass
from datetime import date

from terminal.emv.errors import OdaError, OdaFailure

HEADER = 0x6A
TRAILER = 0xBC
PAD = 0xBB
HASH_SHA1 = 0x01
PK_RSA = 0x01
HASH_LEN = 20

FORMAT_ISSUER = 0x02
FORMAT_SSAD = 0x03
FORMAT_ICC = 0x04
FORMAT_SDAD = 0x05
FORMAT_SDAD_FDDA_VISA = 0x95

ISSUER_FIXED = 36  # header, format, id 4, expiry 2, serial 3, algos 2, lengths 2, hash 20, trailer
ICC_FIXED = 42  # as above with a 10-byte PAN instead of the 4-byte issuer id


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def rsa_recover(signed: bytes, modulus: bytes, exponent: bytes) -> bytes:
    """The RSA public operation with a modulus-length result."""
    n = int.from_bytes(modulus, "big")
    x = int.from_bytes(signed, "big")
    if x >= n:
        return b""
    return pow(x, int.from_bytes(exponent, "big"), n).to_bytes(len(modulus), "big")


def hashed_part(recovered: bytes) -> bytes:
    """``X[1:N-21]``: the bytes between the header and the hash."""
    return recovered[1 : len(recovered) - HASH_LEN - 1]


def hash_field(recovered: bytes) -> bytes:
    return recovered[len(recovered) - HASH_LEN - 1 : -1]


def _frame_ok(recovered: bytes, formats: tuple[int, ...]) -> bool:
    return (
        len(recovered) > HASH_LEN + 3
        and recovered[0] == HEADER
        and recovered[-1] == TRAILER
        and recovered[1] in formats
    )


def expiry_passed(mmyy: bytes, today: date) -> bool:
    """True when ``today`` is after the last day of the MMYY month (YY < 50 is 20YY)."""
    text = mmyy.hex()
    if len(text) != 4 or not text.isdigit() or not 1 <= int(text[:2]) <= 12:
        return True
    month, yy = int(text[:2]), int(text[2:])
    year = 2000 + yy if yy < 50 else 1900 + yy
    return today > date(year, month, monthrange(year, month)[1])


def digits(raw: bytes) -> str:
    """Hex digits of a cn field with the F padding removed."""
    return raw.hex().upper().rstrip("F")


def _modulus(
    leftmost: bytes, length: int, remainder: bytes, missing: OdaFailure, tag: str
) -> bytes:
    """A recovered public key: the certificate's leftmost digits, plus the remainder tag's
    when the key is longer than the certificate has room for."""
    room = len(leftmost)
    if length <= room:
        return leftmost[:length]
    if len(remainder) != length - room:
        raise OdaError(missing, f"need {length - room} bytes of {tag}, have {len(remainder)}")
    return leftmost + remainder


@dataclass(frozen=True, slots=True)
class IssuerCertificate:
    """Recovered issuer public key certificate (tag 90, format 02)."""

    recovered: bytes
    issuer_id: bytes
    expiry: bytes
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int
    pk_length: int
    exponent_length: int
    pk_leftmost: bytes

    @classmethod
    def decode(cls, x: bytes) -> IssuerCertificate:
        if not _frame_ok(x, (FORMAT_ISSUER,)):
            raise OdaError(OdaFailure.ISSUER_CERT_FORMAT, f"recovered {x[:2].hex().upper()}..")
        n = len(x)
        return cls(x, x[2:6], x[6:8], x[8:11], x[11], x[12], x[13], x[14], x[15 : n - 21])

    def modulus(self, remainder: bytes) -> bytes:
        return _modulus(
            self.pk_leftmost, self.pk_length, remainder, OdaFailure.ISSUER_REMAINDER_MISSING, "92"
        )


@dataclass(frozen=True, slots=True)
class IccCertificate:
    """Recovered ICC public key certificate (tag 9F46, format 04)."""

    recovered: bytes
    pan: bytes
    expiry: bytes
    serial: bytes
    hash_algorithm: int
    pk_algorithm: int
    pk_length: int
    exponent_length: int
    pk_leftmost: bytes

    @classmethod
    def decode(cls, x: bytes) -> IccCertificate:
        if not _frame_ok(x, (FORMAT_ICC,)):
            raise OdaError(OdaFailure.ICC_CERT_FORMAT, f"recovered {x[:2].hex().upper()}..")
        n = len(x)
        return cls(x, x[2:12], x[12:14], x[14:17], x[17], x[18], x[19], x[20], x[21 : n - 21])

    def modulus(self, remainder: bytes) -> bytes:
        return _modulus(
            self.pk_leftmost, self.pk_length, remainder, OdaFailure.ICC_REMAINDER_MISSING, "9F48"
        )


@dataclass(frozen=True, slots=True)
class SignedStaticData:
    """Recovered signed static application data (tag 93, format 03)."""

    recovered: bytes
    hash_algorithm: int
    data_authentication_code: bytes

    @classmethod
    def decode(cls, x: bytes) -> SignedStaticData:
        if not _frame_ok(x, (FORMAT_SSAD,)):
            raise OdaError(OdaFailure.SSAD_FORMAT, f"recovered {x[:2].hex().upper()}..")
        return cls(x, x[2], x[3:5])


@dataclass(frozen=True, slots=True)
class SignedDynamicData:
    """Recovered signed dynamic application data (tag 9F4B, format 05, or 95 for fDDA)."""

    recovered: bytes
    format: int
    hash_algorithm: int
    icc_dynamic_data: bytes

    @classmethod
    def decode(cls, x: bytes, formats: tuple[int, ...] = (FORMAT_SDAD,)) -> SignedDynamicData:
        if not _frame_ok(x, formats):
            raise OdaError(
                OdaFailure.SDAD_FORMAT,
                f"recovered {x[:2].hex().upper()}.., accepted formats "
                + "/".join(f"{f:02X}" for f in formats),
            )
        length = x[3]
        if 4 + length > len(x) - HASH_LEN - 1:
            raise OdaError(OdaFailure.SDAD_FORMAT, f"dynamic data length {length} overruns")
        return cls(x, x[1], x[2], x[4 : 4 + length])

    @property
    def icc_dynamic_number(self) -> bytes:
        """The ICC dynamic number: ``len ‖ IDN`` at the start of the dynamic data."""
        d = self.icc_dynamic_data
        if not d or d[0] + 1 > len(d):
            return b""
        return d[1 : 1 + d[0]]


# -- encoding (issuer and card side) ---------------------------------------------------


def _pad_to(data: bytes, size: int) -> bytes:
    return data + bytes((PAD,)) * (size - len(data))


def _frame(body: bytes, extra: bytes) -> bytes:
    """``6A ‖ body ‖ SHA-1(body ‖ extra) ‖ BC``."""
    return bytes((HEADER,)) + body + sha1(body + extra) + bytes((TRAILER,))


def split_key(modulus: bytes, room: int) -> tuple[bytes, bytes]:
    """(leftmost part padded to ``room`` bytes, remainder)."""
    return _pad_to(modulus[:room], room), modulus[room:]


def encode_issuer_certificate(
    ca_length: int,
    issuer_id: bytes,
    expiry: bytes,
    serial: bytes,
    modulus: bytes,
    exponent: bytes,
) -> tuple[bytes, bytes]:
    """Plain issuer certificate X (to be signed by the CA) and the key remainder (92)."""
    leftmost, remainder = split_key(modulus, ca_length - ISSUER_FIXED)
    body = (
        bytes((FORMAT_ISSUER,))
        + issuer_id
        + expiry
        + serial
        + bytes((HASH_SHA1, PK_RSA, len(modulus), len(exponent)))
        + leftmost
    )
    return _frame(body, remainder + exponent), remainder


def encode_icc_certificate(
    issuer_length: int,
    pan: bytes,
    expiry: bytes,
    serial: bytes,
    modulus: bytes,
    exponent: bytes,
    static_data: bytes,
) -> tuple[bytes, bytes]:
    """Plain ICC certificate X (to be signed by the issuer) and the key remainder (9F48)."""
    leftmost, remainder = split_key(modulus, issuer_length - ICC_FIXED)
    body = (
        bytes((FORMAT_ICC,))
        + pan.ljust(10, b"\xff")
        + expiry
        + serial
        + bytes((HASH_SHA1, PK_RSA, len(modulus), len(exponent)))
        + leftmost
    )
    return _frame(body, remainder + exponent + static_data), remainder


def encode_signed_static_data(issuer_length: int, dac: bytes, static_data: bytes) -> bytes:
    body = _pad_to(bytes((FORMAT_SSAD, HASH_SHA1)) + dac, issuer_length - HASH_LEN - 2)
    return _frame(body, static_data)


def encode_signed_dynamic_data(
    icc_length: int, icc_dynamic_data: bytes, signed_input: bytes, fmt: int = FORMAT_SDAD
) -> bytes:
    head = bytes((fmt, HASH_SHA1, len(icc_dynamic_data))) + icc_dynamic_data
    return _frame(_pad_to(head, icc_length - HASH_LEN - 2), signed_input)
