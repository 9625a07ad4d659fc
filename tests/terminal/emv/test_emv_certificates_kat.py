"""RSA recovery and hash checks against the published emv-tools chains (emv-reference.md
§2.3 A-C: Visa CA 01 SDA, Mastercard CA 05 DDA and CDA), all [V] in the reference."""

from __future__ import annotations

from datetime import date

import pytest

from terminal.emv.ca_keys import CaKeyStore, CaPublicKey
from terminal.emv.certificates import rsa_recover, sha1
from terminal.emv.errors import OdaError, OdaFailure
from terminal.emv.oda import (
    OdaContext,
    recover_icc_key,
    recover_issuer_key,
    run_sda,
    verify_cda,
    verify_sdad,
    verify_ssad,
)
from terminal.emv.tags import Tag
from tests.terminal.emv import emvtools as V

h = bytes.fromhex


@pytest.fixture
def store() -> CaKeyStore:
    """A key store holding the two published CA keys the chains are signed under."""
    store = CaKeyStore()
    store.add(V.VISA_CA_01)
    store.add(V.MC_CA_05)
    return store


def test_visa_ca01_checksum_is_the_published_one() -> None:
    assert V.VISA_CA_01.checksum == h("D34A6A776011C7E7CE3AEC5F03AD2F8CFC5503CC")


def test_sda_chain_recovers_the_published_issuer_certificate_and_key(store: CaKeyStore) -> None:
    x = rsa_recover(V.SDA_ISSUER_CERT, V.VISA_CA_01.modulus, b"\x03")
    assert x == V.SDA_RECOVERED_ISSUER_CERT
    issuer = recover_issuer_key(V.sda_card(), V.RID_VISA, store, date(2009, 1, 1))
    assert issuer.modulus == V.SDA_ISSUER_MODULUS


def test_sda_chain_signed_static_data_and_dac(store: CaKeyStore) -> None:
    card = V.sda_card()
    issuer = recover_issuer_key(card, V.RID_VISA, store, date(2009, 1, 1))
    x = rsa_recover(card[Tag.SSAD], issuer.modulus, issuer.exponent)
    assert x == V.SDA_RECOVERED_SSAD
    assert verify_ssad(card, issuer, V.SDA_STATIC_DATA) == h("3132")


def test_sda_chain_expired_issuer_certificate_is_refused_today(store: CaKeyStore) -> None:
    ctx = OdaContext(V.RID_VISA, store, date(2026, 1, 1), V.SDA_STATIC_DATA)
    result = run_sda(V.sda_card(), ctx)
    assert result.failure == OdaFailure.ISSUER_CERT_EXPIRED


def test_dda_chain_issuer_and_icc_keys(store: CaKeyStore) -> None:
    card = V.dda_card()
    assert rsa_recover(card[Tag.ISSUER_PK_CERT], V.MC_CA_05.modulus, b"\x03") == (
        V.DDA_RECOVERED_ISSUER_CERT
    )
    issuer = recover_issuer_key(card, V.RID_MC, store, date(2015, 1, 1))
    assert issuer.modulus == V.DDA_ISSUER_MODULUS
    assert rsa_recover(card[Tag.ICC_PK_CERT], issuer.modulus, b"\x03") == (V.DDA_RECOVERED_ICC_CERT)
    icc = recover_icc_key(card, issuer, V.DDA_STATIC_DATA, date(2015, 1, 1))
    assert icc.modulus == V.DDA_ICC_MODULUS


def test_dda_chain_signed_dynamic_data_and_icc_dynamic_number(store: CaKeyStore) -> None:
    card = V.dda_card()
    issuer = recover_issuer_key(card, V.RID_MC, store, date(2015, 1, 1))
    icc = recover_icc_key(card, issuer, V.DDA_STATIC_DATA, date(2015, 1, 1))
    assert rsa_recover(V.DDA_SDAD, icc.modulus, icc.exponent) == V.DDA_RECOVERED_SDAD
    d = verify_sdad(icc, V.DDA_SDAD, h("00000000"))
    assert d.icc_dynamic_number == h("7A33FB8C9546E1E7")
    with pytest.raises(OdaError) as err:
        verify_sdad(icc, V.DDA_SDAD, h("00000001"))
    assert err.value.reason == OdaFailure.SDAD_HASH


def test_dda_chain_icc_certificate_expired_after_june_2015(store: CaKeyStore) -> None:
    card = V.dda_card()
    issuer = recover_issuer_key(card, V.RID_MC, store, date(2015, 7, 1))
    with pytest.raises(OdaError) as err:
        recover_icc_key(card, issuer, V.DDA_STATIC_DATA, date(2015, 7, 1))
    assert err.value.reason == OdaFailure.ICC_CERT_EXPIRED


def test_cda_chain_recovered_signature_and_transaction_data_hash(store: CaKeyStore) -> None:
    card = V.dda_card()
    issuer = recover_issuer_key(card, V.RID_MC, store, date(2015, 1, 1))
    icc = recover_icc_key(card, issuer, V.DDA_STATIC_DATA, date(2015, 1, 1))
    assert rsa_recover(V.CDA_SDAD, icc.modulus, icc.exponent) == V.CDA_RECOVERED_SDAD
    assert sha1(V.CDA_CRM1 + V.CDA_DD2) == h("9D1493E6F70FAAB248A0689BEE7C8DFA10DA423D")
    sig = verify_cda(icc, V.CDA_SDAD, h("12345779"), 0x40, V.CDA_CRM1 + V.CDA_DD2)
    assert sig.icc_dynamic_number == h("4CC2FB1FAFB30915")
    assert sig.cid == 0x40
    assert sig.cryptogram == h("16AFBA13C52FB173")
    assert sig.transaction_data_hash == h("9D1493E6F70FAAB248A0689BEE7C8DFA10DA423D")


def test_cda_detects_altered_transaction_data(store: CaKeyStore) -> None:
    card = V.dda_card()
    issuer = recover_issuer_key(card, V.RID_MC, store, date(2015, 1, 1))
    icc = recover_icc_key(card, issuer, V.DDA_STATIC_DATA, date(2015, 1, 1))
    with pytest.raises(OdaError) as err:
        verify_cda(icc, V.CDA_SDAD, h("12345779"), 0x40, V.CDA_CRM1 + V.CDA_DD2 + b"\x00")
    assert err.value.reason == OdaFailure.SDAD_HASH


def test_ca_key_objects_round_trip_through_json() -> None:
    assert CaPublicKey.from_json(V.MC_CA_05.to_json()) == V.MC_CA_05
