"""Distributed DP: the Python mirror of the device's noise (firmware/src/secagg/dp_noise.c,
``tfd/secagg_dp.h`` has the algorithm) and its calibration.

Every function here produces the same integers as the C code from the same inputs: the
truncated exact discrete Gaussian of Canonne, Kamath & Steinke 2020 drawn from the words
of a ChaCha20 stream (``primitives.prg``), the sensitivity ``Delta`` of one encoded update,
the per-device ``s2 = sigma^2`` and the word bound ``B + L``.  The host uses the
calibration to choose the encoding (no wrap) and to account; the sampler itself runs on
the devices (the host never adds this noise) -- here it gives the cross-language vectors.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from .encoding import N_SUMMED
from .primitives import prg

#: the truncation: |Y| <= TAIL * tt, tt = floor(sqrt(s2)) + 1 (tfd/secagg_dp.h TFD_DP_TAIL)
TAIL = 16
#: the largest tt a device accepts (TFD_DP_MAX_TT)
MAX_TT = 1 << 26
INT32_MAX = (1 << 31) - 1


class WordStream:
    """The uint32 words of PRG(key), in order (tfd_dp_rng_t)."""

    def __init__(self, key: bytes) -> None:
        self.key = bytes(key)
        self.block = 0
        self.buf: list[int] = []
        self.words = 0

    def word(self) -> int:
        if not self.buf:
            self.buf = [int(w) for w in prg(self.key, 16, 16 * self.block)][::-1]
            self.block += 1
        self.words += 1
        return self.buf.pop()

    def bits(self, k: int) -> int:
        """The low k bits (1 <= k <= 128) of the next ceil(k / 32) words, little endian."""
        v = 0
        for i in range((k + 31) // 32):
            v |= self.word() << (32 * i)
        return v & ((1 << k) - 1)

    def uniform(self, m: int) -> int:
        k = (m - 1).bit_length()
        if k == 0:
            return 0
        while True:
            v = self.bits(k)
            if v < m:
                return v


def _bern(r: WordStream, n: int, d: int) -> bool:
    return r.uniform(d) < n


def _bexp1(r: WordStream, n: int, d: int) -> int:
    k = 1
    while True:
        if not _bern(r, n, d):
            break
        if r.uniform(k) != 0:
            break
        k += 1
    return k & 1


def _bexp(r: WordStream, n: int, d: int) -> int:
    while n > d:
        if not _bexp1(r, 1, 1):
            return 0
        n -= d
    return _bexp1(r, n, d)


def _dlap(r: WordStream, tt: int) -> int:
    while True:
        u = r.uniform(tt)
        if not _bexp1(r, u, tt):
            continue
        v = 0
        while _bexp1(r, 1, 1):
            v += 1
            if v > TAIL:
                break
        if v > TAIL:
            continue
        x = u + tt * v
        neg = r.bits(1)
        if neg and x == 0:
            continue
        return -x if neg else x


class DeviceGaussian:
    """N_Z(0, s2) truncated to |Y| <= 16 tt, from the words of PRG(key) (tfd_dp_gauss_t)."""

    def __init__(self, s2: int) -> None:
        s2 = int(s2)
        if s2 < 1:
            raise ValueError("s2 must be >= 1")
        self.s2 = s2
        self.tt = math.isqrt(s2) + 1
        if self.tt > MAX_TT:
            raise OverflowError(f"sigma^2 = {s2} is too large for a device (tt > 2^26)")
        self.limit = TAIL * self.tt

    def sample(self, r: WordStream) -> int:
        tt, s2 = self.tt, self.s2
        den = 2 * s2 * tt * tt
        while True:
            y = _dlap(r, tt)
            a = abs(y)
            if a > self.limit:
                continue
            if _bexp(r, (a * tt - s2) ** 2, den):
                return y

    def samples(self, key: bytes, n: int) -> tuple[list[int], int]:
        """n draws from the stream of key, and the words they used."""
        r = WordStream(key)
        return [self.sample(r) for _ in range(n)], r.words


def _clip_parts(clip: float) -> tuple[int, int]:
    """clip (as float32) = mant 2^e exactly."""
    bits = struct.unpack("<I", struct.pack("<f", clip))[0]
    ef = (bits >> 23) & 0xFF
    if bits >> 31 or ef == 0xFF or bits & 0x7FFFFFFF == 0:
        raise ValueError("clip must be a positive finite float32")
    mant = (bits & 0x7FFFFF) | (1 << 23) if ef else bits & 0x7FFFFF
    return mant, (ef if ef else 1) - 150


def _ceil_pow2(m: int, e: int) -> int:
    return m << e if e >= 0 else -((-m) >> -e)


def sensitivity(clip: float, frac_bits: int, dim: int) -> int:
    """Delta = ceil(C 2^f) + ceil(C 2^f (d + 8) / 2^53) + ceil(sqrt(d)) (tfd_dp_sensitivity)."""
    if dim < 1 or not 0 <= frac_bits <= 30:
        raise ValueError("need d >= 1 and 0 <= f <= 30")
    mant, e = _clip_parts(clip)
    e += frac_bits
    if e > 15:
        raise OverflowError("C 2^f too large")
    root = math.isqrt(dim)
    return _ceil_pow2(mant, e) + _ceil_pow2(mant * (dim + 8), e - 53) + root + (root * root != dim)


def sigma_sq(z_milli: int, delta: int, m: int) -> int:
    """s2 = ceil(ceil(z_milli Delta / 1000)^2 / (m - 1)) (tfd_dp_sigma_sq)."""
    if z_milli < 1 or m < 2 or delta < 1:
        raise ValueError("need z_milli >= 1, m >= 2, Delta >= 1")
    s = -(-(z_milli * delta) // 1000)
    if s > 0xFFFFFFFF:
        raise OverflowError("noise too large for a device (s >= 2^32)")
    return -(-(s * s) // (m - 1))


def word_bound(clip: float, frac_bits: int, s2: int) -> int:
    """B' + L: the largest |word| of one noised encoding (tfd_dp_word_bound; B' = Delta(d = 1) >= B)."""
    return sensitivity(clip, frac_bits, 1) + DeviceGaussian(s2).limit


def device_sigma_sq(clip: float, frac_bits: int, dim: int, z_milli: int, m: int) -> int:
    """The s2 a device computes for its update of ``dim`` words (sensitivity, then sigma_sq);
    ``OverflowError`` where the device refuses (TFD_ERR_OVERFLOW), word bound included."""
    s2 = sigma_sq(z_milli, sensitivity(clip, frac_bits, dim), m)
    if word_bound(clip, frac_bits, s2) > INT32_MAX:
        raise OverflowError("a noised word could exceed 2^31 - 1")
    return s2


def add_device_noise(words: np.ndarray, enc, threshold: int, key: bytes) -> np.ndarray:
    """The client's MASKED_INPUT step (protocol.c sa_add_dp_noise): the first d words (the
    update; the summed scalars after them stay exact) + one draw each from the stream of key."""
    d = int(words.size) - N_SUMMED
    s2 = device_sigma_sq(enc.clip32, enc.frac_bits, d, enc.dp_z_milli, threshold)
    ys, _ = DeviceGaussian(s2).samples(key, d)
    out = np.asarray(words, dtype=np.uint32).copy()
    out[:d] = (out[:d].astype(np.int64) + np.array(ys, dtype=np.int64)) % (1 << 32)
    return out.astype(np.uint32)


__all__ = ["DeviceGaussian", "MAX_TT", "TAIL", "WordStream", "add_device_noise", "device_sigma_sq", "sensitivity",
           "sigma_sq", "word_bound"]
