"""ISO 7816-4 APDUs, status words, 61xx/6Cxx handling, BER-TLV and the sans-I/O flow driver."""

from terminal.apdu.channel import Channel, check
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import (
    ApplicationBlocked,
    ApplicationLocked,
    CardError,
    CardRemoved,
    ConditionsNotSatisfied,
    FileNotFound,
    InsufficientBalance,
    KeyNotFound,
    MacMismatch,
    MacUnavailable,
    MalformedApdu,
    MalformedResponse,
    NoCard,
    PinBlocked,
    ReaderUnavailable,
    RecordNotFound,
    TlvError,
    TransportError,
    WrongPin,
    YikatongError,
    error_for,
)
from terminal.apdu.flow import Flow, Step, run
from terminal.apdu.response import ResponseAPDU
from terminal.apdu.status import SW

__all__ = [
    "SW",
    "ApplicationBlocked",
    "ApplicationLocked",
    "CardError",
    "CardRemoved",
    "Channel",
    "CommandAPDU",
    "ConditionsNotSatisfied",
    "FileNotFound",
    "Flow",
    "InsufficientBalance",
    "KeyNotFound",
    "MacMismatch",
    "MacUnavailable",
    "MalformedApdu",
    "MalformedResponse",
    "NoCard",
    "PinBlocked",
    "ReaderUnavailable",
    "RecordNotFound",
    "ResponseAPDU",
    "Step",
    "TlvError",
    "TransportError",
    "WrongPin",
    "YikatongError",
    "check",
    "error_for",
    "run",
]
