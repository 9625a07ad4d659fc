"""Campus software cards and SAM: the campus master, campus cards, clones of them.

The campus master (a demo key from a public label) is what a campus SAM holds and what
the HSM diversifies per card at personalisation; ``campus_card`` personalises a demo card
directly (tests that are not about issuance), ``campus_psam`` is a PSAM that also holds
the campus master, and ``clone`` copies everything a reader can read off a card (its
serial, its files) but not its key, as a card cloner does.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import date

from simulators.epurse_card import SoftEPurseCard
from simulators.profiles import DEMO_ISSUERS, demo_card, demo_psam
from simulators.psam import SoftPsam
from terminal.campus.card import KEY_VERSION, Identity
from terminal.crypto.keys import Algorithm, card_key


def demo_campus_master() -> bytes:
    """The demo campus master key (a test key: derived from a public label)."""
    return hashlib.sha256(b"yikatong demo key - not for production - campus master").digest()[:16]


def campus_psam(terminal_id: str = "310000000101") -> SoftPsam:
    """A demo PSAM that also holds the campus master (key version 1)."""
    psam = demo_psam(terminal_id)
    psam.state.campus = {str(KEY_VERSION): demo_campus_master().hex().upper()}
    psam.save()
    return psam


def campus_card(
    number: int,
    person_no: str,
    *,
    category: int = 1,
    balance: int = 5_000,
    valid_from: date = date(2024, 9, 1),
    valid_until: date = date(2028, 7, 31),
) -> SoftEPurseCard:
    """A demo card carrying the campus application for ``person_no``."""
    card = demo_card(number, balance=balance)
    issuer = DEMO_ISSUERS["shanghai"]
    key = card_key(demo_campus_master(), card.serial, issuer, Algorithm.DES3)
    card.state.campus_key = key.hex().upper()
    card.state.campus_identity = (
        Identity(person_no, category, valid_from, valid_until).to_bytes().hex().upper()
    )
    return card


def clone(card: SoftEPurseCard, *, key: bytes | None = None) -> SoftEPurseCard:
    """A card with the same serial, files and identity as ``card`` but not its campus key
    (a cloner reads files, not keys): ``key`` is what the cloner guessed."""
    guess = key if key is not None else bytes(16)
    state = copy.deepcopy(card.state)
    state.campus_key = guess.hex().upper()
    return SoftEPurseCard(state)
