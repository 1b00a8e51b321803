"""Shamir secret sharing of 32-byte secrets over GF(2^8): the host reference
of ``tfd_sa_shamir_split`` / ``tfd_sa_shamir_combine`` (firmware/src/secagg/shamir.c).

Field GF(2)[x] / (x^8 + x^4 + x^3 + x + 1) (0x11B, AES), byte-wise: byte j of
the secret is P_j(0) with P_j(x) = secret[j] + sum_{c=1}^{t-1} a_{c,j} x^c,
a_{c,j} = rand[32 (c - 1) + j]; holder h = 1..k gets y_h[j] = P_j(h).  Any t
shares give the secret by Lagrange interpolation at 0; t - 1 shares say
nothing about it (each byte is a fresh random polynomial).  The randomness is
the caller's, so vectors are reproducible.  (Python ints are not constant
time; the device side is.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SECRET_BYTES = 32
MAX_HOLDERS = 255


def gf_mul(a: int, b: int) -> int:
    """Product in GF(2^8) mod 0x11B."""
    p = 0
    for _ in range(8):
        if b & 1:
            p ^= a
        carry = a & 0x80
        a = (a << 1) & 0xFF
        if carry:
            a ^= 0x1B
        b >>= 1
    return p


def gf_inv(a: int) -> int:
    """Inverse in GF(2^8) (a^254); a must be nonzero."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    r, sq = 1, a
    for _ in range(7):
        sq = gf_mul(sq, sq)
        r = gf_mul(r, sq)
    return r


def split(secret: bytes, t: int, k: int, rand: bytes) -> list[bytes]:
    """Shares of holders x = 1..k (list index = x - 1), threshold t.

    ``rand`` is exactly 32 (t - 1) bytes: the polynomial coefficients.
    """
    if len(secret) != SECRET_BYTES:
        raise ValueError("the secret must be 32 bytes")
    if not 1 <= t <= k <= MAX_HOLDERS:
        raise ValueError(f"need 1 <= t <= k <= {MAX_HOLDERS}, got t={t} k={k}")
    if len(rand) != SECRET_BYTES * (t - 1):
        raise ValueError(f"rand must be {SECRET_BYTES * (t - 1)} bytes, got {len(rand)}")
    shares = []
    for x in range(1, k + 1):
        share = bytearray(SECRET_BYTES)
        for j in range(SECRET_BYTES):
            y = 0
            for c in range(t - 1, 0, -1):
                y = gf_mul(y ^ rand[SECRET_BYTES * (c - 1) + j], x)
            share[j] = y ^ secret[j]
        shares.append(bytes(share))
    return shares


def combine(xs: Sequence[int], shares: Sequence[bytes]) -> bytes:
    """P(0) from shares at distinct nonzero xs (Lagrange interpolation)."""
    m = len(xs)
    if m != len(shares) or not 1 <= m <= MAX_HOLDERS:
        raise ValueError("need 1..255 shares, one per x")
    if any(not 1 <= x <= 255 for x in xs) or len(set(xs)) != m:
        raise ValueError("x coordinates must be distinct and in 1..255")
    if any(len(s) != SECRET_BYTES for s in shares):
        raise ValueError("shares must be 32 bytes")
    acc = bytearray(SECRET_BYTES)
    for i in range(m):
        num = den = 1
        for j in range(m):
            if j != i:
                num = gf_mul(num, xs[j])
                den = gf_mul(den, xs[j] ^ xs[i])
        li = gf_mul(num, gf_inv(den))
        for b in range(SECRET_BYTES):
            acc[b] ^= gf_mul(li, shares[i][b])
    return bytes(acc)


# ---- many secrets at once (the server rebuilding every survivor's seed) -----------------------------
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """exp / log of GF(2^8) for the generator 3 (exp doubled: a sum of two logs needs no modulo)."""
    exp = np.zeros(512, dtype=np.uint8)
    log = np.zeros(256, dtype=np.int32)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x = gf_mul(x, 3)
    exp[255:510] = exp[:255]
    return exp, log


_EXP, _LOG = _tables()


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """The Lagrange coefficients l_i with P(0) = sum_i l_i y_i for shares at ``xs``."""
    out = []
    for i in range(len(xs)):
        num = den = 1
        for j in range(len(xs)):
            if j != i:
                num = gf_mul(num, xs[j])
                den = gf_mul(den, xs[j] ^ xs[i])
        out.append(gf_mul(num, gf_inv(den)))
    return out


def combine_many(xs_rows: Sequence[Sequence[int]], shares: np.ndarray) -> np.ndarray:
    """:func:`combine` for m secrets at once: row r has shares ``shares[r]`` ([m, t, 32] uint8)
    at ``xs_rows[r]`` (t distinct x in 1..255 each); returns the m secrets ([m, 32] uint8).
    Rows with the same x tuple share their Lagrange coefficients."""
    sh = np.asarray(shares, dtype=np.uint8)
    m = len(xs_rows)
    if sh.ndim != 3 or sh.shape[0] != m or sh.shape[2] != SECRET_BYTES:
        raise ValueError(f"shares must be [{m}, t, {SECRET_BYTES}] bytes")
    t = sh.shape[1]
    coeff: dict[tuple[int, ...], list[int]] = {}
    lam = np.empty((m, t), dtype=np.int32)
    for r, xs in enumerate(xs_rows):
        key = tuple(int(x) for x in xs)
        if len(key) != t or len(set(key)) != t or any(not 1 <= x <= 255 for x in key):
            raise ValueError("x coordinates must be t distinct values in 1..255 per row")
        if key not in coeff:
            coeff[key] = lagrange_at_zero(key)
        lam[r] = coeff[key]
    prod = np.where(sh != 0, _EXP[_LOG[sh] + _LOG[lam][:, :, None]], 0).astype(np.uint8)
    return np.bitwise_xor.reduce(prod, axis=1)
