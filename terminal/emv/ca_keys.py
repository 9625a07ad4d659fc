"""Certification Authority public keys: the store ODA looks keys up in.

Each key is (RID, index, modulus, exponent) with its SHA-1 checksum over
RID ‖ index ‖ modulus ‖ exponent, checked whenever a key enters the store, so a
corrupted or mistyped key file is refused instead of failing every card later. The
store also holds the issuer certificate revocation list (RID, CA index, serial).

Built in: the UnionPay keys 08, 09, 0A, 0B (listed as production keys by public
sources, emv-reference.md §2.1 - their production status is unverified [U]), the
published UnionPay test key 80, and this project's own TEST CA (index E0) that signs
the software cards. Test keys are used only when the terminal trusts test keys. Key
0C is not built in: no two public sources agree on its modulus.

Files: JSON ({"keys": [{"rid", "index", "modulus", "exponent", "checksum",
"expiry", "test", "label"}], "revoked": [{"rid", "index", "serial"}]}) or the common
terminal-parameter text form, one TLV per line (9F06 RID, 9F22 index, DF02 modulus,
DF04 exponent, DF03 checksum, DF05 expiry YYYYMMDD).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from terminal.apdu import tlv
from terminal.apdu.errors import TlvError
from terminal.emv.errors import CaKeyError


def key_checksum(rid: bytes, index: int, modulus: bytes, exponent: bytes) -> bytes:
    return hashlib.sha1(rid + bytes((index,)) + modulus + exponent).digest()


@dataclass(frozen=True, slots=True)
class CaPublicKey:
    rid: bytes
    index: int
    modulus: bytes
    exponent: bytes
    checksum: bytes | None = None
    expiry: date | None = None
    test: bool = False
    label: str = ""

    def __post_init__(self) -> None:
        if len(self.rid) != 5:
            raise CaKeyError(f"RID must be 5 bytes, got {self.rid.hex().upper()}")
        if not 0 <= self.index <= 0xFF:
            raise CaKeyError(f"CA key index {self.index} is not a byte")
        if not 64 <= len(self.modulus) <= 248 or self.modulus[0] == 0:
            raise CaKeyError(f"CA modulus of {len(self.modulus)} bytes is not usable")
        if self.exponent not in (b"\x03", b"\x01\x00\x01"):
            raise CaKeyError(f"CA exponent {self.exponent.hex()} is neither 3 nor 65537")
        computed = key_checksum(self.rid, self.index, self.modulus, self.exponent)
        if self.checksum is not None and self.checksum != computed:
            raise CaKeyError(
                f"checksum mismatch for CA key {self.rid.hex().upper()}/{self.index:02X}: "
                f"file says {self.checksum.hex().upper()}, key gives {computed.hex().upper()}"
            )
        if self.checksum is None:
            object.__setattr__(self, "checksum", computed)

    @property
    def name(self) -> str:
        return f"{self.rid.hex().upper()}/{self.index:02X}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rid": self.rid.hex().upper(),
            "index": f"{self.index:02X}",
            "modulus": self.modulus.hex().upper(),
            "exponent": self.exponent.hex().upper(),
            "checksum": (self.checksum or b"").hex().upper(),
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "test": self.test,
            "label": self.label,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> CaPublicKey:
        try:
            index = item["index"]
            expiry = item.get("expiry")
            checksum = item.get("checksum")
            return cls(
                bytes.fromhex(item["rid"]),
                int(index, 16) if isinstance(index, str) else int(index),
                bytes.fromhex(item["modulus"]),
                bytes.fromhex(item.get("exponent", "03")),
                bytes.fromhex(checksum) if checksum else None,
                date.fromisoformat(expiry) if expiry else None,
                bool(item.get("test", False)),
                item.get("label", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CaKeyError):
                raise
            raise CaKeyError(f"CA key entry {item!r:.60}: {exc}") from None

    @classmethod
    def from_tlv(cls, data: bytes) -> CaPublicKey:
        """The terminal-parameter form: 9F06, 9F22, DF02, DF04, DF03 (checksum), DF05."""
        try:
            flat = tlv.flatten(tlv.parse(data))
        except TlvError as exc:
            raise CaKeyError(f"CA key TLV: {exc}") from None
        try:
            rid, index, modulus = flat[0x9F06], flat[0x9F22], flat[0xDF02]
        except KeyError as exc:
            raise CaKeyError(f"CA key TLV lacks tag {exc.args[0]:X}") from None
        expiry = None
        if 0xDF05 in flat:
            text = flat[0xDF05].decode("ascii", "replace") if len(flat[0xDF05]) == 8 else ""
            text = text or flat[0xDF05].hex()
            try:
                expiry = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
            except ValueError:
                raise CaKeyError(f"CA key expiry {text!r} is not YYYYMMDD") from None
        return cls(
            rid[:5],
            index[0] if index else -1,
            modulus,
            flat.get(0xDF04, b"\x03"),
            flat.get(0xDF03),
            expiry,
        )


@dataclass
class CaKeyStore:
    """CA keys by (RID, index) plus the issuer certificate revocation list."""

    keys: dict[tuple[bytes, int], CaPublicKey] = field(default_factory=dict)
    revoked: set[tuple[bytes, int, bytes]] = field(default_factory=set)

    def add(self, key: CaPublicKey) -> None:
        """Add or replace (an update file replaces keys of the same RID and index)."""
        self.keys[(key.rid, key.index)] = key

    def remove(self, rid: bytes, index: int) -> None:
        self.keys.pop((rid, index), None)

    def get(self, rid: bytes, index: int, *, trust_test_keys: bool = False) -> CaPublicKey | None:
        key = self.keys.get((rid, index))
        if key is None or (key.test and not trust_test_keys):
            return None
        return key

    def revoke(self, rid: bytes, index: int, serial: bytes) -> None:
        self.revoked.add((rid, index, serial))

    def is_revoked(self, rid: bytes, index: int, serial: bytes) -> bool:
        return (rid, index, serial) in self.revoked

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.keys.values())

    def update_from_file(self, path: str | Path) -> int:
        """Merge a key file into the store; every entry is checked before any is added."""
        text = Path(path).read_text(encoding="utf-8")
        keys, revoked = parse_key_file(text)
        for key in keys:
            self.add(key)
        self.revoked |= revoked
        return len(keys)

    @classmethod
    def from_file(cls, path: str | Path) -> CaKeyStore:
        store = cls()
        store.update_from_file(path)
        return store

    @classmethod
    def builtin(cls, extra: Iterable[CaPublicKey] = ()) -> CaKeyStore:
        store = cls()
        for key in (*BUILTIN_KEYS, *extra):
            store.add(key)
        return store

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": [k.to_json() for k in self.keys.values()],
            "revoked": [
                {"rid": r.hex().upper(), "index": f"{i:02X}", "serial": s.hex().upper()}
                for r, i, s in sorted(self.revoked)
            ],
        }


def parse_key_file(text: str) -> tuple[list[CaPublicKey], set[tuple[bytes, int, bytes]]]:
    """Keys and revocations from JSON or from TLV lines; any bad entry raises CaKeyError."""
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CaKeyError(f"CA key file is not valid JSON: {exc}") from None
        items = data if isinstance(data, list) else data.get("keys", [])
        revoked_items = [] if isinstance(data, list) else data.get("revoked", [])
        keys = [CaPublicKey.from_json(item) for item in items]
        revoked = set()
        for r in revoked_items:
            try:
                index = r["index"]
                revoked.add(
                    (
                        bytes.fromhex(r["rid"]),
                        int(index, 16) if isinstance(index, str) else int(index),
                        bytes.fromhex(r["serial"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise CaKeyError(f"revocation entry {r!r:.60}: {exc}") from None
        return keys, revoked
    keys = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip().replace(" ", "")
        if not line:
            continue
        try:
            raw = bytes.fromhex(line)
        except ValueError:
            raise CaKeyError(f"line {lineno}: not hex") from None
        keys.append(CaPublicKey.from_tlv(raw))
    return keys, set()


def _k(index: int, modulus: str, exponent: str, checksum: str, **kw: Any) -> CaPublicKey:
    return CaPublicKey(
        RID_UNIONPAY,
        index,
        bytes.fromhex(modulus),
        bytes.fromhex(exponent),
        bytes.fromhex(checksum),
        **kw,
    )


RID_UNIONPAY = bytes.fromhex("A000000333")
TEST_CA_INDEX = 0xE0

BUILTIN_KEYS: tuple[CaPublicKey, ...] = (
    _k(
        0x08,
        "B61645EDFD5498FB246444037A0FA18C0F101EBD8EFA54573CE6E6A7FBF63ED21D66340852B0211CF5"
        "EEF6A1CD989F66AF21A8EB19DBD8DBC3706D135363A0D683D046304F5A836BC1BC632821AFE7A2F75D"
        "A3C50AC74C545A754562204137169663CFCC0B06E67E2109EBA41BC67FF20CC8AC80D7B6EE1A95465B"
        "3B2657533EA56D92D539E5064360EA4850FED2D1BF",
        "03",
        "EE23B616C95C02652AD18860E48787C079E8E85A",
        label="UnionPay 08",
    ),
    _k(
        0x09,
        "EB374DFC5A96B71D2863875EDA2EAFB96B1B439D3ECE0B1826A2672EEEFA7990286776F8BD989A1514"
        "1A75C384DFC14FEF9243AAB32707659BE9E4797A247C2F0B6D99372F384AF62FE23BC54BCDC57A9ACD"
        "1D5585C303F201EF4E8B806AFB809DB1A3DB1CD112AC884F164A67B99C7D6E5A8A6DF1D3CAE6D7ED3D"
        "5BE725B2DE4ADE23FA679BF4EB15A93D8A6E29C7FFA1A70DE2E54F593D908A3BF9EBBD760BBFDC8DB8"
        "B54497E6C5BE0E4A4DAC29E5",
        "03",
        "A075306EAB0045BAF72CDD33B3B678779DE1F527",
        label="UnionPay 09",
    ),
    _k(
        0x0A,
        "B2AB1B6E9AC55A75ADFD5BBC34490E53C4C3381F34E60E7FAC21CC2B26DD34462B64A6FAE2495ED1DD"
        "383B8138BEA100FF9B7A111817E7B9869A9742B19E5C9DAC56F8B8827F11B05A08ECCF9E8D5E85B0F7"
        "CFA644EFF3E9B796688F38E006DEB21E101C01028903A06023AC5AAB8635F8E307A53AC742BDCE6A28"
        "3F585F48EF",
        "03",
        "C88BE6B2417C4F941C9371EA35A377158767E4E3",
        label="UnionPay 0A",
    ),
    _k(
        0x0B,
        "CF9FDF46B356378E9AF311B0F981B21A1F22F250FB11F55C958709E3C7241918293483289EAE688A09"
        "4C02C344E2999F315A72841F489E24B1BA0056CFAB3B479D0E826452375DCDBB67E97EC2AA66F4601D"
        "774FEAEF775ACCC621BFEB65FB0053FC5F392AA5E1D4C41A4DE9FFDFDF1327C4BB874F1F63A599EE39"
        "02FE95E729FD78D4234DC7E6CF1ABABAA3F6DB29B7F05D1D901D2E76A606A8CBFFFFECBD918FA2D278"
        "BDB43B0434F5D45134BE1C2781D157D501FF43E5F1C470967CD57CE53B64D82974C8275937C5D8502A"
        "1252A8A5D6088A259B694F98648D9AF2CB0EFD9D943C69F896D49FA39702162ACB5AF29B90BADE005B"
        "C157",
        "03",
        "BD331F9996A490B33C13441066A09AD3FEB5F66C",
        label="UnionPay 0B",
    ),
    _k(
        0x80,
        "CCDBA686E2EFB84CE2EA01209EEB53BEF21AB6D353274FF8391D7035D76E2156CAEDD07510E07DAFCA"
        "CABB7CCB0950BA2F0A3CEC313C52EE6CD09EF00401A3D6CC5F68CA5FCD0AC6132141FAFD1CFA36A269"
        "2D02DDC27EDA4CD5BEA6FF21913B513CE78BF33E6877AA5B605BC69A534F3777CBED6376BA649C7251"
        "6A7E16AF85",
        "010001",
        "A5E44BB0E1FA4F96A11709186670D0835057D35E",
        test=True,
        label="UnionPay test key 80",
    ),
    _k(
        TEST_CA_INDEX,
        "CDFD8675F2AE284D99E57F74969AA49CED2E051B2B1D5A0DF3D9DABC0CFBEF44B3C311EF6A2C734941F8D0166212EE13D473A9B30A6D39DDCC45C2E7FBCCCA339E04D750D3D81BE694EE33EDAC8B5CE203DC13C4BD0CB37C9872E5D828D2944E6F9BCF5399E452FBE5D128CB6D137C7622826361C06242ACDB1DE5266C8E60164EEF2489C3E2968F18852190F1A7FB62B7ED829F2A2E34E5C1631114D60067A983CFF7BB7211756C7E9224B591B3D01F",
        "010001",
        "92C87013BCC9EC314291114185B46A76DDF0803D",
        test=True,
        label="yikatong TEST CA (software cards only)",
    ),
)
