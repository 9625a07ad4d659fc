"""Command APDU builders for the PBOC ED/EP and JT/T 978 card application (reference §2.1)."""

from __future__ import annotations

import functools
from datetime import datetime
from enum import IntEnum

from terminal.apdu.command import CommandAPDU, CommandTemplate, template
from terminal.epurse.layouts import CreditData, DebitData, InitializeData
from terminal.layout import build

AID_TUNION_EP = bytes.fromhex("A000000632010105")  # JT/T 978 EP, DES or dual algorithm
AID_TUNION_EP_SM = bytes.fromhex("A000000632010107")  # SM-only EP
FID_MF = 0x3F00
FID_EP = 0x1001

SFI_PUBLIC_INFO = 0x15
SFI_CARDHOLDER = 0x16
SFI_MANAGEMENT = 0x17
SFI_TXN_LOG = 0x18
SFI_CAPP_VARIABLE = 0x1A
SFI_TRIP = 0x1E


class Ins(IntEnum):
    """INS bytes of the e-purse's own commands (reference §2.1; the ISO 7816-4 ones are
    ``terminal.apdu.iso.IsoIns``): named once, for the builders below, the simulators that
    answer them and the tests that tear or answer at one of them."""

    APPLICATION_UNBLOCK = 0x18
    APPLICATION_BLOCK = 0x1E
    INITIALIZE = 0x50
    CREDIT_FOR_LOAD = 0x52
    DEBIT_FOR_PURCHASE = 0x54
    GET_TRANSACTION_PROVE = 0x5A
    GET_BALANCE = 0x5C
    UPDATE_CAPP_DATA_CACHE = 0xDC


class TxnType(IntEnum):
    """Transaction type identifiers (reference §5.7)."""

    ED_LOAD = 0x01
    EP_LOAD = 0x02
    UNLOAD = 0x03
    ED_CASH_WITHDRAW = 0x04
    ED_PURCHASE = 0x05
    EP_PURCHASE = 0x06
    OVERDRAFT_UPDATE = 0x07
    CREDIT_PURCHASE = 0x08
    CAPP_PURCHASE = 0x09

    @property
    def is_debit(self) -> bool:
        """The purse balance goes down (a card log entry shown with a minus sign)."""
        return self.is_purchase or self in (
            TxnType.ED_CASH_WITHDRAW,
            TxnType.UNLOAD,
            TxnType.CREDIT_PURCHASE,
        )

    @property
    def is_purchase(self) -> bool:
        """An offline purchase: DEBIT FOR PURCHASE with the PSAM's MAC1, counted by the card's
        offline counter, proven by its TAC. The only types a terminal journals and a gateway
        accepts, and the ones recovery looks for in the card's log."""
        return self in (TxnType.ED_PURCHASE, TxnType.EP_PURCHASE, TxnType.CAPP_PURCHASE)


PURCHASE_TYPES = frozenset(int(t) for t in TxnType if t.is_purchase)


class InitP1(IntEnum):
    LOAD = 0x00
    PURCHASE = 0x01
    CAPP_PURCHASE = 0x03
    UPDATE = 0x04
    UNLOAD = 0x05


PURSE_EP = 0x02
PURSE_ED = 0x01
# GET BALANCE with P1 01 (805C010204): the second ("negative") purse some city cards keep
SECOND_PURSE_P1 = 0x01


@template
def get_balance(purse: int = PURSE_EP, *, p1: int = 0x00) -> CommandAPDU:
    return CommandAPDU(0x80, Ins.GET_BALANCE, p1, purse, le=4)


@template
def initialize(
    p1: int, key_index: int, amount: int, terminal_id: bytes, *, purse: int = PURSE_EP
) -> CommandAPDU:
    data = build(InitializeData, key_index=key_index, amount=amount, terminal_id=terminal_id)
    le = 0x10 if p1 == InitP1.LOAD else 0x0F
    return CommandAPDU(0x80, Ins.INITIALIZE, p1, purse, data, le=le)


_initialize = initialize.__wrapped__  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=256)
def initialize_for_purchase(
    key_index: int, amount: int, terminal_id: bytes, *, capp: bool = False
) -> CommandAPDU:
    """Cached by its arguments: a terminal's key index and id with one fare repeat every tap
    (SamInfo holds the id as bytes, so the arguments always hash)."""
    p1 = InitP1.CAPP_PURCHASE if capp else InitP1.PURCHASE
    return _initialize(p1, key_index, amount, terminal_id)  # type: ignore[no-any-return]


def initialize_for_load(key_index: int, amount: int, terminal_id: bytes) -> CommandAPDU:
    return initialize(InitP1.LOAD, key_index, amount, terminal_id)


_DEBIT_FOR_PURCHASE = CommandTemplate(
    0x80, Ins.DEBIT_FOR_PURCHASE, 0x01, 0x00, lc=DebitData.sizeof(), le=8
)
_CREDIT_FOR_LOAD = CommandTemplate(
    0x80, Ins.CREDIT_FOR_LOAD, 0x00, 0x00, lc=CreditData.sizeof(), le=4
)


def debit_for_purchase(terminal_seq: int, when: datetime, mac1: bytes) -> CommandAPDU:
    data = build(
        DebitData, terminal_seq=terminal_seq, date=when.date(), time=when.time(), mac1=mac1
    )
    return _DEBIT_FOR_PURCHASE.fill(data)


def credit_for_load(when: datetime, mac2: bytes) -> CommandAPDU:
    data = build(CreditData, date=when.date(), time=when.time(), mac2=mac2)
    return _CREDIT_FOR_LOAD.fill(data)


def get_transaction_prove(txn_type: int, atc: int) -> CommandAPDU:
    return CommandAPDU(
        0x80, Ins.GET_TRANSACTION_PROVE, 0x00, txn_type, (atc & 0xFFFF).to_bytes(2, "big"), le=8
    )


def update_capp_data_cache(p1: int, p2: int, record: bytes) -> CommandAPDU:
    return CommandAPDU(0x80, Ins.UPDATE_CAPP_DATA_CACHE, p1, p2, record)


def application_block(mac: bytes, *, permanent: bool = False) -> CommandAPDU:
    return CommandAPDU(0x84, Ins.APPLICATION_BLOCK, 0x00, 0x01 if permanent else 0x00, mac)


def application_block_header(*, permanent: bool = False) -> bytes:
    """The MACed part of APPLICATION BLOCK: header with Lc already counting the MAC."""
    return bytes((0x84, Ins.APPLICATION_BLOCK, 0x00, 0x01 if permanent else 0x00, 0x04))
