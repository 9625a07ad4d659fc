"""Personalising a blank card into a T-Union e-purse, sans-I/O (docs/issuance.md).

``probe`` tells a blank card, a half-personalised one and an operational one apart.
``personalise`` authenticates with the card's transport key (the host computes the
cryptogram), optionally erases an interrupted attempt, creates the EP application and
its files, relays each card key as a cryptogram the host MACed under the transport key
(the desk never sees a key), sets the PIN, writes 0x15/0x16/0x17 and activates.
``verify`` reads the activated card back through the ordinary e-purse flows.

Every step before activation can be repeated from scratch (erase, then redo), and the
activation is one atomic card command, so a card pulled away at any point is either
still incomplete (and says so) or fully operational.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from terminal.apdu import iso, tlv
from terminal.apdu.bcd import encode_pin, to_bcd
from terminal.apdu.errors import TlvError, WrongPin, YikatongError
from terminal.apdu.flow import Flow, card
from terminal.cos import commands as cc
from terminal.cos.layouts import (
    BinaryHeader,
    DfHeader,
    FileType,
    KeyFileHeader,
    KeyType,
    LifeCycle,
    PinRecord,
    PurseHeader,
    RecordHeader,
)
from terminal.epurse import commands as c
from terminal.epurse import flows
from terminal.epurse.layouts import (
    CAMPUS_KEY_INDEX,
    SFI_CAMPUS_IDENTITY,
    CardholderInfo,
    ManagementInfo,
    PublicInfo,
)
from terminal.epurse.model import CardInfo, CardSnapshot
from terminal.layout import build

TAG_FCP = 0x62
TAG_LIFE_CYCLE = 0x8A
TAG_CHIP_ID = 0x85
NAME_BYTES = 20
ID_NUMBER_BYTES = 32
COUNTRY_CHINA = bytes.fromhex("00000156")

# Card keys and the CardKeys field each comes from.
KEY_NAMES: dict[KeyType, str] = {
    KeyType.PURCHASE: "purchase",
    KeyType.LOAD: "load",
    KeyType.TAC: "tac",
    KeyType.MAINTENANCE: "maintenance",
}

# The JT/T 978 EP file set (reference §1, §5): FID -> CREATE FILE header.
EP_FILES: tuple[tuple[int, bytes], ...] = (
    (cc.FID_KEY_FILE, build(KeyFileHeader)),
    (c.SFI_PUBLIC_INFO, build(BinaryHeader, size=30)),
    (c.SFI_CARDHOLDER, build(BinaryHeader, size=55)),
    (c.SFI_MANAGEMENT, build(BinaryHeader, size=60)),
    (c.SFI_TXN_LOG, build(RecordHeader, file_type=FileType.CYCLIC, records=10, record_length=23)),
    (
        c.SFI_CAPP_VARIABLE,
        build(RecordHeader, file_type=FileType.LINEAR_FIXED, records=18, record_length=128),
    ),
    (c.SFI_TRIP, build(RecordHeader, file_type=FileType.CYCLIC, records=30, record_length=48)),
)


class PersoError(YikatongError):
    """Personalisation cannot go on: bad holder data, a refused key, an unexpected card."""


class PersoDeclined(PersoError):
    """The host security module refused to prepare a key (unknown issuer, no transport key)."""


@dataclass(frozen=True, slots=True)
class KeyLoadRequest:
    """What the desk asks the host for one WRITE KEY: no key, only whose and where."""

    issuer_id: bytes
    card_serial: bytes  # the 8-byte application serial (0x15[12..19]) the key is for
    chip_id: bytes  # selects the transport key the cryptogram and MAC are made under
    key_type: KeyType
    key_index: int
    challenge: bytes  # from GET CHALLENGE, the MAC's initial value


class PersoHost(Protocol):
    """The key side of personalisation: the HSM (gateway/hsm.py) implements it."""

    def transport_cryptogram(self, chip_id: bytes, challenge: bytes) -> bytes:
        """EXTERNAL AUTHENTICATE cryptogram: the challenge enciphered with the transport key."""
        ...

    def protected_key(self, request: KeyLoadRequest) -> bytes:
        """WRITE KEY data: the key record enciphered and MACed under the transport key."""
        ...


@dataclass(frozen=True, slots=True)
class CardProbe:
    """What the card in the reader is: blank, half-personalised, or operational."""

    life_cycle: LifeCycle
    chip_id: bytes | None = None
    info: CardInfo | None = None  # for an operational card: its 0x15

    @property
    def incomplete(self) -> bool:
        return self.life_cycle == LifeCycle.INITIALISATION

    @property
    def operational(self) -> bool:
        return self.life_cycle == LifeCycle.ACTIVATED


@dataclass(frozen=True)
class PersoPlan:
    """Everything written onto one card. ``card_number`` is the printed (19-digit) number."""

    issuer_id: bytes
    card_number: str
    holder_name: str
    id_number: str
    id_type: int = 0x00  # 00 resident identity card
    card_type: int = 0x01
    card_kind: int = 0x01
    staff_flag: int = 0x00
    start_date: date = date(2024, 1, 1)
    expiry_date: date = date(2034, 12, 31)
    province_code: bytes = bytes.fromhex("3100")
    city_code: bytes = bytes.fromhex("2900")
    interop_type: bytes = bytes.fromhex("0001")
    app_version: int = 0x01
    issuer_fci: bytes = bytes(2)
    pin: str = "123456"
    key_index: int = 1
    load_key_index: int = 1
    max_balance: int = 100_000
    overdraft_limit: int = 0
    campus_identity: bytes = b""  # the campus identity file (docs/campus.md); empty: none

    def __post_init__(self) -> None:
        if len(self.issuer_id) != 8:
            raise PersoError("issuer id must be 8 bytes")
        if not self.card_number.isdigit() or len(self.card_number) not in (19, 20):
            raise PersoError("card number must be 19 (printed) or 20 digits")
        try:
            name = self.holder_name.encode("gbk")
        except UnicodeEncodeError:
            raise PersoError(f"name {self.holder_name!r} cannot be written in GBK") from None
        if not name or len(name) > NAME_BYTES:
            raise PersoError(f"name must be 1..{NAME_BYTES} bytes in GBK (10 Chinese characters)")
        if not self.id_number.isascii() or not 0 < len(self.id_number) <= ID_NUMBER_BYTES:
            raise PersoError(f"ID number must be 1..{ID_NUMBER_BYTES} ASCII characters")
        if self.expiry_date < self.start_date:
            raise PersoError("expiry date is before the start date")
        if not 0 < self.max_balance <= 0xFFFFFFFF or not 0 <= self.overdraft_limit <= 0xFFFFFF:
            raise PersoError("purse limits out of range")
        try:
            encode_pin(self.pin)
        except ValueError as exc:
            raise PersoError(str(exc)) from None

    @property
    def app_serial(self) -> bytes:
        return to_bcd(self.card_number, 10)

    @property
    def serial(self) -> bytes:
        """The 8-byte application serial: the card-level key diversification factor."""
        return self.app_serial[2:]

    def index_of(self, key_type: KeyType) -> int:
        """Key index of each card key: purchase and load as configured, the others 1."""
        return {KeyType.PURCHASE: self.key_index, KeyType.LOAD: self.load_key_index}.get(
            key_type, 1
        )

    def public_info(self) -> bytes:
        return build(
            PublicInfo,
            issuer_id=self.issuer_id,
            app_type=0x02,
            app_version=self.app_version,
            app_serial=self.app_serial,
            start_date=self.start_date,
            expiry_date=self.expiry_date,
            issuer_fci=self.issuer_fci,
        )

    def holder(self) -> bytes:
        return build(
            CardholderInfo,
            card_type=self.card_type,
            staff_flag=self.staff_flag,
            name=self.holder_name.encode("gbk").ljust(NAME_BYTES, b"\x00"),
            id_number=self.id_number.encode("ascii").ljust(ID_NUMBER_BYTES, b"\x00"),
            id_type=self.id_type,
        )

    def management(self) -> bytes:
        return build(
            ManagementInfo,
            country_code=COUNTRY_CHINA,
            province_code=self.province_code,
            city_code=self.city_code,
            interop_type=self.interop_type,
            card_kind=self.card_kind,
            reserved=bytes(49),
        )

    def purse_header(self) -> bytes:
        return build(
            PurseHeader,
            purse=c.PURSE_EP,
            max_balance=self.max_balance,
            overdraft_limit=self.overdraft_limit,
            log_sfi=c.SFI_TXN_LOG,
        )


def probe() -> Flow[CardProbe]:
    """SELECT MF: a card that reports a life-cycle byte below ACTIVATED is not operational
    yet; any other card must answer SELECT of the EP application."""
    r = yield card(cc.select_mf(), check=False)
    chip_id = None
    if r.ok and r.data:
        try:
            fcp = tlv.parse_one(r.data, TAG_FCP)
        except TlvError:
            fcp = None
        lcs = fcp.find(TAG_LIFE_CYCLE) if fcp is not None else None
        chip = fcp.find(TAG_CHIP_ID) if fcp is not None else None
        chip_id = chip.value if chip is not None else None
        if lcs is not None and len(lcs.value) == 1 and lcs.value[0] != LifeCycle.ACTIVATED:
            try:
                state = LifeCycle(lcs.value[0])
            except ValueError:
                raise PersoError(f"card reports life cycle {lcs.value.hex()}") from None
            if chip_id is None or len(chip_id) != 8:
                raise PersoError("blank card does not report its 8-byte chip serial")
            return CardProbe(state, chip_id)
    info = yield from flows.select()
    return CardProbe(LifeCycle.ACTIVATED, chip_id, info)


def authenticate(host: PersoHost, chip_id: bytes) -> Flow[None]:
    """GET CHALLENGE, the host's cryptogram, EXTERNAL AUTHENTICATE with the transport key."""
    r = yield card(iso.get_challenge(8))
    cryptogram = host.transport_cryptogram(chip_id, r.data)
    try:
        yield card(cc.external_authenticate(cryptogram))
    except WrongPin as exc:
        raise PersoError(
            f"the card refused the transport key ({exc.tries_left} tries left): "
            "wrong card vendor key set?"
        ) from None


def personalise(
    plan: PersoPlan, host: PersoHost, chip_id: bytes, *, erase_first: bool = False
) -> Flow[None]:
    """The whole personalisation of a blank card, ending with its activation."""
    yield card(cc.select_mf())
    yield from authenticate(host, chip_id)
    if erase_first:
        yield card(cc.erase_df())
    yield card(cc.create_file(c.FID_EP, build(DfHeader, name=c.AID_TUNION_EP)))
    yield card(iso.select_fid(c.FID_EP))
    for fid, header in EP_FILES:
        yield card(cc.create_file(fid, header))
    yield card(cc.create_file(cc.FID_EP_PURSE, plan.purse_header()))
    for key_type in KEY_NAMES:
        index = plan.index_of(key_type)
        r = yield card(iso.get_challenge(4))
        request = KeyLoadRequest(plan.issuer_id, plan.serial, chip_id, key_type, index, r.data)
        yield card(cc.write_key(index, host.protected_key(request)))
    if plan.campus_identity:
        yield from _campus(plan, host, chip_id)
    yield card(cc.set_pin(build(PinRecord, pin=encode_pin(plan.pin))))
    yield card(cc.update_binary(c.SFI_PUBLIC_INFO, plan.public_info()))
    yield card(cc.update_binary(c.SFI_CARDHOLDER, plan.holder()))
    yield card(cc.update_binary(c.SFI_MANAGEMENT, plan.management()))
    yield card(cc.activate())


def _campus(plan: PersoPlan, host: PersoHost, chip_id: bytes) -> Flow[None]:
    """The campus application: its identity file and its internal authentication key."""
    size = len(plan.campus_identity)
    yield card(cc.create_file(SFI_CAMPUS_IDENTITY, build(BinaryHeader, size=size)))
    r = yield card(iso.get_challenge(4))
    request = KeyLoadRequest(
        plan.issuer_id, plan.serial, chip_id, KeyType.INTERNAL, CAMPUS_KEY_INDEX, r.data
    )
    yield card(cc.write_key(CAMPUS_KEY_INDEX, host.protected_key(request)))
    yield card(cc.update_binary(SFI_CAMPUS_IDENTITY, plan.campus_identity))


def verify(plan: PersoPlan) -> Flow[CardSnapshot]:
    """Read the operational card back and check it carries exactly what the plan wrote."""
    snap = yield from flows.read_card()
    holder, management = snap.holder, snap.management
    problems = []
    if snap.info.card_number != plan.card_number.zfill(20)[1:]:
        problems.append(f"card number {snap.info.card_number}")
    if snap.info.issuer_id != plan.issuer_id:
        problems.append(f"issuer {snap.info.issuer_hex}")
    if holder is None or (holder.name, holder.id_number, holder.card_type) != (
        plan.holder_name,
        plan.id_number,
        plan.card_type,
    ):
        problems.append("cardholder file 0x16")
    if management is None or management.card_kind != plan.card_kind:
        problems.append("management file 0x17")
    if problems:
        raise PersoError("card read back differs from what was written: " + ", ".join(problems))
    return snap
