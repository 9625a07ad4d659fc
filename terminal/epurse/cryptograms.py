"""The e-purse cryptograms (reference §3.2, §3.3): purchase MAC1/MAC2/TAC, load MAC1/MAC2/TAC.

The one place each rule is written: which fields each cryptogram covers (the inputs are
the layouts in ``layouts.py``) and under which key (a session key from
``terminal.crypto.keys``, or the card's TAC key). The HSM, clearing, the software card and
the software PSAM all call these; the module holds no key, every key is an argument.

Each ``verify_*`` recomputes the cryptogram and compares it in constant time, raising
``MacMismatch`` when it differs, so a caller cannot forget the comparison.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from terminal.apdu.errors import MacMismatch
from terminal.apdu.status import SW
from terminal.crypto.keys import tac_key
from terminal.crypto.mac import pboc_mac
from terminal.epurse.commands import TxnType
from terminal.epurse.layouts import (
    LoadMac1Input,
    LoadMac2Input,
    LoadTacInput,
    PurchaseMac1Input,
    PurchaseTacInput,
)
from terminal.layout import build


def purchase_mac1(
    session_key: bytes, *, amount: int, txn_type: int, terminal_id: bytes, when: datetime
) -> bytes:
    """The PSAM's MAC1 for DEBIT FOR PURCHASE: amount, type, terminal id, date and time."""
    data = build(
        PurchaseMac1Input,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
        date=when.date(),
        time=when.time(),
    )
    return pboc_mac(session_key, data)


def purchase_mac2(session_key: bytes, *, amount: int) -> bytes:
    """The card's MAC2 after a debit: the amount under the purchase session key."""
    return pboc_mac(session_key, amount.to_bytes(4, "big"))


def purchase_tac(
    card_tac_key: bytes,
    *,
    amount: int,
    txn_type: int,
    terminal_id: bytes,
    terminal_seq: int,
    when: datetime,
) -> bytes:
    """The card's purchase TAC under its 16-byte TAC key (the MAC key is derived here)."""
    data = build(
        PurchaseTacInput,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
        terminal_seq=terminal_seq,
        date=when.date(),
        time=when.time(),
    )
    return pboc_mac(tac_key(card_tac_key), data)


def load_mac1(
    session_key: bytes,
    *,
    balance: int,
    amount: int,
    terminal_id: bytes,
    txn_type: int = TxnType.EP_LOAD,
) -> bytes:
    """The card's MAC1 in its INITIALIZE FOR LOAD answer: balance before, amount, type, id."""
    data = build(
        LoadMac1Input, balance=balance, amount=amount, txn_type=txn_type, terminal_id=terminal_id
    )
    return pboc_mac(session_key, data)


def load_mac2(
    session_key: bytes,
    *,
    amount: int,
    terminal_id: bytes,
    when: datetime,
    txn_type: int = TxnType.EP_LOAD,
) -> bytes:
    """The host's MAC2 for CREDIT FOR LOAD: amount, type, terminal id, host date and time."""
    data = build(
        LoadMac2Input,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
        date=when.date(),
        time=when.time(),
    )
    return pboc_mac(session_key, data)


def load_tac(
    card_tac_key: bytes,
    *,
    new_balance: int,
    online_atc: int,
    amount: int,
    terminal_id: bytes,
    when: datetime,
    txn_type: int = TxnType.EP_LOAD,
) -> bytes:
    """The card's load TAC under its 16-byte TAC key: new balance, online ATC (before the
    load), amount, type, terminal id, date and time."""
    data = build(
        LoadTacInput,
        new_balance=new_balance,
        online_atc=online_atc,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
        date=when.date(),
        time=when.time(),
    )
    return pboc_mac(tac_key(card_tac_key), data)


def _verify(what: str, expected: bytes, given: bytes) -> None:
    if not secrets.compare_digest(expected, bytes(given)):
        raise MacMismatch(SW.MAC_ERROR, detail=f"{what} does not verify")


def verify_purchase_mac1(
    session_key: bytes,
    mac1: bytes,
    *,
    amount: int,
    txn_type: int,
    terminal_id: bytes,
    when: datetime,
) -> None:
    """``MacMismatch`` unless ``mac1`` is the purchase MAC1 over these fields."""
    expected = purchase_mac1(
        session_key, amount=amount, txn_type=txn_type, terminal_id=terminal_id, when=when
    )
    _verify("purchase MAC1", expected, mac1)


def verify_purchase_mac2(session_key: bytes, mac2: bytes, *, amount: int) -> None:
    """``MacMismatch`` unless ``mac2`` is the card's MAC2 for this amount."""
    _verify("purchase MAC2", purchase_mac2(session_key, amount=amount), mac2)


def verify_purchase_tac(
    card_tac_key: bytes,
    tac: bytes,
    *,
    amount: int,
    txn_type: int,
    terminal_id: bytes,
    terminal_seq: int,
    when: datetime,
) -> None:
    """``MacMismatch`` unless ``tac`` is the card's purchase TAC over these fields."""
    expected = purchase_tac(
        card_tac_key,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
        terminal_seq=terminal_seq,
        when=when,
    )
    _verify("purchase TAC", expected, tac)


def verify_load_mac1(
    session_key: bytes,
    mac1: bytes,
    *,
    balance: int,
    amount: int,
    terminal_id: bytes,
    txn_type: int = TxnType.EP_LOAD,
) -> None:
    """``MacMismatch`` unless ``mac1`` is the card's load MAC1 over these fields."""
    expected = load_mac1(
        session_key, balance=balance, amount=amount, terminal_id=terminal_id, txn_type=txn_type
    )
    _verify("load MAC1", expected, mac1)


def verify_load_mac2(
    session_key: bytes,
    mac2: bytes,
    *,
    amount: int,
    terminal_id: bytes,
    when: datetime,
    txn_type: int = TxnType.EP_LOAD,
) -> None:
    """``MacMismatch`` unless ``mac2`` is the host's load MAC2 over these fields."""
    expected = load_mac2(
        session_key, amount=amount, terminal_id=terminal_id, when=when, txn_type=txn_type
    )
    _verify("load MAC2", expected, mac2)


def verify_load_tac(
    card_tac_key: bytes,
    tac: bytes,
    *,
    new_balance: int,
    online_atc: int,
    amount: int,
    terminal_id: bytes,
    when: datetime,
    txn_type: int = TxnType.EP_LOAD,
) -> None:
    """``MacMismatch`` unless ``tac`` is the card's load TAC over these fields."""
    expected = load_tac(
        card_tac_key,
        new_balance=new_balance,
        online_atc=online_atc,
        amount=amount,
        terminal_id=terminal_id,
        when=when,
        txn_type=txn_type,
    )
    _verify("load TAC", expected, tac)
