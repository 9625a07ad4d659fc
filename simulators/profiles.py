"""Card and PSAM profiles, demo issuer key sets, and the factory that personalises software cards.

The demo master keys are derived from a public label: they are test keys, printed on no
receipt and used by no real issuer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from simulators.blank_card import SoftBlankCard
from simulators.epurse_card import EPurseState, SoftEPurseCard
from simulators.psam import PsamState, SoftPsam
from terminal.apdu.bcd import to_bcd
from terminal.crypto.keys import Algorithm
from terminal.crypto.keyset import IssuerKeyset
from terminal.crypto.secure import transport_key
from terminal.epurse.layouts import CardholderInfo, ManagementInfo, PublicInfo
from terminal.layout import build
from terminal.sam.layouts import SamAppInfo

DEMO_ISSUERS = {
    # 8-byte issuer ids in the observed CCCCCCCC FFFFFFFF shape
    "shanghai": bytes.fromhex("02902900FFFFFFFF"),
    "beijing": bytes.fromhex("01001000FFFFFFFF"),
}


def _demo_key(label: str) -> bytes:
    return hashlib.sha256(f"yikatong demo key - not for production - {label}".encode()).digest()[
        :16
    ]


def demo_keyset(issuer_id: bytes, key_version: int = 1) -> IssuerKeyset:
    """Demo master keys: the purchase and maintenance masters are national (shared by every
    issuer, as a T-Union PSAM holds one), load and TAC masters belong to each issuer."""
    tag = issuer_id.hex()
    return IssuerKeyset(
        issuer_id=issuer_id,
        key_version=key_version,
        purchase=_demo_key(f"national purchase v{key_version}"),
        load=_demo_key(f"{tag} load v{key_version}"),
        tac=_demo_key(f"{tag} tac v{key_version}"),
        maintenance=_demo_key(f"national maintenance v{key_version}"),
    )


def demo_transport_master() -> bytes:
    """The demo card vendor's transport master key (blank cards' transport keys derive from it)."""
    return _demo_key("card vendor transport master")


def demo_chip_id(number: int) -> bytes:
    """A demo chip serial: vendor prefix 5946 ('YF') and a 6-byte sequence number."""
    return bytes.fromhex("5946") + number.to_bytes(6, "big")


def blank_card(
    chip_id: bytes, path: str | Path | None = None, *, master: bytes | None = None
) -> SoftBlankCard:
    """A blank card as the vendor ships it, keyed from the (demo) transport master."""
    key = transport_key(master if master is not None else demo_transport_master(), chip_id)
    return SoftBlankCard.manufacture(chip_id, key, path)


@dataclass(frozen=True)
class CardProfile:
    """What an issuance desk writes onto a new card."""

    card_number: str  # 19 or 20 digits; stored as 10 BCD bytes
    issuer_id: bytes = DEMO_ISSUERS["shanghai"]
    balance: int = 0
    card_type: int = 0x01  # 0x16 card type identifier (e.g. 01 ordinary)
    card_kind: int = 0x01  # 0x17 card kind (concession class)
    start_date: date = date(2024, 1, 1)
    expiry_date: date = date(2034, 12, 31)
    holder_name: str = ""
    id_number: str = ""
    id_type: int = 0x00
    city_code: bytes = bytes.fromhex("2900")
    province_code: bytes = bytes.fromhex("3100")
    interop_type: bytes = bytes.fromhex("0001")
    overdraft_limit: int = 0
    max_balance: int = 100_000
    pin: str = "123456"
    app_version: int = 0x01
    issuer_fci: bytes = bytes(2)
    key_index: int = 1

    @property
    def app_serial(self) -> bytes:
        return to_bcd(self.card_number, 10)


def public_info_bytes(p: CardProfile) -> bytes:
    return build(
        PublicInfo,
        issuer_id=p.issuer_id,
        app_type=0x02,
        app_version=p.app_version,
        app_serial=p.app_serial,
        start_date=p.start_date,
        expiry_date=p.expiry_date,
        issuer_fci=p.issuer_fci,
    )


def issue_card(
    profile: CardProfile, keyset: IssuerKeyset, path: str | None = None
) -> SoftEPurseCard:
    """Personalise a software card: files, diversified keys, balance, PIN."""
    if keyset.issuer_id != profile.issuer_id:
        raise ValueError("key set belongs to another issuer")
    public = public_info_bytes(profile)
    serial = public[12:20]
    keys = keyset.card_keys(serial)
    holder = build(
        CardholderInfo,
        card_type=profile.card_type,
        staff_flag=0,
        name=profile.holder_name.encode("gbk")[:20].ljust(20, b"\x00"),
        id_number=profile.id_number.encode("ascii")[:32].ljust(32, b"\x00"),
        id_type=profile.id_type,
    )
    management = build(
        ManagementInfo,
        country_code=bytes.fromhex("00000156"),
        province_code=profile.province_code,
        city_code=profile.city_code,
        interop_type=profile.interop_type,
        card_kind=profile.card_kind,
        reserved=bytes(49),
    )
    state = EPurseState(
        public_info=public.hex().upper(),
        holder=holder.hex().upper(),
        management=management.hex().upper(),
        keys={
            name: getattr(keys, name).hex().upper()
            for name in ("purchase", "load", "tac", "maintenance")
        },
        key_index=profile.key_index,
        key_version=keyset.key_version,
        algorithm=keyset.algorithm,
        balance=profile.balance,
        overdraft_limit=profile.overdraft_limit,
        max_balance=profile.max_balance,
        pin=profile.pin,
    )
    card = SoftEPurseCard(state, path)
    card.save()
    return card


@dataclass(frozen=True)
class PsamProfile:
    terminal_id: bytes  # 6 bytes BCD
    serial: bytes = bytes.fromhex("00000000000000000001")
    key_index: int = 1
    issuer_id: bytes = bytes.fromhex("0000000000000000")
    start_date: date = date(2024, 1, 1)
    end_date: date = date(2034, 12, 31)
    first_terminal_seq: int = 1


def issue_psam(
    profile: PsamProfile, keysets: list[IssuerKeyset], path: str | None = None
) -> SoftPsam:
    """A software PSAM holding the national purchase and maintenance masters per key version."""
    if len(profile.terminal_id) != 6:
        raise ValueError("terminal id must be 6 bytes")
    app_info = build(
        SamAppInfo,
        key_index=profile.key_index,
        issuer_id=profile.issuer_id,
        receiver_id=bytes(8),
        start_date=profile.start_date,
        end_date=profile.end_date,
    )
    masters: dict[str, dict[str, str]] = {}
    for ks in keysets:
        masters[str(ks.key_version)] = {
            "purchase": ks.purchase.hex().upper(),
            "maintenance": ks.maintenance.hex().upper(),
        }
    state = PsamState(
        serial=profile.serial.hex().upper(),
        terminal_id=profile.terminal_id.hex().upper(),
        app_info=app_info.hex().upper(),
        masters=masters,
        terminal_seq=profile.first_terminal_seq,
        algorithm=int(Algorithm.DES3),
    )
    psam = SoftPsam(state, path)
    psam.save()
    return psam


def demo_card_number(issuer_id: bytes, number: int) -> str:
    """The printed 19 digits, 3100 <issuer city> <number> (stored as 10 BCD bytes, a 0 nibble
    first)."""
    return f"3100{issuer_id[:2].hex()}{number:011d}"


def demo_card(
    number: int = 1, balance: int = 5_000, issuer: str = "shanghai", **overrides: object
) -> SoftEPurseCard:
    """A fresh demo T-Union card (in memory)."""
    issuer_id = DEMO_ISSUERS[issuer]
    profile = CardProfile(
        card_number=demo_card_number(issuer_id, number),
        issuer_id=issuer_id,
        balance=balance,
        **overrides,
    )  # type: ignore[arg-type]
    return issue_card(profile, demo_keyset(issuer_id))


def demo_psam(terminal_id: str = "310000000001", **overrides: object) -> SoftPsam:
    profile = PsamProfile(terminal_id=bytes.fromhex(terminal_id), **overrides)  # type: ignore[arg-type]
    return issue_psam(profile, [demo_keyset(DEMO_ISSUERS["shanghai"])])


__all__ = [
    "DEMO_ISSUERS",
    "CardProfile",
    "PsamProfile",
    "blank_card",
    "demo_card",
    "demo_chip_id",
    "demo_keyset",
    "demo_psam",
    "demo_transport_master",
    "issue_card",
    "issue_psam",
]
