"""EdDSA on the build machine, through Monocypher itself.

The devices sign with Monocypher 4's ``crypto_eddsa_*`` (the Ed25519 curve and
equation, BLAKE2b-512 as its hash; not RFC 8032 Ed25519, which hashes with
SHA-512): the toolchain signs fleet manifests with the same library, compiled
for the build machine as a shared library and called through ctypes, so the
user's fleet key is handled by constant-time code.  (tests/eddsa_reference.py
is an independent pure-Python implementation the C signatures are checked
against.)

Every statement tinyfed signs is hashed first: ``digest(domain, *parts)`` =
BLAKE2b-256(domain || parts), and the signature is over those 32 bytes
(firmware/include/tfd/identity.h).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from functools import lru_cache

from .native_cc import compile_native

SEED_BYTES = 32
SECRET_BYTES = 64  # Monocypher's EdDSA secret key: seed || public key
PUBLIC_BYTES = 32
SIG_BYTES = 64


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    so = compile_native([], [], "libmonocypher.so", extra_flags=("-fPIC", "-shared"), monocypher=True)
    lib = ctypes.CDLL(str(so))
    u8p = ctypes.c_char_p
    lib.crypto_eddsa_key_pair.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.crypto_eddsa_key_pair.restype = None
    lib.crypto_eddsa_sign.argtypes = [ctypes.c_void_p, u8p, u8p, ctypes.c_size_t]
    lib.crypto_eddsa_sign.restype = None
    lib.crypto_eddsa_check.argtypes = [u8p, u8p, u8p, ctypes.c_size_t]
    lib.crypto_eddsa_check.restype = ctypes.c_int
    lib.crypto_wipe.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.crypto_wipe.restype = None
    return lib


def _need(b: bytes, n: int, what: str) -> bytes:
    b = bytes(b)
    if len(b) != n:
        raise ValueError(f"{what} must be {n} bytes, got {len(b)}")
    return b


def new_seed() -> bytes:
    """32 bytes from the OS CSPRNG: an EdDSA secret."""
    return os.urandom(SEED_BYTES)


def keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(secret key (64 B), public key (32 B)) of a 32-byte seed (crypto_eddsa_key_pair)."""
    lib = _lib()
    s = ctypes.create_string_buffer(_need(seed, SEED_BYTES, "seed"), SEED_BYTES)  # the library wipes it
    sk = ctypes.create_string_buffer(SECRET_BYTES)
    pk = ctypes.create_string_buffer(PUBLIC_BYTES)
    lib.crypto_eddsa_key_pair(sk, pk, s)
    out = (sk.raw, pk.raw)
    lib.crypto_wipe(sk, SECRET_BYTES)
    return out


def public_key(seed: bytes) -> bytes:
    return keypair(seed)[1]


def sign(secret_key: bytes, message: bytes) -> bytes:
    """The 64-byte signature of ``message`` (crypto_eddsa_sign; deterministic)."""
    lib = _lib()
    sig = ctypes.create_string_buffer(SIG_BYTES)
    lib.crypto_eddsa_sign(sig, _need(secret_key, SECRET_BYTES, "secret key"), bytes(message), len(message))
    return sig.raw


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """crypto_eddsa_check: True iff ``signature`` is ``public``'s signature of ``message``."""
    if len(signature) != SIG_BYTES or len(public) != PUBLIC_BYTES:
        return False
    return _lib().crypto_eddsa_check(bytes(signature), bytes(public), bytes(message), len(message)) == 0


def digest(domain: bytes, *parts: bytes) -> bytes:
    """BLAKE2b-256(domain || parts): what is signed."""
    h = hashlib.blake2b(digest_size=32)
    h.update(domain)
    for p in parts:
        h.update(p)
    return h.digest()


__all__ = ["PUBLIC_BYTES", "SECRET_BYTES", "SEED_BYTES", "SIG_BYTES", "digest", "keypair", "new_seed",
           "public_key", "sign", "verify"]
