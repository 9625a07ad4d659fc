"""SM2 and SM3 through OpenSSL 3 against the published GM/T vectors."""

from __future__ import annotations

import pytest

from terminal.qr import sm2

# GM/T 0003.5-2012 (GB/T 32918.5) signature example on the recommended curve
D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
PUBLIC = bytes.fromhex("04" + X + Y)
SIGNATURE = bytes.fromhex(R + S)


def test_sm3_gmt0004_examples() -> None:
    assert sm2.sm3(b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert sm2.sm3(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def test_sm2_gmt0003_example_verifies_and_its_key_is_derived() -> None:
    assert sm2.public_key(D, compressed=False) == PUBLIC
    assert sm2.verify(PUBLIC, b"message digest", SIGNATURE)
    compressed = bytes([2 + (PUBLIC[-1] & 1)]) + PUBLIC[1:33]
    assert sm2.public_key(D) == compressed
    assert sm2.verify(compressed, b"message digest", SIGNATURE)


@pytest.mark.parametrize(
    ("message", "signature", "signer_id"),
    [
        (b"message digesT", SIGNATURE, sm2.DEFAULT_SIGNER_ID),
        (b"message digest", SIGNATURE[:-1] + b"\x00", sm2.DEFAULT_SIGNER_ID),
        (b"message digest", SIGNATURE, b"ALICE123@YAHOO.COM"),
        (b"message digest", bytes(64), sm2.DEFAULT_SIGNER_ID),
        (b"message digest", SIGNATURE[:63], sm2.DEFAULT_SIGNER_ID),
    ],
)
def test_sm2_refuses_other_message_signature_or_id(
    message: bytes, signature: bytes, signer_id: bytes
) -> None:
    assert not sm2.verify(PUBLIC, message, signature, signer_id)


def test_sign_then_verify_with_another_id() -> None:
    d = sm2.generate()
    sig = sm2.sign(d, b"ride", b"LOCAL-ISSUER-ID")
    assert sm2.verify(sm2.public_key(d), b"ride", sig, b"LOCAL-ISSUER-ID")
    assert not sm2.verify(sm2.public_key(d), b"ride", sig)


def test_points_off_the_curve_are_not_keys() -> None:
    assert not sm2.public_key_valid(PUBLIC[:-1] + bytes([PUBLIC[-1] ^ 1]))
    assert not sm2.verify(b"\x05" + PUBLIC[1:33], b"message digest", SIGNATURE)
    assert sm2.public_key_valid(PUBLIC)
