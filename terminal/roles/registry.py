"""The card centre's book of cards (发卡登记): who holds which card, as a small protocol.

One person, one card, one number (一人一卡一号): an identity number holds at most one
live card of each card kind. A record goes

    pending ──activate──▶ active ──report_lost──▶ lost ──(replacement done)──▶ replaced
       └──abandon──▶ void

and a replacement is a new record that ``replaces`` the lost one and carries its balance
over. The desk (terminal/roles/issuance.py) talks to any ``CardRegistry``: the local
SQLite one in gateway/registry.py now, the gateway's over HTTP later. Records export
as JSON (``CardRecord.to_json``, docs/issuance.md) with a revision number that grows
with every change, so the gateway can fetch what changed since it last looked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from terminal.apdu.bcd import to_bcd
from terminal.apdu.errors import YikatongError

RECORD_SCHEMA = "yikatong.issuance/1"
# the purpose of a replacement's load of its lost card's balance: in the desk's journal and at
# the gateway, which takes it only from the desk that claimed the replacement, once
CARRY_PURPOSE = "carried balance"


class CardState(StrEnum):
    PENDING = "pending"  # number allocated, personalisation started, not yet activated
    ACTIVE = "active"
    LOST = "lost"  # reported lost (挂失); hotlisted once hotlist_version is set
    REPLACED = "replaced"  # lost, and its replacement holds its balance now
    VOID = "void"  # never activated; the number is not reused


class RegistryRefused(YikatongError):
    """The book refuses the change; ``reason`` says why in words an operator can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DuplicateCard(RegistryRefused):
    """The identity number already holds a live card of this kind (一人一卡)."""


class IssuanceInProgress(RegistryRefused):
    """A card for this person is being personalised on another chip."""


class UnknownCard(RegistryRefused):
    """No card with that number in the book."""


class ReplacementRefused(RegistryRefused):
    """The card cannot be replaced (yet): not lost, not hotlisted, waiting period, done."""


class NoNumbers(RegistryRefused):
    """The desk holds no unused card number of the issuer: it must lease a block first."""


class NotThisDesk(RegistryRefused):
    """A block or a push names another desk than the one this book belongs to."""


@dataclass(frozen=True, slots=True)
class NumberBlock:
    """Card numbers the card centre leased to one desk: sequences ``first..last`` of one
    issuer, used in order and never by anyone else."""

    block_id: int
    issuer_id: bytes
    desk_id: str
    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.last < SEQUENCE_LIMIT:
            raise ValueError(f"block {self.first}..{self.last} is not a sequence range")

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Applicant:
    """Who a card is for."""

    name: str
    id_number: str
    card_kind: int = 0x01  # 0x17 card kind: the "kind" of one-person-one-card
    id_type: int = 0x00  # 0x16 identity document type, 00 resident identity card
    card_type: int = 0x01  # 0x16 card type


SEQUENCE_LIMIT = 10**11  # the card number's last 11 digits


def card_number_for(issuer_id: bytes, sequence: int) -> str:
    """3100 ‖ issuer city (4 hex digits of BCD) ‖ 11-digit sequence: the 19 printed digits
    of a T-Union number (docs/issuance.md §3)."""
    if not 0 < sequence < SEQUENCE_LIMIT:
        raise RegistryRefused(f"card sequence {sequence} does not fit 11 digits")
    return f"3100{issuer_id[:2].hex()}{sequence:011d}"


def sequence_of(card_number: str, issuer_id: bytes) -> int | None:
    """The sequence of an issuer's card number, or None when the number is not one of the
    issuer's (the inverse of ``card_number_for``)."""
    prefix = card_number_for(issuer_id, 1)[:8]
    tail = card_number[8:]
    if len(card_number) != 19 or not card_number.startswith(prefix) or not tail.isdigit():
        return None
    return int(tail) or None


def serial_of(card_number: str) -> bytes:
    """The 8-byte application serial (0x15[12..19]) of a printed card number."""
    return to_bcd(card_number, 10)[2:]


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class CardRecord:
    """One card in the book. ``balance_fen`` is the last known balance (see the rule in
    docs/issuance.md); ``carry_fen`` what a replacement must load from its lost card."""

    card_number: str
    issuer_id: bytes
    chip_id: bytes | None
    holder: Applicant
    state: CardState
    created_at: datetime
    revision: int
    activated_at: datetime | None = None
    lost_at: datetime | None = None
    hotlist_version: int | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    carry_fen: int = 0
    carry_loaded_at: datetime | None = None
    balance_fen: int | None = None
    balance_as_of: datetime | None = None

    @property
    def serial(self) -> bytes:
        return serial_of(self.card_number)

    @property
    def carry_pending(self) -> bool:
        return self.replaces is not None and self.carry_loaded_at is None

    def to_json(self) -> dict[str, Any]:
        """The export form the gateway ingests (schema ``yikatong.issuance/1``)."""
        return {
            "schema": RECORD_SCHEMA,
            "revision": self.revision,
            "card_number": self.card_number,
            "serial": self.serial.hex().upper(),
            "issuer_id": self.issuer_id.hex().upper(),
            "chip_id": self.chip_id.hex().upper() if self.chip_id is not None else None,
            "holder": {
                "name": self.holder.name,
                "id_type": self.holder.id_type,
                "id_number": self.holder.id_number,
            },
            "card_kind": self.holder.card_kind,
            "card_type": self.holder.card_type,
            "state": self.state.value,
            "created_at": _when(self.created_at),
            "activated_at": _when(self.activated_at),
            "lost_at": _when(self.lost_at),
            "hotlist_version": self.hotlist_version,
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "carry_fen": self.carry_fen,
            "carry_loaded_at": _when(self.carry_loaded_at),
            "balance_fen": self.balance_fen,
            "balance_as_of": _when(self.balance_as_of),
        }


class CardRegistry(Protocol):
    """What the issuance desk needs from the card centre's book."""

    def begin_issue(self, issuer_id: bytes, applicant: Applicant, chip_id: bytes) -> CardRecord:
        """Allocate a number for a new card on ``chip_id`` (a pending record), or return the
        pending record this person already has on that chip. Refuses a second live card of
        the kind (DuplicateCard), a person whose card is lost (replace it instead), and a
        person with an issuance pending on another chip (IssuanceInProgress). The caller
        guarantees the chip is not an operational card: a pending record of someone else
        on the same chip is voided, since that chip is about to be erased."""
        ...

    def begin_replacement(self, old_card_number: str, chip_id: bytes) -> CardRecord:
        """A pending replacement of a lost, hotlisted card, carrying its last known balance
        (or the replacement already under way on this chip)."""
        ...

    def activate(self, card_number: str) -> CardRecord:
        """The card on the desk is operational and read back correctly."""
        ...

    def record_carry_loaded(self, card_number: str) -> CardRecord:
        """The carried balance is on the replacement; the lost card becomes replaced."""
        ...

    def abandon(self, card_number: str) -> CardRecord:
        """Void a pending record whose chip was destroyed or erased."""
        ...

    def report_lost(self, card_number: str) -> CardRecord: ...

    def mark_hotlisted(self, card_number: str, version: int) -> CardRecord:
        """The lost card is in the hotlist from ``version`` on."""
        ...

    def report_balance(self, card_number: str, balance_fen: int, as_of: datetime) -> CardRecord:
        """The balance after a settled transaction (clearing); older reports are ignored."""
        ...

    def get(self, card_number: str) -> CardRecord:
        """The record, or UnknownCard."""
        ...

    def by_serial(self, serial: bytes) -> CardRecord | None: ...

    def by_id_number(self, id_number: str) -> list[CardRecord]: ...

    def export(self, since_revision: int = 0) -> list[dict[str, Any]]:
        """Every record changed after ``since_revision``, oldest change first, as JSON."""
        ...

    @property
    def desk_id(self) -> str | None:
        """The desk this book belongs to (set by its first leased block), or None."""
        ...

    def hold(self, block: NumberBlock) -> None:
        """Keep a block the card centre leased to this desk (again: nothing changes);
        NotThisDesk for a block of another desk."""
        ...

    def numbers_left(self, issuer_id: bytes) -> int:
        """How many unused numbers of the issuer this desk holds."""
        ...


class CardCentre(Protocol):
    """The one numbering authority as a desk sees it (the gateway): blocks of card numbers
    and the person check against the central book before a card is written. Raises
    ``CentreRefused`` with the reason, or ``CentreUnreachable`` when the desk is offline."""

    def lease(self, issuer_id: bytes, desk_id: str, count: int) -> NumberBlock: ...

    def claim(self, record: CardRecord) -> None:
        """The number is this desk's and unused, and the holder has no other live card of
        the kind in the central book; refused otherwise."""
        ...


class CentreRefused(RegistryRefused):
    """The card centre refused; ``code`` is its machine code."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code


class CentreUnreachable(YikatongError):
    """The card centre did not answer: the desk is offline."""
