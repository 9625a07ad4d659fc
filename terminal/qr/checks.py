"""A ride code's offline checks, in the order a validator runs them (docs/qr.md).

1. structure (``code.parse``); 2. the root key for the certificate's index, present and
not expired, and the certificate not expired; 3. the chain: root key → certificate →
issuer signature → user signature (SM2 with SM3 and the issuer's signer ID); 4. times:
authorisation, generation time against the clock (with a skew) and the validity (with a
maximum); 5. the issuer whitelist and the account type; 6. replay (the same code, or the
same account and generation time, seen before), debounce and the minimum interval per
account; 7. the per-ride limit against the fare. The first failure is raised as a
``QrRefused`` with its ``QrReason``; what varies by deployment is in ``QrPolicy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from terminal.money import format_fen
from terminal.qr import sm2
from terminal.qr.code import MIN_VERSION, QrMalformed, QrReason, QrRefused, RideCode, parse


@dataclass(frozen=True)
class RootKey:
    """A root CA public key (64 bytes X ‖ Y) by index, valid to the end of ``expiry``."""

    index: int
    public_key: bytes
    expiry: date | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index <= 0xFF or len(self.public_key) != 64:
            raise ValueError("a root key has an index 0..255 and 64 bytes X ‖ Y")


@dataclass(frozen=True)
class IssuerRule:
    """An issuer the operator accepts: its platform, the local ticket type its riders get,
    and the SM2 signer ID its signatures use (the default unless the issuer says)."""

    issuer_code: str  # 8 hex digits
    platform_code: str | None = None  # None: any platform
    ticket: str = "qr"
    signer_id: bytes = sm2.DEFAULT_SIGNER_ID


@dataclass(frozen=True)
class QrPolicy:
    """What the reference marks as varying by deployment, with the values seen in use."""

    min_version: int = MIN_VERSION
    future_skew: int = 20  # seconds a code may be generated ahead of the terminal clock
    max_validity: int = 1200  # seconds
    debounce: int = 2  # seconds: the same account scanned again is a double scan
    min_interval: int = 0  # seconds between rides of one account (0: no minimum)
    account_types: frozenset[int] | None = None  # None: every type
    issuers: Mapping[str, IssuerRule] = field(default_factory=dict)  # by issuer code
    any_issuer: bool = False  # accept issuers not listed (ykt qr verify without a list)
    root_signer_id: bytes = sm2.DEFAULT_SIGNER_ID
    signer_id: bytes = sm2.DEFAULT_SIGNER_ID  # for issuers without an entry of their own


class RideHistory(Protocol):
    """What a terminal remembers of accepted codes (the journal, or memory in tests)."""

    def seen(self, code_hash: bytes, user_account: str, generated: int) -> bool:
        """This code, or this account's code of this generation time, was accepted."""
        ...

    def last_ride(self, user_account: str) -> int | None:
        """When (Unix seconds) this account's last accepted ride was, None if never."""
        ...


class MemoryHistory:
    """A RideHistory in memory (tests and one-off checks)."""

    def __init__(self) -> None:
        self.codes: set[bytes] = set()
        self.generations: set[tuple[str, int]] = set()
        self.rides: dict[str, int] = {}

    def seen(self, code_hash: bytes, user_account: str, generated: int) -> bool:
        return code_hash in self.codes or (user_account, generated) in self.generations

    def last_ride(self, user_account: str) -> int | None:
        return self.rides.get(user_account)

    def add(self, code: RideCode, when: int) -> None:
        self.codes.add(code_hash(code.raw))
        self.generations.add((code.user_account, code.generated))
        self.rides[code.user_account] = when


@dataclass(frozen=True)
class VerifiedCode:
    """A code that passed every check, the rule its issuer matched and the clock used."""

    code: RideCode
    issuer: IssuerRule
    checked_at: int  # Unix seconds
    code_hash: bytes


def code_hash(raw: bytes) -> bytes:
    """The SM3 digest of a code's bytes: how the journal and clearing name a code."""
    return sm2.sm3(raw)


def unix(now: datetime) -> int:
    """A terminal clock reading as Unix seconds (a time without zone is the host's local)."""
    return int(now.timestamp())


def _refuse(reason: QrReason, message: str) -> QrRefused:
    return QrRefused(reason, message)


def check_chain(
    code: RideCode, roots: Mapping[int, RootKey], policy: QrPolicy, today: date, signer_id: bytes
) -> None:
    """Root key by index (present, not expired), certificate expiry, the three signatures."""
    cert = code.certificate
    root = roots.get(cert.root_index)
    if root is None:
        raise _refuse(
            QrReason.UNKNOWN_ROOT_KEY,
            f"no root key {cert.root_index:02X} among the trusted root keys",
        )
    if root.expiry is not None and today > root.expiry:
        raise _refuse(QrReason.ROOT_KEY_EXPIRED, f"root key {root.index:02X} expired {root.expiry}")
    if today > cert.expiry:
        raise _refuse(
            QrReason.CERT_EXPIRED, f"issuer certificate {cert.serial} expired {cert.expiry}"
        )
    if not sm2.verify(
        b"\x04" + root.public_key, cert.signed, cert.root_signature, policy.root_signer_id
    ):
        raise _refuse(
            QrReason.CERT_SIGNATURE,
            f"issuer certificate {cert.serial} is not signed by root key {root.index:02X}",
        )
    if not sm2.verify(cert.public_key, code.issuer_signed, code.issuer_signature, signer_id):
        raise _refuse(QrReason.ISSUER_SIGNATURE, "the account data is not signed by the issuer")
    if not sm2.verify(code.user_public_key, code.user_signed, code.user_signature, signer_id):
        raise _refuse(QrReason.USER_SIGNATURE, "the code is not signed by the user's key")


def check_times(code: RideCode, now: int, policy: QrPolicy) -> None:
    """Authorisation expiry, the validity's maximum, generation time against the clock."""
    if now > code.auth_expiry:
        raise _refuse(
            QrReason.AUTH_EXPIRED,
            f"account authorisation expired {_utc(code.auth_expiry)} (now {_utc(now)})",
        )
    if code.validity > policy.max_validity:
        raise _refuse(
            QrReason.VALIDITY_TOO_LONG,
            f"validity {code.validity} s is above the {policy.max_validity} s allowed",
        )
    if code.generated > now + policy.future_skew:
        raise _refuse(
            QrReason.FUTURE,
            f"generated {code.generated - now} s in the future (clock skew allowed"
            f" {policy.future_skew} s)",
        )
    if now > code.generated + code.validity:
        raise _refuse(
            QrReason.CODE_EXPIRED,
            f"code generated {now - code.generated} s ago, valid {code.validity} s:"
            " refresh the code",
        )


def check_policy(code: RideCode, policy: QrPolicy) -> IssuerRule:
    """The issuer's whitelist entry (its platform must match) and the account type."""
    rule = policy.issuers.get(code.issuer_code)
    if rule is None or rule.platform_code not in (None, code.platform_code):
        if not policy.any_issuer:
            raise _refuse(
                QrReason.UNKNOWN_ISSUER,
                f"issuer {code.issuer_code} platform {code.platform_code} is not accepted here",
            )
        rule = IssuerRule(code.issuer_code, code.platform_code, signer_id=policy.signer_id)
    if policy.account_types is not None and code.account_type not in policy.account_types:
        raise _refuse(
            QrReason.ACCOUNT_TYPE, f"account type {code.account_type:02X} is not accepted here"
        )
    return rule


def check_history(
    code: RideCode, digest: bytes, now: int, policy: QrPolicy, h: RideHistory
) -> None:
    """Replay of this code, the debounce and the minimum interval for its account."""
    if h.seen(digest, code.user_account, code.generated):
        raise _refuse(QrReason.REPLAY, f"this code ({digest[:4].hex().upper()}…) was used already")
    last = h.last_ride(code.user_account)
    if last is None:
        return
    if now - last < policy.debounce:
        raise _refuse(
            QrReason.DEBOUNCE, f"account {code.user_account} rode {now - last} s ago: double scan"
        )
    if now - last < policy.min_interval:
        raise _refuse(
            QrReason.TOO_SOON,
            f"account {code.user_account} rode {now - last} s ago; one code, one rider"
            f" ({policy.min_interval} s between rides)",
        )


def check_limit(code: RideCode, fare: int) -> None:
    if fare > code.ride_limit:
        raise _refuse(
            QrReason.OVER_LIMIT,
            f"fare {format_fen(fare)} is above the code's per-ride limit"
            f" {format_fen(code.ride_limit)}",
        )


# a ride record's fields that restate the code (terminal/record.py QR_RIDE), and how the
# code says each
RESTATED = ("user_account", "issuer_code", "platform_code", "account_type", "generated")


def check_record(values: Mapping[str, Any], policy: QrPolicy | None = None) -> RideCode:
    """A ride record (``QR_RIDE`` values, bytes as hex text) against the code it carries:
    the code parses, its SM3 and the restated fields are the record's, the fare is within
    the code's per-ride limit, and the ride's time is inside the code's validity (with the
    policy's skew), as the terminal checked at the scan: a code kept and booked later is
    refused. No key is needed: the gateway runs it at ingest, clearing before it
    re-verifies the chain. QrMalformed or QrRefused otherwise."""
    policy = policy or QrPolicy()
    try:
        raw = bytes.fromhex(values["code"])
    except ValueError:
        raise QrMalformed(QrReason.SIZE, "the record's code is not hex") from None
    code = parse(raw, min_version=policy.min_version)
    said = {n: values[n].upper() if isinstance(values[n], str) else values[n] for n in RESTATED}
    wrong = [n for n in RESTATED if said[n] != getattr(code, n)]
    if str(values["code_hash"]).upper() != code_hash(raw).hex().upper():
        wrong.insert(0, "code_hash")
    if wrong:
        raise _refuse(
            QrReason.RECORD,
            f"the record's {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not the"
            " code's: the record was altered or forged",
        )
    check_limit(code, values["amount"])
    when = values["txn_time"]
    check_times(code, unix(when if isinstance(when, datetime) else datetime.fromisoformat(when)),
                policy)  # fmt: skip
    return code


def verify(
    raw: bytes | RideCode,
    *,
    now: datetime,
    roots: Mapping[int, RootKey],
    policy: QrPolicy,
    history: RideHistory | None = None,
    fare: int | None = None,
) -> VerifiedCode:
    """Every check, in order; the first failure raises QrMalformed or QrRefused. Without
    a ``history`` the replay checks are not made; without a ``fare``, the limit is not."""
    code = raw if isinstance(raw, RideCode) else parse(raw, min_version=policy.min_version)
    at = unix(now)
    rule = policy.issuers.get(code.issuer_code)
    signer_id = rule.signer_id if rule is not None else policy.signer_id
    check_chain(code, roots, policy, now.date(), signer_id)
    check_times(code, at, policy)
    rule = check_policy(code, policy)
    digest = code_hash(code.raw)
    if history is not None:
        check_history(code, digest, at, policy, history)
    if fare is not None:
        check_limit(code, fare)
    return VerifiedCode(code, rule, at, digest)


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
