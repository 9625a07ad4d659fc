"""Personalisation of software EMV, resident and social security cards (TEST data only).

The test issuer (BIN 629999, test range) holds a key certified by the project's TEST CA
(A000000333/E0) and TEST issuer master keys derived from a public label; card keys are
derived from them by EMV option A, ICC key certificates and signed static data are
computed at issuance from the card's own records, so ODA verifies end to end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from simulators.emv_card import (
    AFL,
    AIP,
    CDOL1,
    CDOL2,
    DDOL,
    EmvApplication,
    EmvCardState,
)
from simulators.emv_pki import (
    IccCertificateData,
    IssuerCertificateData,
    RsaKey,
    certify_icc,
    certify_issuer,
    sign_static_data,
)
from simulators.emv_test_keys import TEST_CA_KEY, TEST_ICC_KEYS, TEST_ISSUER_KEY
from simulators.multiapp_card import EPurseApplication, SoftIcc
from simulators.profiles import demo_card
from simulators.ssse_card import SsseApplication, SsseState
from terminal.apdu import tlv
from terminal.apdu.bcd import encode_date
from terminal.crypto.emv import icc_master_key
from terminal.emv.ca_keys import TEST_CA_INDEX
from terminal.emv.config import AID_UNIONPAY_DEBIT
from terminal.emv.processing import parse_afl
from terminal.emv.selection import CONTACT, CONTACTLESS
from terminal.emv.tags import Tag
from terminal.ssse.records import BASIC_INFO_RECORDS, HOLDER_INFO_RECORDS, encode_record

TEST_BIN = "629999"
CVM_LIST = bytes.fromhex("000000000000000042031E031F00")
DAC = bytes.fromhex("DAC1")


def _test_key(label: str) -> bytes:
    text = f"yikatong EMV TEST issuer master key - not for production - {label}"
    return hashlib.sha256(text.encode()).digest()[:16]


@dataclass(frozen=True)
class IssuerPki:
    """The software issuer: its RSA key and certificate, and its master keys."""

    ca_key: RsaKey
    ca_index: int
    key: RsaKey
    issuer_id: bytes
    certificate: IssuerCertificateData
    imk_ac: bytes
    imk_mac: bytes
    imk_enc: bytes

    def card_keys(self, pan: str, psn: str) -> dict[str, str]:
        return {
            name: icc_master_key(imk, pan, psn).hex().upper()
            for name, imk in (("ac", self.imk_ac), ("mac", self.imk_mac), ("enc", self.imk_enc))
        }


def make_issuer(
    *,
    expiry: bytes = bytes.fromhex("1235"),
    serial: bytes = bytes.fromhex("000001"),
    issuer_id: str = TEST_BIN,
) -> IssuerPki:
    """A test issuer with a fresh certificate (tests vary expiry and serial)."""
    iid = bytes.fromhex(issuer_id.ljust(8, "F"))
    cert = certify_issuer(
        TEST_CA_KEY, TEST_CA_INDEX, TEST_ISSUER_KEY, iid, expiry=expiry, serial=serial
    )
    return IssuerPki(
        TEST_CA_KEY,
        TEST_CA_INDEX,
        TEST_ISSUER_KEY,
        iid,
        cert,
        _test_key("AC"),
        _test_key("MAC"),
        _test_key("ENC"),
    )


@lru_cache(maxsize=1)
def default_issuer() -> IssuerPki:
    return make_issuer()


def luhn_complete(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return digits + str((10 - total % 10) % 10)


def demo_pan(number: int) -> str:
    return luhn_complete(f"{TEST_BIN}{number:09d}")


@dataclass(frozen=True)
class EmvProfile:
    """What an issuer writes into a PBOC debit + EC application (money in fen)."""

    pan: str = field(default_factory=lambda: demo_pan(1))
    psn: str = "01"
    expiry: date = date(2035, 12, 31)
    effective: date = date(2025, 1, 1)
    cardholder_name: str = "ZHANG/SAN"
    id_number: str = "110101199003070011"
    aid: bytes = AID_UNIONPAY_DEBIT
    label: str = "PBOC DEBIT"
    preferred_name: str = "UnionPay Debit"
    ec_balance: int = 10_000
    ec_balance_limit: int = 100_000
    ec_single_limit: int = 50_000
    ec_reset_threshold: int = 1_000
    currency: str = "0156"
    fdda_format: int = 0x05
    icc_key: int = 0
    icc_cert_expiry: bytes = bytes.fromhex("1235")
    priority: int = 1


def _yymmdd(d: date) -> bytes:
    return encode_date(d)[1:]


def _pan_bytes(pan: str) -> bytes:
    return bytes.fromhex(pan if len(pan) % 2 == 0 else pan + "F")


def _track2(p: EmvProfile) -> bytes:
    text = f"{p.pan}D{p.expiry:%y%m}2201000000000"
    return bytes.fromhex(text + ("F" if len(text) % 2 else ""))


def application_records(
    p: EmvProfile, issuer: IssuerPki, icc: RsaKey
) -> tuple[dict[str, str], bytes]:
    """The personalised records (certificates included) and the static data they sign."""
    rec1 = tlv.build(
        Tag.RECORD_TEMPLATE,
        [
            tlv.build(Tag.TRACK2, _track2(p)),
            tlv.build(Tag.CARDHOLDER_NAME, p.cardholder_name.encode("gbk")),
            tlv.build(Tag.CARDHOLDER_ID_NUMBER, p.id_number.encode("ascii")),
            tlv.build(Tag.CARDHOLDER_ID_TYPE, b"\x00"),
        ],
    )
    oda = tlv.build(
        Tag.RECORD_TEMPLATE,
        [
            tlv.build(Tag.PAN, _pan_bytes(p.pan)),
            tlv.build(Tag.EXPIRY_DATE, _yymmdd(p.expiry)),
            tlv.build(Tag.EFFECTIVE_DATE, _yymmdd(p.effective)),
            tlv.build(Tag.PAN_SEQUENCE, bytes.fromhex(p.psn)),
            tlv.build(Tag.ISSUER_COUNTRY, bytes.fromhex("0156")),
            tlv.build(Tag.USAGE_CONTROL, bytes.fromhex("FF00")),
            tlv.build(Tag.CDOL1, CDOL1),
            tlv.build(Tag.CDOL2, CDOL2),
            tlv.build(Tag.CVM_LIST, CVM_LIST),
            tlv.build(Tag.IAC_DEFAULT, bytes.fromhex("D84004A800")),
            tlv.build(Tag.IAC_DENIAL, bytes.fromhex("0010000000")),
            tlv.build(Tag.IAC_ONLINE, bytes.fromhex("D84004F800")),
            tlv.build(Tag.DDOL, DDOL),
            tlv.build(Tag.SDA_TAG_LIST, bytes((Tag.AIP,))),
        ],
    )
    static = oda.value + AIP
    cert: IccCertificateData = certify_icc(
        issuer.key, icc, _pan_bytes(p.pan), static, expiry=p.icc_cert_expiry
    )
    ic = issuer.certificate
    keys_record = tlv.build(
        Tag.RECORD_TEMPLATE,
        [
            tlv.build(Tag.CA_KEY_INDEX, bytes((ic.ca_index,))),
            tlv.build(Tag.ISSUER_PK_CERT, ic.certificate),
            tlv.build(Tag.ISSUER_PK_EXPONENT, ic.exponent),
            tlv.build(Tag.ISSUER_PK_REMAINDER, ic.remainder),
        ],
    )
    ssad = tlv.build(
        Tag.RECORD_TEMPLATE, [tlv.build(Tag.SSAD, sign_static_data(issuer.key, static, DAC))]
    )
    icc_record = tlv.build(
        Tag.RECORD_TEMPLATE,
        [
            tlv.build(Tag.ICC_PK_CERT, cert.certificate),
            tlv.build(Tag.ICC_PK_EXPONENT, cert.exponent),
            tlv.build(Tag.ICC_PK_REMAINDER, cert.remainder),
        ],
    )
    records = {
        "1:1": rec1.encode(),
        "2:1": oda.encode(),
        "3:1": keys_record.encode(),
        "3:2": ssad.encode(),
        "3:3": icc_record.encode(),
    }
    listed = {f"{e.sfi}:{n}" for e in parse_afl(AFL) for n in e.numbers}
    if set(records) != listed:
        raise AssertionError("records and AFL disagree")
    return {k: v.hex().upper() for k, v in records.items()}, static


def issue_emv_application(p: EmvProfile, issuer: IssuerPki | None = None) -> EmvApplication:
    issuer = issuer or default_issuer()
    icc = TEST_ICC_KEYS[p.icc_key % len(TEST_ICC_KEYS)]
    records, _ = application_records(p, issuer, icc)
    state = EmvCardState(
        aid=p.aid.hex().upper(),
        label=p.label,
        preferred_name=p.preferred_name,
        pan=p.pan,
        psn=p.psn,
        records=records,
        icc_key=icc.to_json(),
        card_keys=issuer.card_keys(p.pan, p.psn),
        ec_balance=p.ec_balance,
        ec_balance_limit=p.ec_balance_limit,
        ec_single_limit=p.ec_single_limit,
        ec_reset_threshold=p.ec_reset_threshold,
        currency=p.currency,
        expiry=f"{p.expiry:%y%m%d}",
        fdda_format=p.fdda_format,
        directory_priority=p.priority,
    )
    return EmvApplication(state)


def emv_card(
    number: int = 1,
    *,
    interface: str = CONTACTLESS,
    issuer: IssuerPki | None = None,
    path: str | None = None,
    **overrides: object,
) -> SoftIcc:
    """A software PBOC debit card with Electronic Cash."""
    profile = EmvProfile(pan=demo_pan(number), icc_key=number - 1, **overrides)  # type: ignore[arg-type]
    card = SoftIcc([issue_emv_application(profile, issuer)], kind="emv", interface=interface)
    if path is not None:
        card.save(path)
    return card


def resident_card(
    number: int = 1,
    *,
    ec_balance: int = 10_000,
    ep_balance: int = 5_000,
    interface: str = CONTACTLESS,
    ep_listed: bool = True,
    path: str | None = None,
) -> SoftIcc:
    """The resident card: PBOC debit + EC, and the T-Union EP (a SoftEPurseCard)."""
    emv = issue_emv_application(
        EmvProfile(pan=demo_pan(100 + number), icc_key=number, ec_balance=ec_balance)
    )
    ep = EPurseApplication(demo_card(number, balance=ep_balance), listed=ep_listed)
    card = SoftIcc([emv, ep], kind="resident", interface=interface)
    if path is not None:
        card.save(path)
    return card


@dataclass(frozen=True)
class SsseProfile:
    card_number: str = "A12345678"
    region: str = "310100"
    name: str = "张三"
    social_security_number: str = "310101199003070011"
    sex: bytes = b"1"
    nation: bytes = b"\x01"
    birthplace: str = "310101"
    birth_date: date = date(1990, 3, 7)
    issue_date: date = date(2025, 1, 1)
    expiry_date: date = date(2035, 1, 1)
    spec_version: str = "3.00"
    card_type: bytes = b"3"
    holder_pin_required: bool = False
    pin: str = "123456"


def issue_ssse_application(p: SsseProfile) -> SsseApplication:
    identifier = bytes.fromhex(p.region + "00D156000005") + bytes.fromhex("99110145")
    basic_values = [
        identifier[:16].ljust(16, b"\xff"),
        p.card_type,
        p.spec_version.encode("ascii"),
        bytes.fromhex("310100000000000000000001"),
        encode_date(p.issue_date),
        encode_date(p.expiry_date),
        p.card_number.encode("ascii"),
    ]
    holder_values = [
        p.social_security_number.encode("ascii"),
        p.name.encode("gbk"),
        p.sex,
        p.nation,
        bytes.fromhex(p.birthplace),
        encode_date(p.birth_date),
    ]
    files = {
        "EF05": [
            encode_record(s, v).hex().upper()
            for s, v in zip(BASIC_INFO_RECORDS, basic_values, strict=True)
        ],
        "EF06": [
            encode_record(s, v).hex().upper()
            for s, v in zip(HOLDER_INFO_RECORDS, holder_values, strict=True)
        ],
    }
    return SsseApplication(SsseState(files, pin=p.pin, holder_pin_required=p.holder_pin_required))


def ssse_card(
    number: int = 1,
    *,
    interface: str = CONTACT,
    ssse: SsseProfile | None = None,
    path: str | None = None,
) -> SoftIcc:
    """The social security card: the SSSE application plus its PBOC bank application."""
    bank = issue_emv_application(
        EmvProfile(
            pan=demo_pan(200 + number),
            icc_key=number + 1,
            cardholder_name="ZHANG/SAN",
            ec_balance=2_000,
        )
    )
    card = SoftIcc(
        [issue_ssse_application(ssse or SsseProfile()), bank], kind="ssse", interface=interface
    )
    if path is not None:
        card.save(path)
    return card
