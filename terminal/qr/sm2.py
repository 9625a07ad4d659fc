"""SM2 signatures (GM/T 0003, with SM3 and a signer ID) through the system's OpenSSL 3.

pyca/cryptography has no SM2; OpenSSL 3's libcrypto has it and is on every machine the
terminal runs on, so it is called through ``ctypes`` (docs/qr.md: chosen by measurement
against a pure-Python implementation). The terminal only verifies; ``generate``/``sign``
exist for the software ride-code app and the tests. Keys and signatures are raw bytes:
a public key is 33 bytes compressed (02/03 ‖ X) or 65 uncompressed (04 ‖ X ‖ Y), a
signature 64 bytes r ‖ s, a private key 32 bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

DEFAULT_SIGNER_ID = b"1234567812345678"  # GM/T 0009's default, ENTL 0x0080

# GM/T 0003.5 recommended curve: the group order (a private key is 1..N-2)
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

_SM2_OID = bytes.fromhex("06082A811CCF5501822D")  # 1.2.156.10197.1.301
_EC_PUBLIC_KEY_OID = bytes.fromhex("06072A8648CE3D0201")  # 1.2.840.10045.2.1


class Sm2Unavailable(RuntimeError):
    """The system's libcrypto is missing or has no SM2 (OpenSSL 3 is required)."""


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise Sm2Unavailable(f"libcrypto not found ({exc}): install OpenSSL 3") from None
    vp, cp, sz, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "OpenSSL_version_num": (ctypes.c_ulong, []),
        "d2i_PUBKEY": (vp, [vp, ctypes.POINTER(cp), ctypes.c_long]),
        "d2i_AutoPrivateKey": (vp, [vp, ctypes.POINTER(cp), ctypes.c_long]),
        "i2d_PUBKEY": (i, [vp, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]),
        "EVP_PKEY_free": (None, [vp]),
        "EVP_PKEY_is_a": (i, [vp, cp]),
        "EVP_PKEY_CTX_new": (vp, [vp, vp]),
        "EVP_PKEY_CTX_free": (None, [vp]),
        "EVP_PKEY_CTX_set1_id": (i, [vp, cp, sz]),
        "EVP_MD_CTX_new": (vp, []),
        "EVP_MD_CTX_free": (None, [vp]),
        "EVP_MD_CTX_set_pkey_ctx": (None, [vp, vp]),
        "EVP_sm3": (vp, []),
        "EVP_DigestVerifyInit": (i, [vp, vp, vp, vp, vp]),
        "EVP_DigestVerify": (i, [vp, cp, sz, cp, sz]),
        "EVP_DigestSignInit": (i, [vp, vp, vp, vp, vp]),
        "EVP_DigestSign": (i, [vp, cp, ctypes.POINTER(sz), cp, sz]),
        "EVP_Digest": (i, [cp, sz, cp, ctypes.POINTER(ctypes.c_uint), vp, vp]),
        "ERR_clear_error": (None, []),
        "CRYPTO_free": (None, [vp, cp, i]),
    }
    try:
        for fn, (res, args) in sigs.items():
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
    except AttributeError as exc:
        raise Sm2Unavailable(f"{name} lacks {exc}: OpenSSL 3 is required") from None
    if lib.OpenSSL_version_num() < 0x30000000:
        raise Sm2Unavailable(f"{name} is older than OpenSSL 3.0")
    return lib


_lib: ctypes.CDLL | None = None


def _crypto() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _der_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n])


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(value)) + value


def _spki(public_key: bytes) -> bytes:
    algorithm = _tlv(0x30, _EC_PUBLIC_KEY_OID + _SM2_OID)
    return _tlv(0x30, algorithm + _tlv(0x03, b"\x00" + public_key))


def _d2i(fn: Callable[..., Any], der: bytes) -> int:
    buf = ctypes.c_char_p(der)
    key = fn(None, ctypes.byref(buf), len(der))
    if not key:
        _crypto().ERR_clear_error()
        return 0
    if not _crypto().EVP_PKEY_is_a(key, b"SM2"):
        _crypto().EVP_PKEY_free(key)
        return 0
    return int(key)


def public_key_valid(public_key: bytes) -> bool:
    """Whether ``public_key`` (33 or 65 bytes) is a point on the SM2 curve."""
    if len(public_key) not in (33, 65):
        return False
    key = _d2i(_crypto().d2i_PUBKEY, _spki(public_key))
    if key:
        _crypto().EVP_PKEY_free(key)
    return bool(key)


def _run(key: int, signer_id: bytes, sign: bool, op: Callable[[int], bool]) -> bool:
    lib = _crypto()
    md = lib.EVP_MD_CTX_new()
    pctx = lib.EVP_PKEY_CTX_new(key, None)
    try:
        if not md or not pctx or lib.EVP_PKEY_CTX_set1_id(pctx, signer_id, len(signer_id)) != 1:
            raise Sm2Unavailable("libcrypto could not set up an SM2 context")
        lib.EVP_MD_CTX_set_pkey_ctx(md, pctx)
        init = lib.EVP_DigestSignInit if sign else lib.EVP_DigestVerifyInit
        if init(md, None, lib.EVP_sm3(), None, key) != 1:
            raise Sm2Unavailable("libcrypto could not start SM2 with SM3")
        return op(md)
    finally:
        lib.ERR_clear_error()
        if md:
            lib.EVP_MD_CTX_free(md)  # frees the pkey ctx it was given
        elif pctx:
            lib.EVP_PKEY_CTX_free(pctx)
        lib.EVP_PKEY_free(key)


def verify(
    public_key: bytes, message: bytes, signature: bytes, signer_id: bytes = DEFAULT_SIGNER_ID
) -> bool:
    """Whether ``signature`` (r ‖ s, 64 bytes) is ``public_key``'s SM2 signature of
    ``message`` with SM3 and ``signer_id`` (Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ G ‖ P))."""
    if len(signature) != 64:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    key = _d2i(_crypto().d2i_PUBKEY, _spki(public_key)) if len(public_key) in (33, 65) else 0
    if not key:
        return False
    der = encode_dss_signature(r, s)
    return _run(
        key,
        signer_id,
        False,
        lambda md: _crypto().EVP_DigestVerify(md, der, len(der), message, len(message)) == 1,
    )


# -- for the software ride-code app and tests: keys and signing -----------------------------
def _private(private_key: bytes) -> int:
    d = int.from_bytes(private_key, "big")
    if len(private_key) != 32 or not 0 < d < N - 1:
        raise ValueError("an SM2 private key is 32 bytes, 1..n-2")
    der = _tlv(0x30, bytes.fromhex("020101") + _tlv(0x04, private_key) + _tlv(0xA0, _SM2_OID))
    key = _d2i(_crypto().d2i_AutoPrivateKey, der)
    if not key:
        raise Sm2Unavailable("libcrypto refused an SM2 private key")
    return key


def public_key(private_key: bytes, *, compressed: bool = True) -> bytes:
    """The public key of a 32-byte private key (33 bytes compressed, else 65)."""
    lib = _crypto()
    key = _private(private_key)
    out = ctypes.POINTER(ctypes.c_ubyte)()
    try:
        n = lib.i2d_PUBKEY(key, ctypes.byref(out))
        if n <= 0:
            raise Sm2Unavailable("libcrypto could not encode an SM2 public key")
        der = ctypes.string_at(out, n)
        lib.CRYPTO_free(out, None, 0)
    finally:
        lib.EVP_PKEY_free(key)
    point = der[-65:]  # the BIT STRING's uncompressed point ends the SubjectPublicKeyInfo
    if not compressed:
        return point
    return bytes([2 + (point[-1] & 1)]) + point[1:33]


def generate() -> bytes:
    """A new random private key (32 bytes)."""
    while True:
        d = secrets.randbelow(N - 1)
        if d:
            return d.to_bytes(32, "big")


def sign(private_key: bytes, message: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
    """The SM2 signature (r ‖ s) of ``message`` with SM3 and ``signer_id``."""
    key = _private(private_key)
    buf = ctypes.create_string_buffer(80)
    size = ctypes.c_size_t(80)

    def op(md: int) -> bool:
        return _crypto().EVP_DigestSign(md, buf, ctypes.byref(size), message, len(message)) == 1

    if not _run(key, signer_id, True, op):
        raise Sm2Unavailable("libcrypto could not sign with SM2")
    r, s = decode_dss_signature(buf.raw[: size.value])
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sm3(data: bytes) -> bytes:
    """The SM3 digest (32 bytes)."""
    lib = _crypto()
    out = ctypes.create_string_buffer(32)
    n = ctypes.c_uint(0)
    if lib.EVP_Digest(data, len(data), out, ctypes.byref(n), lib.EVP_sm3(), None) != 1:
        raise Sm2Unavailable("libcrypto has no SM3")
    return out.raw[: n.value]
