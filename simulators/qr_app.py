"""A software ride-code app: a root CA, issuing platforms, user accounts, codes on demand.

It builds codes with the terminal's own layout (``terminal.qr.code``) and signs them
with SM2 as the real parties do: the root CA certifies each issuer's key, the issuer
signs each account's data, the user's key signs the code with its generation time. Keys
are derived from names (SM3 of a label), so the same names give the same keys in every
run; every field can be overridden to build the codes the hostile tests need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from terminal.apdu.bcd import to_bcd
from terminal.qr import code as layout
from terminal.qr import sm2
from terminal.qr.checks import IssuerRule, RootKey, unix


def derive_key(label: str) -> bytes:
    """A private key from a label (reproducible test keys; never a real key's way)."""
    d = int.from_bytes(sm2.sm3(b"yikatong qr test key " + label.encode()), "big") % (sm2.N - 2)
    return (d + 1).to_bytes(32, "big")


@dataclass
class RootCA:
    index: int = 0x01
    expiry: date | None = None
    private_key: bytes = b""

    def __post_init__(self) -> None:
        self.private_key = self.private_key or derive_key(f"root {self.index}")

    @property
    def root_key(self) -> RootKey:
        return RootKey(
            self.index, sm2.public_key(self.private_key, compressed=False)[1:], self.expiry
        )

    def certify(
        self,
        public_key: bytes,
        issuer_id: str,
        expiry: str = "1299",
        serial: bytes = b"\x00\x00\x01",
        *,
        index: int | None = None,
    ) -> bytes:
        """An issuer certificate (117 bytes) for ``public_key``, expiring after MMYY."""
        fields = {
            "header": layout.CERT_HEADER,
            "service_id": layout.SERVICE_ID,
            "root_index": self.index if index is None else index,
            "format": layout.CERT_FORMAT,
            "issuer_id": to_bcd(issuer_id, 4),
            "expiry": to_bcd(expiry, 2),
            "serial": serial,
            "signature_algorithm": layout.ALG_SM2,
            "encryption_algorithm": layout.ALG_SM2,
            "parameter_id": 0x00,
            "key_length": layout.KEY_LENGTH,
            "public_key": public_key,
            "root_signature": bytes(64),
        }
        unsigned = layout.build_certificate(**fields)
        signature = sm2.sign(self.private_key, layout.certificate_signed(unsigned))
        return layout.build_certificate(**{**fields, "root_signature": signature})


@dataclass
class Account:
    """A rider's account at an issuing platform, with the key pair the phone holds."""

    user_account: bytes  # 10 bytes
    payment_account: str = "6222000011112222"
    account_type: int = 0x01
    ride_limit: int = 5_000  # fen
    auth_expiry: int = 4_102_444_800  # 2100-01-01
    validity: int = 60
    custom: bytes = b""
    private_key: bytes = b""

    def __post_init__(self) -> None:
        self.private_key = self.private_key or derive_key(f"user {self.user_account.hex()}")


@dataclass
class Issuer:
    """An issuing platform: its codes, its key certified by the root CA, its accounts."""

    root: RootCA
    issuer_code: str = "10000001"  # hex, assigned by clearing
    platform_code: str = "20000001"
    issuer_id: str = "31000001"  # BCD in the certificate
    cert_expiry: str = "1299"  # MMYY
    signer_id: bytes = sm2.DEFAULT_SIGNER_ID
    private_key: bytes = b""
    certificate: bytes = b""
    accounts: dict[str, Account] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.private_key = self.private_key or derive_key(f"issuer {self.issuer_code}")
        self.certificate = self.certificate or self.root.certify(
            sm2.public_key(self.private_key), self.issuer_id, self.cert_expiry
        )

    @property
    def rule(self) -> IssuerRule:
        """The whitelist entry a terminal accepting this issuer holds."""
        return IssuerRule(self.issuer_code, self.platform_code, "qr", self.signer_id)

    def open_account(self, number: int, **fields: Any) -> Account:
        account = Account(number.to_bytes(10, "big"), **fields)
        self.accounts[account.user_account.hex().upper()] = account
        return account

    def authorise(self, account: Account, **override: Any) -> bytes:
        """What the platform sends the phone: the account data signed by the issuer (the
        generation time and user signature still zero). ``override`` replaces fields."""
        values = {
            "version": 0x80,
            "payment_account": account.payment_account.encode("ascii"),
            "user_account": account.user_account,
            "issuer_code": bytes.fromhex(self.issuer_code),
            "platform_code": bytes.fromhex(self.platform_code),
            "account_type": account.account_type,
            "ride_limit": account.ride_limit,
            "user_public_key": sm2.public_key(account.private_key),
            "auth_expiry": account.auth_expiry,
            "validity": account.validity,
        }
        values.update(override)
        unsigned = layout.build_unsigned(self.certificate, account.custom, **values)
        signature = sm2.sign(self.private_key, layout.issuer_signed_part(unsigned), self.signer_id)
        return layout.with_issuer_signature(unsigned, signature)


def phone_code(
    authorised: bytes,
    account: Account,
    now: datetime | int,
    signer_id: bytes = sm2.DEFAULT_SIGNER_ID,
) -> bytes:
    """What the phone shows: the authorised data, the generation time, the user's signature."""
    generated = now if isinstance(now, int) else unix(now)
    body = layout.with_generation(authorised, generated)
    signature = sm2.sign(account.private_key, layout.user_signed_part(body), signer_id)
    return layout.with_user_signature(body, signature)


@dataclass
class RideCodeApp:
    """The whole app: one root CA, its issuers, codes on demand."""

    root: RootCA = field(default_factory=RootCA)
    issuers: dict[str, Issuer] = field(default_factory=dict)

    def issuer(self, issuer_code: str = "10000001", **fields: Any) -> Issuer:
        if issuer_code not in self.issuers:
            self.issuers[issuer_code] = Issuer(self.root, issuer_code, **fields)
        return self.issuers[issuer_code]

    def code(
        self, now: datetime | int, *, issuer: str = "10000001", account: int = 1, **override: Any
    ) -> bytes:
        """A fresh code for account ``account`` of ``issuer`` (both made when new)."""
        iss = self.issuer(issuer)
        key = account.to_bytes(10, "big").hex().upper()
        acct = iss.accounts.get(key) or iss.open_account(account)
        return phone_code(iss.authorise(acct, **override), acct, now, iss.signer_id)


def qr_image(raw: bytes, path: str, *, scale: int = 4) -> None:
    """The code as a QR symbol (byte mode, level L, as phones show it) in a PNG file."""
    import segno

    segno.make_qr(raw, error="l", mode="byte", boost_error=False).save(path, scale=scale, border=4)
