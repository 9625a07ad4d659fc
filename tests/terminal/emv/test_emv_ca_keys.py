"""The CA public key store: built-in keys with published checksums, files in JSON and
TLV form, checksum verification, updates, test-key trust and revocation."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from terminal.emv.ca_keys import (
    BUILTIN_KEYS,
    RID_UNIONPAY,
    TEST_CA_INDEX,
    CaKeyStore,
    CaPublicKey,
    key_checksum,
)
from terminal.emv.errors import CaKeyError

h = bytes.fromhex

PUBLISHED = {
    0x08: "EE23B616C95C02652AD18860E48787C079E8E85A",
    0x09: "A075306EAB0045BAF72CDD33B3B678779DE1F527",
    0x0A: "C88BE6B2417C4F941C9371EA35A377158767E4E3",
    0x0B: "BD331F9996A490B33C13441066A09AD3FEB5F66C",
    0x80: "A5E44BB0E1FA4F96A11709186670D0835057D35E",
}


@pytest.mark.parametrize(("index", "checksum"), sorted(PUBLISHED.items()))
def test_builtin_unionpay_keys_match_their_published_checksums(index: int, checksum: str) -> None:
    key = CaKeyStore.builtin().get(RID_UNIONPAY, index, trust_test_keys=True)
    assert key is not None
    assert key_checksum(key.rid, key.index, key.modulus, key.exponent) == h(checksum)


def test_builtin_key_sizes() -> None:
    sizes = {k.index: len(k.modulus) * 8 for k in BUILTIN_KEYS}
    assert sizes[0x08] == 1152 and sizes[0x09] == 1408 and sizes[0x0A] == 1024
    assert sizes[0x0B] == 1984 and sizes[0x80] == 1024


def test_test_keys_are_hidden_unless_trusted() -> None:
    store = CaKeyStore.builtin()
    assert store.get(RID_UNIONPAY, 0x80) is None
    assert store.get(RID_UNIONPAY, TEST_CA_INDEX) is None
    assert store.get(RID_UNIONPAY, 0x80, trust_test_keys=True) is not None
    assert store.get(RID_UNIONPAY, 0x09) is not None


def test_project_test_ca_matches_the_simulators_private_key() -> None:
    from simulators.emv_test_keys import TEST_CA_KEY

    key = CaKeyStore.builtin().get(RID_UNIONPAY, TEST_CA_INDEX, trust_test_keys=True)
    assert key is not None and key.modulus == TEST_CA_KEY.modulus and key.test


def test_checksum_mismatch_is_refused() -> None:
    good = BUILTIN_KEYS[0]
    with pytest.raises(CaKeyError, match="checksum mismatch"):
        CaPublicKey(good.rid, good.index, good.modulus, good.exponent, b"\x00" * 20)
    flipped = bytes([good.modulus[0], good.modulus[1] ^ 1]) + good.modulus[2:]
    with pytest.raises(CaKeyError):
        CaPublicKey(good.rid, good.index, flipped, good.exponent, good.checksum)


def test_json_file_update_replaces_keys_and_adds_revocations(tmp_path: Path) -> None:
    k09 = next(k for k in BUILTIN_KEYS if k.index == 0x09)
    entry = k09.to_json() | {"index": "19", "checksum": ""}
    entry["checksum"] = key_checksum(k09.rid, 0x19, k09.modulus, k09.exponent).hex()
    entry["expiry"] = "2030-12-31"
    path = tmp_path / "capk.json"
    path.write_text(
        json.dumps(
            {"keys": [entry], "revoked": [{"rid": "A000000333", "index": "19", "serial": "000042"}]}
        )
    )
    store = CaKeyStore.builtin()
    assert store.update_from_file(path) == 1
    key = store.get(RID_UNIONPAY, 0x19)
    assert key is not None and key.expiry == date(2030, 12, 31)
    assert store.is_revoked(RID_UNIONPAY, 0x19, h("000042"))
    assert not store.is_revoked(RID_UNIONPAY, 0x19, h("000043"))


def test_bad_entry_refuses_the_whole_file(tmp_path: Path) -> None:
    k = BUILTIN_KEYS[0].to_json()
    bad = dict(k, index="30", checksum="00" * 20)
    path = tmp_path / "capk.json"
    path.write_text(json.dumps([dict(k, index="31", checksum=""), bad]))
    store = CaKeyStore()
    with pytest.raises(CaKeyError):
        store.update_from_file(path)
    assert len(store) == 0


def test_tlv_terminal_parameter_lines(tmp_path: Path) -> None:
    # the common POS parameter form: 9F06 RID, 9F22 index, DF05 expiry, DF02, DF04, DF03
    k08 = next(k for k in BUILTIN_KEYS if k.index == 0x08)
    line = (
        "9F0605A000000333"
        + "9F220108"
        + "DF0508"
        + b"20301231".hex()
        + "DF028190"
        + k08.modulus.hex()
        + "DF040103"
        + "DF0314"
        + (k08.checksum or b"").hex()
    )
    path = tmp_path / "capk.txt"
    path.write_text("# UnionPay keys\n" + line + "\n")
    store = CaKeyStore.from_file(path)
    key = store.get(RID_UNIONPAY, 0x08)
    assert key is not None and key.modulus == k08.modulus and key.expiry == date(2030, 12, 31)


def test_tlv_line_with_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    k08 = next(k for k in BUILTIN_KEYS if k.index == 0x08)
    line = "9F0605A0000003339F220108DF028190" + k08.modulus.hex() + "DF040103DF0314" + "11" * 20
    path = tmp_path / "capk.txt"
    path.write_text(line)
    with pytest.raises(CaKeyError):
        CaKeyStore.from_file(path)


@pytest.mark.parametrize(
    "text", ["{not json", '{"keys": [{"rid": "A0"}]}', "ZZZZ", "9F0605A000000333"]
)
def test_malformed_files_raise_ca_key_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "capk"
    path.write_text(text)
    with pytest.raises(CaKeyError):
        CaKeyStore.from_file(path)
