"""Every error the card path can raise: malformed bytes, transport faults, and card status words.

Status-word exceptions carry the command that drew them and the SW, and their message
says what the terminal should do about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from terminal.apdu.status import SW

if TYPE_CHECKING:
    from terminal.apdu.command import CommandAPDU


class YikatongError(Exception):
    """Root of the project's own exceptions."""


class MalformedApdu(YikatongError, ValueError):
    """A command APDU that fits no ISO 7816-4 case."""


class MalformedResponse(YikatongError, ValueError):
    """A response whose bytes do not have the layout the command promises."""

    def __init__(self, message: str, *, raw: bytes = b"", command: CommandAPDU | None = None):
        super().__init__(message)
        self.raw = raw
        self.command = command


class LayoutBuildError(YikatongError, ValueError):
    """Field values that do not fit a byte layout (a field missing, of the wrong length or out
    of range): nothing is built, so a short MAC never goes to a card as fewer bytes."""


class TlvError(YikatongError, ValueError):
    """BER-TLV that is truncated, overlong or otherwise not well formed."""

    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


class TransportError(YikatongError):
    """The exchange did not complete: the card may or may not have acted on the command."""


class CardRemoved(TransportError):
    """The card left the field (or was pulled from the slot) during an exchange."""


class NoCard(TransportError):
    """No card is present in the reader."""


class ReaderUnavailable(TransportError):
    """The reader itself is gone (unplugged, driver or daemon restarted)."""


class ReaderTimeout(TransportError):
    """The reader gave up waiting for the card's answer (PC/SC ``SCARD_E_TIMEOUT``); the
    card may or may not have acted on the command."""


class CardError(YikatongError):
    """A card or SAM answered with a status word other than 9000."""

    sw_value: ClassVar[int | None] = None
    advice: ClassVar[str] = "the card refused the command"

    def __init__(self, sw: int, command: CommandAPDU | None = None, detail: str = ""):
        self.sw = sw
        self.command = command
        self.detail = detail
        cmd = f" to {command.encode()[:4].hex().upper()}" if command is not None else ""
        extra = f": {detail}" if detail else ""
        super().__init__(f"SW {sw:04X}{cmd}: {self.advice}{extra}")


class InsufficientBalance(CardError):
    sw_value = SW.INSUFFICIENT_BALANCE
    advice = "insufficient balance on the purse"


class MacMismatch(CardError):
    sw_value = SW.MAC_ERROR
    advice = "MAC check failed (wrong key, tampered data or wrong session)"


class ApplicationLocked(CardError):
    sw_value = SW.APP_LOCKED
    advice = "application permanently locked; refuse the card"


class KeyNotFound(CardError):
    sw_value = SW.KEY_NOT_FOUND
    advice = "key index/version not present; check the PSAM against the card's key version"


class MacUnavailable(CardError):
    sw_value = SW.MAC_UNAVAILABLE
    advice = "required MAC not available (e.g. wrong counter in GET TRANSACTION PROVE)"


class WrongPin(CardError):
    advice = "wrong PIN"

    @property
    def tries_left(self) -> int:
        return self.sw & 0x0F


class PinBlocked(CardError):
    sw_value = SW.PIN_BLOCKED
    advice = "PIN or key blocked"


class FileNotFound(CardError):
    sw_value = SW.FILE_NOT_FOUND
    advice = "file or application not found"


class RecordNotFound(CardError):
    sw_value = SW.RECORD_NOT_FOUND
    advice = "record not found"


class FileExists(CardError):
    sw_value = SW.FILE_EXISTS
    advice = "file already exists (CREATE FILE of a file the card holds)"


class ConditionsNotSatisfied(CardError):
    sw_value = SW.CONDITIONS
    advice = "conditions of use not satisfied"


class SecurityStatusNotSatisfied(CardError):
    sw_value = SW.SECURITY_STATUS
    advice = "security status not satisfied (PIN or authentication missing)"


class ApplicationBlocked(CardError):
    sw_value = SW.SELECTED_FILE_INVALIDATED
    advice = "application blocked (selected file invalidated); refuse the card"


class FunctionNotSupported(CardError):
    sw_value = SW.FUNCTION_NOT_SUPPORTED
    advice = "function not supported (application may be blocked)"


class StateMismatch(CardError):
    sw_value = SW.STATE_MISMATCH
    advice = "command out of sequence for the card's state machine"


class CappCacheFailed(CardError):
    sw_value = SW.CAPP_CACHE_FAILED
    advice = "UPDATE CAPP DATA CACHE failed"


class WrongLength(CardError):
    sw_value = SW.WRONG_LENGTH
    advice = "wrong length"


class WrongData(CardError):
    sw_value = SW.WRONG_DATA
    advice = "incorrect parameters in the data field"


class WrongP1P2(CardError):
    sw_value = SW.WRONG_P1P2
    advice = "incorrect P1/P2"


class InsNotSupported(CardError):
    sw_value = SW.INS_NOT_SUPPORTED
    advice = "instruction not supported"


class ClaNotSupported(CardError):
    sw_value = SW.CLA_NOT_SUPPORTED
    advice = "class not supported"


class UnknownStatus(CardError):
    advice = "unexpected status word"


_BY_SW: dict[int, type[CardError]] = {
    cls.sw_value: cls
    for cls in (
        InsufficientBalance,
        MacMismatch,
        ApplicationLocked,
        KeyNotFound,
        MacUnavailable,
        PinBlocked,
        FileNotFound,
        RecordNotFound,
        FileExists,
        ConditionsNotSatisfied,
        SecurityStatusNotSatisfied,
        ApplicationBlocked,
        FunctionNotSupported,
        StateMismatch,
        CappCacheFailed,
        WrongLength,
        WrongData,
        WrongP1P2,
        InsNotSupported,
        ClaNotSupported,
    )
    if cls.sw_value is not None
}


def error_for(sw: int, command: CommandAPDU | None = None) -> CardError:
    """The typed exception for a status word (63Cx is a wrong PIN with x tries left)."""
    if sw & 0xFFF0 == SW.WRONG_PIN_ANY:
        return WrongPin(sw, command, f"{sw & 0x0F} tries left")
    cls = _BY_SW.get(sw, UnknownStatus)
    return cls(sw, command)
