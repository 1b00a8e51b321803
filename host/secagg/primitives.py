"""Secure-aggregation crypto primitives, host side: the reference for
``firmware/src/secagg`` (``tfd/secagg.h``), byte for byte.

The exact constructions are written down once, at the top of
``firmware/include/tfd/secagg.h``; this module implements the same with
Python's ``cryptography`` (X25519, ChaCha20, ChaCha20-Poly1305) and
``hashlib.blake2b``.  ``tests/test_secagg_vectors.py`` runs both on the same
inputs and requires identical bytes.

* ``keypair`` / ``agree`` / ``kdf``: X25519, then keyed BLAKE2b-256 over
  ``"tinyfed/v1/" || u8 len(label) || label || u32le(round) || ctx``.
* ``prg``: words of the ChaCha20-IETF keystream (nonce 0, counter 0), uint32 LE.
* ``self_mask`` / ``pair_masks``: the SecAgg masks (``encoding.masked_input`` adds them).
* ``hchacha20`` / ``xchacha20poly1305_seal`` / ``_open``: XChaCha20-Poly1305
  (draft-irtf-cfrg-xchacha) built from ``cryptography``'s ChaCha20 and
  ChaCha20Poly1305; ``seal_share`` / ``open_share`` bind sender, receiver and
  round as associated data.

Python cannot wipe its (immutable) secrets; the host is the server here, and
this module is a reference, not a hardened client.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Sequence

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tinyfed_toolchain.facts.c_headers import string_defines
from tinyfed_toolchain.facts.errors import TinyfedError

from .shamir import combine as shamir_combine
from .shamir import split as shamir_split

__all__ = [
    "AD_PREFIX", "DOMAIN", "KEY_BYTES", "LABEL_DP_NOISE", "LABEL_PAIR_MASK", "LABEL_ROUNDING", "LABEL_SELF_MASK",
    "LABEL_SHARE_KEY", "MAC_BYTES", "NONCE_BYTES", "CryptoError", "agree", "ct_equal", "hchacha20",
    "kdf", "keypair", "open_share", "pair_masks", "pair_sign", "prg", "public_key",
    "seal_share", "self_mask", "shamir_combine", "shamir_split", "share_ad", "x25519",
    "xchacha20poly1305_open", "xchacha20poly1305_seal",
]

KEY_BYTES = 32
NONCE_BYTES = 24
MAC_BYTES = 16
_STRINGS = string_defines("secagg.h")  # the device's domain and labels (firmware/include/tfd/secagg.h)
DOMAIN = _STRINGS["TFD_SA_DOMAIN"]
LABEL_PAIR_MASK = _STRINGS["TFD_SA_LABEL_PAIR_MASK"].decode()
LABEL_SHARE_KEY = _STRINGS["TFD_SA_LABEL_SHARE_KEY"].decode()
LABEL_SELF_MASK = _STRINGS["TFD_SA_LABEL_SELF_MASK"].decode()
LABEL_ROUNDING = _STRINGS["TFD_SA_LABEL_ROUNDING"].decode()
LABEL_DP_NOISE = _STRINGS["TFD_SA_LABEL_DP_NOISE"].decode()
AD_PREFIX = _STRINGS["TFD_SA_AD_PREFIX"]
_WORDS_PER_BLOCK = 16
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


class CryptoError(TinyfedError, ValueError):
    """A cryptographic check failed (bad tag, low-order key, own key echoed)."""


def _key32(key: bytes, what: str = "key") -> bytes:
    key = bytes(key)
    if len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def _u32(v: int, what: str) -> bytes:
    if not 0 <= int(v) <= 0xFFFFFFFF:
        raise ValueError(f"{what} must fit in 32 bits, got {v}")
    return struct.pack("<I", int(v))


# ---------------------------------------------------------------- keys, KDF


def public_key(secret_key: bytes) -> bytes:
    """X25519 public key of a 32-byte secret key (clamped by X25519)."""
    sk = X25519PrivateKey.from_private_bytes(_key32(secret_key, "secret key"))
    return sk.public_key().public_bytes_raw()


def keypair(random: bytes) -> tuple[bytes, bytes]:
    """``(secret_key, public_key)`` from 32 random bytes (the secret key is them)."""
    sk = _key32(random, "random")
    return sk, public_key(sk)


def x25519(secret_key: bytes, peer_public_key: bytes) -> bytes:
    """Raw X25519 output; ``CryptoError`` if it is all zero (low-order peer key)."""
    sk = X25519PrivateKey.from_private_bytes(_key32(secret_key, "secret key"))
    try:
        return sk.exchange(X25519PublicKey.from_public_bytes(_key32(peer_public_key, "public key")))
    except ValueError as exc:  # cryptography refuses an all-zero shared secret
        raise CryptoError("X25519 output is all zero (low-order public key)") from exc


def kdf(key: bytes, label: str, round_id: int, ctx: bytes = b"") -> bytes:
    """BLAKE2b-256(key, "tinyfed/v1/" || u8 len(label) || label || u32le(round) || ctx)."""
    lab = label.encode("ascii")
    if not 1 <= len(lab) <= 255:
        raise ValueError("label must be 1..255 bytes")
    msg = DOMAIN + bytes([len(lab)]) + lab + _u32(round_id, "round") + bytes(ctx)
    return hashlib.blake2b(msg, key=_key32(key), digest_size=32).digest()


def agree(secret_key: bytes, own_public_key: bytes, peer_public_key: bytes, label: str,
          round_id: int) -> bytes:
    """KDF(X25519(sk, peer), label, round, min(pks) || max(pks)).

    Raises
    ------
    CryptoError
        The peer's key is ours, or low-order (all-zero X25519 output).
    """
    own, peer = _key32(own_public_key, "own public key"), _key32(peer_public_key, "peer public key")
    if ct_equal(own, peer):
        raise CryptoError("peer public key equals our own")
    raw = x25519(secret_key, peer)
    lo, hi = sorted((own, peer))
    return kdf(raw, label, round_id, lo + hi)


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison (``hmac.compare_digest``)."""
    return hmac.compare_digest(bytes(a), bytes(b))


# ---------------------------------------------------------------- PRG and masks


def chacha20_keystream(key: bytes, nonce12: bytes, counter: int, nbytes: int) -> bytes:
    """RFC 8439 ChaCha20 keystream (cryptography's 16-byte nonce = LE counter || nonce)."""
    if len(nonce12) != 12:
        raise ValueError("nonce must be 12 bytes")
    enc = Cipher(algorithms.ChaCha20(_key32(key), _u32(counter, "counter") + bytes(nonce12)), mode=None).encryptor()
    return enc.update(bytes(nbytes))


def prg(key: bytes, n: int, word_offset: int = 0) -> np.ndarray:
    """Words ``[word_offset, word_offset + n)`` of PRG(key) as uint32."""
    if n < 0 or word_offset < 0:
        raise ValueError("n and word_offset must be >= 0")
    block, skip = divmod(int(word_offset), _WORDS_PER_BLOCK)
    stream = chacha20_keystream(key, bytes(12), block, 4 * (skip + n))
    return np.frombuffer(stream, dtype="<u4")[skip:].astype(np.uint32)


def pair_sign(self_id: int, peer_id: int) -> int:
    """+1 if self_id < peer_id, -1 if greater; ``ValueError`` if equal."""
    if self_id == peer_id:
        raise ValueError(f"client {self_id} cannot pair with itself")
    return 1 if self_id < peer_id else -1


def self_mask(self_seed: bytes, round_id: int, n: int, word_offset: int = 0) -> np.ndarray:
    """PRG(KDF(seed, "self-mask", round)) words ``[word_offset, word_offset + n)``."""
    return prg(kdf(self_seed, LABEL_SELF_MASK, round_id), n, word_offset)


def pair_mask_key(mask_sk: bytes, mask_pk: bytes, peer_pk: bytes, round_id: int) -> bytes:
    """The pairwise mask key s_uv of two clients (symmetric)."""
    return agree(mask_sk, mask_pk, peer_pk, LABEL_PAIR_MASK, round_id)


def pair_masks(self_id: int, mask_sk: bytes, mask_pk: bytes, peers: Sequence[tuple[int, bytes]],
               round_id: int, n: int, word_offset: int = 0) -> np.ndarray:
    """Sum over peers ``(id, mask public key)`` of sign(self, id) * PRG(s_uv), mod 2^32."""
    for pid, _ in peers:
        pair_sign(self_id, pid)  # refuses our own id before any work
    acc = np.zeros(n, dtype=np.uint32)
    for pid, ppk in peers:
        words = prg(pair_mask_key(mask_sk, mask_pk, ppk, round_id), n, word_offset)
        acc = acc + words if pair_sign(self_id, pid) > 0 else acc - words
    return acc.astype(np.uint32)


# ---------------------------------------------------------------- XChaCha20-Poly1305


def hchacha20(key: bytes, in16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2) from a ChaCha20 block.

    A ChaCha20 block is rounds(S) + S with S = sigma || key || in16 (the 16
    bytes are state words 12..15: cryptography's 16-byte nonce).  HChaCha20
    is words 0..3 and 12..15 of rounds(S), so subtract the known words of S.
    """
    if len(in16) != 16:
        raise ValueError("HChaCha20 input must be 16 bytes")
    block = Cipher(algorithms.ChaCha20(_key32(key), bytes(in16)), mode=None).encryptor().update(bytes(64))
    out = np.frombuffer(block, dtype="<u4").astype(np.uint64)
    state = np.array([*_SIGMA, *struct.unpack("<4I", bytes(in16))], dtype=np.uint64)
    words = (np.concatenate([out[0:4], out[12:16]]) - state) % (1 << 32)
    return words.astype("<u4").tobytes()


def xchacha20poly1305_seal(key: bytes, nonce24: bytes, ad: bytes, plaintext: bytes) -> bytes:
    """AEAD_XChaCha20_Poly1305: ciphertext || tag (= Monocypher crypto_aead_lock)."""
    if len(nonce24) != NONCE_BYTES:
        raise ValueError("nonce must be 24 bytes")
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(bytes(4) + bytes(nonce24[16:]), bytes(plaintext), bytes(ad))


def xchacha20poly1305_open(key: bytes, nonce24: bytes, ad: bytes, sealed: bytes) -> bytes:
    """Inverse of ``xchacha20poly1305_seal``; ``CryptoError`` unless authentic."""
    if len(nonce24) != NONCE_BYTES:
        raise ValueError("nonce must be 24 bytes")
    if len(sealed) < MAC_BYTES:
        raise CryptoError("sealed message shorter than its tag")
    sub = hchacha20(key, nonce24[:16])
    try:
        return ChaCha20Poly1305(sub).decrypt(bytes(4) + bytes(nonce24[16:]), bytes(sealed), bytes(ad))
    except InvalidTag as exc:
        raise CryptoError("authentication failed") from exc


def share_ad(sender: int, receiver: int, round_id: int) -> bytes:
    """Associated data of a sealed share: prefix || u32le sender || receiver || round."""
    return AD_PREFIX + _u32(sender, "sender") + _u32(receiver, "receiver") + _u32(round_id, "round")


def seal_share(key: bytes, nonce24: bytes, sender: int, receiver: int, round_id: int,
               plaintext: bytes) -> bytes:
    """``tfd_sa_seal``: ciphertext || mac."""
    return xchacha20poly1305_seal(key, nonce24, share_ad(sender, receiver, round_id), plaintext)


def open_share(key: bytes, nonce24: bytes, sender: int, receiver: int, round_id: int,
               sealed: bytes) -> bytes:
    """``tfd_sa_open``; ``CryptoError`` on any tampering, wrong key, ids or round."""
    return xchacha20poly1305_open(key, nonce24, share_ad(sender, receiver, round_id), sealed)
