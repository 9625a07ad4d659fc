"""Errors of the EMV kernel: selection, data, CA keys and offline data authentication.

Every ODA failure carries an ``OdaFailure`` reason, so a receipt, a log line or a test can
say exactly why a card was not authenticated.
"""

from __future__ import annotations

from enum import StrEnum

from terminal.apdu.errors import MalformedResponse, YikatongError


class EmvError(YikatongError):
    """Root of the kernel's own errors."""


class NoApplication(EmvError):
    """No application on the card matches the terminal's list (or all were blocked)."""


class MissingCardData(EmvError, MalformedResponse):
    """A data object the kernel must have (AIP, AFL, PAN, cryptogram, ...) was not sent."""


class DolError(EmvError, ValueError):
    """A DOL (or log format) that is not a well-formed list of tag and length pairs."""


class CaKeyError(EmvError, ValueError):
    """A CA public key entry that is malformed or whose checksum does not match."""


class TerminalConfigError(EmvError, ValueError):
    """A terminal data file that does not describe a usable terminal."""


class OdaFailure(StrEnum):
    """Why offline data authentication failed: one value per distinct check."""

    NOT_SUPPORTED = "no ODA method supported by both card and terminal"
    MISSING_DATA = "a data object required for ODA is missing"
    CA_KEY_MISSING = "CA public key index unknown to the terminal"
    CA_KEY_EXPIRED = "CA public key expired"
    STATIC_DATA_INVALID = "ODA record or SDA tag list not usable as static data"
    ISSUER_CERT_LENGTH = "issuer certificate length differs from the CA modulus"
    ISSUER_CERT_FORMAT = "recovered issuer certificate has a wrong header, format or trailer"
    ISSUER_CERT_HASH = "issuer certificate hash mismatch"
    ISSUER_CERT_ALGORITHM = "issuer certificate names an unsupported hash or key algorithm"
    ISSUER_ID_MISMATCH = "issuer identifier does not match the PAN"
    ISSUER_CERT_EXPIRED = "issuer certificate expired"
    ISSUER_KEY_REVOKED = "issuer public key certificate revoked"
    ISSUER_REMAINDER_MISSING = "issuer public key remainder missing or of the wrong length"
    SSAD_LENGTH = "signed static data length differs from the issuer modulus"
    SSAD_FORMAT = "recovered signed static data has a wrong header, format or trailer"
    SSAD_HASH = "signed static data hash mismatch (static data altered)"
    ICC_CERT_LENGTH = "ICC certificate length differs from the issuer modulus"
    ICC_CERT_FORMAT = "recovered ICC certificate has a wrong header, format or trailer"
    ICC_CERT_HASH = "ICC certificate hash mismatch (static data altered)"
    ICC_CERT_ALGORITHM = "ICC certificate names an unsupported hash or key algorithm"
    ICC_PAN_MISMATCH = "PAN in the ICC certificate differs from the card's PAN"
    ICC_CERT_EXPIRED = "ICC certificate expired"
    ICC_REMAINDER_MISSING = "ICC public key remainder missing or of the wrong length"
    SDAD_LENGTH = "signed dynamic data length differs from the ICC modulus"
    SDAD_FORMAT = "recovered signed dynamic data has a wrong header, format or trailer"
    SDAD_HASH = "signed dynamic data hash mismatch"
    DYNAMIC_NUMBER_MISMATCH = "ICC dynamic number does not match the ATC"
    INTERNAL_AUTHENTICATE_FAILED = "the card refused INTERNAL AUTHENTICATE or sent no SDAD"


class OdaError(EmvError):
    """ODA failed for ``reason``; ``detail`` adds the specifics."""

    def __init__(self, reason: OdaFailure, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.name}: {reason.value}" + (f" ({detail})" if detail else ""))
