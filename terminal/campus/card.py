"""The campus identity scheme: who a card is, proven by the card's own key, never its UID.

A campus card carries, beside its e-purse, an internal authentication key diversified per
card (the campus master key under the card's serial and issuer) and an identity file
(SFI 0x19). ``authenticate`` selects the application, asks the terminal's SAM for a fresh
challenge, has the card encipher it (INTERNAL AUTHENTICATE), has the SAM check the answer
against the key it derives for the serial the card claims, and only then reads the
identity file. A card that copies another's serial and files (a cloned UID) has no key
for that serial and is refused; an answer recorded earlier answers another challenge and
is refused. The terminal sees no key: the SAM holds the campus master.

Commands, the identity file layout and the cryptogram live here together, used by the
terminal (to build and parse) and by the software card and SAM (to answer).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from terminal.apdu import iso
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import CardError, MacMismatch, YikatongError
from terminal.apdu.flow import Flow, card, sam
from terminal.crypto.primitives import des_encrypt
from terminal.epurse import flows
from terminal.epurse.layouts import (
    CAMPUS_IDENTITY_LEN,
    CAMPUS_KEY_INDEX,
    SFI_CAMPUS_IDENTITY,
    CampusIdentityFile,
)
from terminal.epurse.model import CardInfo
from terminal.layout import build, parse

SFI_IDENTITY = SFI_CAMPUS_IDENTITY  # the card's layout lives with the others (epurse.layouts)
IDENTITY_LEN = CAMPUS_IDENTITY_LEN
KEY_INDEX = CAMPUS_KEY_INDEX
IdentityFile = CampusIdentityFile
CHALLENGE_LEN = 8
KEY_VERSION = 1  # the campus master's version the SAM holds

CATEGORIES = {1: "student", 2: "staff", 3: "visitor"}


class NotGenuine(YikatongError):
    """The card did not prove it holds the key for the serial it claims (``serial``, hex)."""

    def __init__(self, message: str, serial: str | None = None):
        super().__init__(message)
        self.serial = serial


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity file: the person's number, category and the card's validity."""

    person_no: str
    category: int
    valid_from: date
    valid_until: date

    def to_bytes(self) -> bytes:
        raw = self.person_no.encode("ascii")
        if not raw or len(raw) > 16 or not self.person_no.isalnum():
            raise ValueError("person number must be 1..16 ASCII letters and digits")
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {sorted(CATEGORIES)}")
        return build(
            IdentityFile,
            person_no=raw.ljust(16, b"\x00"),
            category=self.category,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            reserved=bytes(7),
        )

    @classmethod
    def parse(cls, raw: bytes) -> Identity:
        p = parse(IdentityFile, raw, "campus identity file (0x19)")
        return cls(
            p.person_no.rstrip(b"\x00").decode("ascii", "replace"),
            p.category,
            p.valid_from,
            p.valid_until,
        )


@dataclass(frozen=True, slots=True)
class CampusCard:
    """A card that proved its key: its public info and its identity file."""

    info: CardInfo
    identity: Identity

    @property
    def serial(self) -> bytes:
        return self.info.serial

    @property
    def serial_hex(self) -> str:
        return self.info.serial_hex


# -- the cryptogram: keys are arguments (the card's own, or the SAM's derived one) --------
def auth_cryptogram(key: bytes, challenge: bytes) -> bytes:
    """INTERNAL AUTHENTICATE's answer: the 8-byte challenge enciphered under the card key."""
    if len(challenge) != CHALLENGE_LEN:
        raise ValueError("challenge must be 8 bytes")
    return des_encrypt(key, challenge)


def verify_auth_cryptogram(key: bytes, challenge: bytes, answer: bytes) -> None:
    """Raise ``MacMismatch`` unless ``answer`` is the challenge under ``key`` (constant time)."""
    if not secrets.compare_digest(auth_cryptogram(key, challenge), answer):
        raise MacMismatch(0x9302)


# -- commands -------------------------------------------------------------------------------
def internal_authenticate(challenge: bytes, key_index: int = KEY_INDEX) -> CommandAPDU:
    """INTERNAL AUTHENTICATE (00 88 00 key): the card enciphers the challenge."""
    return iso.internal_authenticate(challenge, key=key_index, le=8)


def sam_challenge() -> CommandAPDU:
    """GET CHALLENGE (00 84) to the SAM: the random the card must encipher."""
    return iso.get_challenge(CHALLENGE_LEN)


def sam_verify(serial: bytes, issuer_id: bytes, answer: bytes) -> CommandAPDU:
    """VERIFY CARD (80 82 00 version, the proprietary class of EXTERNAL AUTHENTICATE): the SAM
    checks the card's answer to its last challenge with the campus key it derives for
    (serial, issuer); 9000 or 9302."""
    data = serial + issuer_id + answer
    return CommandAPDU(0x80, iso.IsoIns.EXTERNAL_AUTHENTICATE, 0x00, KEY_VERSION, data)


def read_identity() -> CommandAPDU:
    return iso.read_binary(SFI_IDENTITY, length=IDENTITY_LEN)


# -- the flow -------------------------------------------------------------------------------
def authenticate() -> Flow[CampusCard]:
    """Select, prove the card's key through the SAM, then read the identity file."""
    info = yield from flows.select()
    r = yield sam(sam_challenge())
    challenge = r.data
    try:
        r = yield card(internal_authenticate(challenge))
    except CardError as exc:
        raise NotGenuine(f"card refused INTERNAL AUTHENTICATE ({exc})", info.serial_hex) from None
    if len(r.data) != CHALLENGE_LEN:
        raise NotGenuine(
            f"card answered INTERNAL AUTHENTICATE with {len(r.data)} bytes", info.serial_hex
        )
    try:
        yield sam(sam_verify(info.serial, info.issuer_id, r.data))
    except CardError as exc:
        raise NotGenuine(
            f"card {info.serial_hex} does not hold its campus key (SAM: {exc})", info.serial_hex
        ) from None
    r = yield card(read_identity())
    return CampusCard(info, Identity.parse(r.data))
