"""The holder check of a kiosk pickup: a card alone does not collect a subsidy.

The kiosk asks the holder for their whole ID number and sends it with the pickup (the
公示 listing shows its first 6 and last 4 characters, so a part of it would be half public);
it is compared with the card book's holder of the card. Wrong answers are
counted per card in ``subsidy_pickup_guard``, each in its own transaction (the refusal
rolls nothing else back); after ``tries`` of them pickup is locked for ``lock_ms``, and
a right answer then is refused too until the lock expires. A right answer clears the
count. The answer is never stored, logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from gateway import cards
from gateway.errors import Conflict, Forbidden
from gateway.storage import Database, now_ms


@dataclass(frozen=True)
class HolderRules:
    """How many wrong answers lock a card's pickup, and for how long."""

    tries: int = 3
    lock_ms: int = 30 * 60_000


def _locked(card_number: str, until: int, rules: HolderRules) -> Forbidden:
    at = datetime.fromtimestamp(until / 1000).strftime("%Y-%m-%d %H:%M")
    return Forbidden(
        "pickup_locked",
        f"pickup for card {card_number} is locked until {at} after {rules.tries} wrong "
        "answers to the holder check; come back then, or ask the service desk",
    )


def check_holder(db: Database, card_number: str, holder: str, rules: HolderRules) -> None:
    """Pass when ``holder`` (``PickupBody`` checked its form) is the card's holder's
    ID number and the card's pickup is not locked; otherwise count the
    failure and refuse."""
    card = cards.get_card(db, card_number)
    if card is None:
        raise Conflict(
            "holder_unknown",
            f"card {card_number} is not in the gateway's card book: its holder cannot be "
            "checked, so it is paid by the agent bank, not at a kiosk",
        )
    right = hmac.compare_digest(card.id_number.upper().encode(), holder.encode())
    now = now_ms()
    with db.tx() as cur:
        # touch (and so lock) the card's row first; an expired lock starts a fresh count
        cur.execute(
            "INSERT INTO subsidy_pickup_guard (card_number, failures, last_at, locked_until)"
            " VALUES (?, 0, ?, NULL) ON CONFLICT (card_number) DO UPDATE SET"
            " failures = CASE WHEN subsidy_pickup_guard.locked_until <= ? THEN 0"
            " ELSE subsidy_pickup_guard.failures END,"
            " locked_until = CASE WHEN subsidy_pickup_guard.locked_until <= ? THEN NULL"
            " ELSE subsidy_pickup_guard.locked_until END",
            (card_number, now, now, now),
        )
        cur.execute(
            "SELECT failures, locked_until FROM subsidy_pickup_guard WHERE card_number = ?",
            (card_number,),
        )
        failures, until = cur.fetchone()
        if until is not None:
            raise _locked(card_number, int(until), rules)
        if right:
            cur.execute("DELETE FROM subsidy_pickup_guard WHERE card_number = ?", (card_number,))
            return
        failures = int(failures) + 1
        lock = now + rules.lock_ms if failures >= rules.tries else None
        cur.execute(
            "UPDATE subsidy_pickup_guard SET failures = ?, last_at = ?, locked_until = ?"
            " WHERE card_number = ?",
            (failures, now, lock, card_number),
        )
    wrong = f"the ID number does not match the holder of card {card_number}"
    if lock is not None:
        raise Forbidden(
            "not_the_holder",
            f"{wrong}; pickup for this card is now locked for {rules.lock_ms // 60_000} minutes",
        )
    raise Forbidden(
        "not_the_holder",
        f"{wrong}: {rules.tries - failures} more wrong answer(s) lock its pickup for "
        f"{rules.lock_ms // 60_000} minutes",
    )
