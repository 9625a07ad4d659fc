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
from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec

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

P = ParamSpec("P")


def _mac(key: bytes, layout: Any, when: datetime | None = None, **fields: Any) -> bytes:
    """The PBOC MAC under ``key`` over ``layout`` built from ``fields`` (and ``when``'s date
    and time, for the layouts that carry them)."""
    if when is not None:
        fields.update(date=when.date(), time=when.time())
    return pboc_mac(key, build(layout, **fields))


def purchase_mac1(
    session_key: bytes, *, amount: int, txn_type: int, terminal_id: bytes, when: datetime
) -> bytes:
    """The PSAM's MAC1 for DEBIT FOR PURCHASE: amount, type, terminal id, date and time."""
    return _mac(
        session_key,
        PurchaseMac1Input,
        when,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
    )


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
    """The card's purchase TAC under its 16-byte TAC key (the MAC key is derived here):
    amount, type, terminal id, terminal sequence number, date and time."""
    return _mac(
        tac_key(card_tac_key),
        PurchaseTacInput,
        when,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
        terminal_seq=terminal_seq,
    )


def load_mac1(
    session_key: bytes,
    *,
    balance: int,
    amount: int,
    terminal_id: bytes,
    txn_type: int = TxnType.EP_LOAD,
) -> bytes:
    """The card's MAC1 in its INITIALIZE FOR LOAD answer: balance before, amount, type, id."""
    return _mac(
        session_key,
        LoadMac1Input,
        balance=balance,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
    )


def load_mac2(
    session_key: bytes,
    *,
    amount: int,
    terminal_id: bytes,
    when: datetime,
    txn_type: int = TxnType.EP_LOAD,
) -> bytes:
    """The host's MAC2 for CREDIT FOR LOAD: amount, type, terminal id, host date and time."""
    return _mac(
        session_key,
        LoadMac2Input,
        when,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
    )


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
    return _mac(
        tac_key(card_tac_key),
        LoadTacInput,
        when,
        new_balance=new_balance,
        online_atc=online_atc,
        amount=amount,
        txn_type=txn_type,
        terminal_id=terminal_id,
    )


def _verifier(
    what: str, cryptogram: Callable[Concatenate[bytes, P], bytes]
) -> Callable[Concatenate[bytes, bytes, P], None]:
    """``verify(key, given, **fields)`` for ``cryptogram``: recompute it and compare in constant
    time; ``MacMismatch`` when ``given`` differs."""

    def verify(key: bytes, given: bytes, /, *args: P.args, **fields: P.kwargs) -> None:
        if not secrets.compare_digest(cryptogram(key, *args, **fields), bytes(given)):
            raise MacMismatch(SW.MAC_ERROR, detail=f"{what} does not verify")

    verify.__name__ = f"verify_{cryptogram.__name__}"
    verify.__doc__ = f"``MacMismatch`` unless ``given`` is the {what} over these fields."
    return verify


verify_purchase_mac1 = _verifier("purchase MAC1", purchase_mac1)
verify_purchase_mac2 = _verifier("purchase MAC2", purchase_mac2)
verify_purchase_tac = _verifier("purchase TAC", purchase_tac)
verify_load_mac1 = _verifier("load MAC1", load_mac1)
verify_load_mac2 = _verifier("load MAC2", load_mac2)
verify_load_tac = _verifier("load TAC", load_tac)
