"""Fixed-point encoding of model updates into Z_{2^32}: the host reference of
``firmware/src/secagg/encode.c`` and the server's decoding of a sum.

Arithmetic (also at the top of ``firmware/include/tfd/secagg.h``), with C the
clip rounded to float32, f fraction bits, w the client's sample count and W
``weight_max``::

    s   = sum_i (double)x_i^2              sequential float64 sum
    g   = (1 if sqrt(s) <= C else C / sqrt(s)) * (w / W)
    v_i = x_i * (g * 2^f)
    q_i = floor((floor(v_i 2^32) + r_i) / 2^32)     r_i: word i of PRG(KDF(noise_key,
        = floor(v_i + r_i 2^-32)                      "stoch-round", round))
    q_i = clamp(q_i, -B, B),  B = floor(C 2^f) + 1  (B <= 2^31 - 1 required)
    words = (q mod 2^32) || the TFD_SUMMED scalars of wire.def (w first)

(v_i 2^32 is exact and |v_i| < 2^31, so the rounding is exact int64 work.)

Bound: with ``n_max * B <= 2^31 - 1`` and ``n_max * W <= 2^32 - 1``
(``check_encoding``) the sum of up to ``n_max`` encodings never wraps, so the
server reads it as int32: ``decode_sum`` returns (sum_u g_u x_u, sum_u w_u) and
``weighted_mean`` W * that / sum w, the FedAvg mean of the (clipped) updates.
Stochastic rounding is unbiased up to 2^-32 per word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from tinyfed_toolchain.facts.wire_table import WIRE

from .primitives import LABEL_ROUNDING, kdf, pair_masks, prg, self_mask

#: the scalars summed with the update, words n, n+1, ... of an encoding (wire.def TFD_SUMMED)
SUMMED: tuple[str, ...] = WIRE.summed
N_SUMMED = len(SUMMED)
WEIGHT_WORD = SUMMED.index("weight")  # index of the weight among the summed words

MAX_FRAC_BITS = 30
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class Encoding:
    """Encoding parameters: L2 clip C, fraction bits f, largest weight W."""

    clip: float
    frac_bits: int
    weight_max: int = 1
    dp_z_milli: int = 0   # distributed DP: the devices' noise multiplier x 1000 (0: none; dp_device.py)

    def __post_init__(self) -> None:
        c = float(np.float32(self.clip))
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"clip must be finite and > 0 (as float32), got {self.clip}")
        if not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ValueError(f"frac_bits must be 0..{MAX_FRAC_BITS}, got {self.frac_bits}")
        if not 1 <= self.weight_max <= UINT32_MAX:
            raise ValueError("weight_max must be 1..2^32-1")
        if not 0 <= self.dp_z_milli <= UINT32_MAX:
            raise ValueError("dp_z_milli must be 0..2^32-1")

    @property
    def clip32(self) -> float:
        """The clip as the device holds it (float32), widened to float64."""
        return float(np.float32(self.clip))

    @property
    def bound(self) -> float:
        """B = floor(C 2^f) + 1: the largest |word| of one encoding."""
        return word_bound(self.clip32, self.frac_bits)


def word_bound(clip: float, frac_bits: int) -> float:
    return math.floor(float(np.float32(clip)) * float(1 << frac_bits)) + 1.0


def check_encoding(n_max: int, enc: Encoding) -> None:
    """Raise ``OverflowError`` if the sum of ``n_max`` encodings could wrap."""
    if n_max < 1:
        raise ValueError("n_max must be >= 1")
    if float(n_max) * enc.bound > INT32_MAX:
        raise OverflowError(f"{n_max} x (floor(C 2^f) + 1) = {n_max * enc.bound:.0f} exceeds 2^31 - 1: "
                            f"lower frac_bits (choose_fraction_bits) or the clip")
    if n_max * enc.weight_max > UINT32_MAX:
        raise OverflowError(f"{n_max} x weight_max {enc.weight_max} exceeds 2^32 - 1")


def choose_fraction_bits(n_max: int, clip: float) -> int:
    """Largest f <= 30 with n_max * (floor(C 2^f) + 1) <= 2^31 - 1."""
    if n_max < 1:
        raise ValueError("n_max must be >= 1")
    Encoding(clip, 0)  # validates the clip
    for f in range(MAX_FRAC_BITS, -1, -1):
        if float(n_max) * word_bound(clip, f) <= INT32_MAX:
            return f
    raise OverflowError(f"no fraction bits let {n_max} updates of norm {clip} sum without wrapping")


def encoding_scale(update: np.ndarray, enc: Encoding, weight: int) -> float:
    """g * 2^f of one update (see the module docstring)."""
    x = np.asarray(update, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("the update has non-finite values")
    if not 1 <= weight <= enc.weight_max:
        raise ValueError(f"weight must be 1..{enc.weight_max}, got {weight}")
    d = x.astype(np.float64)
    sumsq = float(np.add.accumulate(d * d)[-1]) if d.size else 0.0  # sequential, as in C
    norm = math.sqrt(sumsq)
    clip = enc.clip32
    g = (1.0 if norm <= clip else clip / norm) * (float(weight) / float(enc.weight_max))
    return g * float(1 << enc.frac_bits)


def n_words(n_params: int) -> int:
    """Words of an encoding of ``n_params`` values: the update, then the summed scalars (TFD_SA_WORDS)."""
    return int(n_params) + N_SUMMED


def encode(update: np.ndarray, enc: Encoding, weight: int, noise_key: bytes, round_id: int,
           summed: Mapping[str, int] | None = None) -> np.ndarray:
    """The ``n_words(n)`` words of ``tfd_sa_encode`` (uint32): the update, then the TFD_SUMMED
    scalars (``weight``, then ``summed[name]`` for the others, 0 if not given)."""
    x = np.asarray(update, dtype=np.float32).ravel()
    check_encoding(1, enc)  # B <= 2^31 - 1: |v| < 2^31
    scale = encoding_scale(x, enc, weight)
    r = prg(kdf(noise_key, LABEL_ROUNDING, round_id), x.size)
    v = x.astype(np.float64) * scale
    v_fixed = np.floor(v * 4294967296.0).astype(np.int64)  # exact: |v 2^32| < 2^63
    q = (v_fixed + r.astype(np.int64)) >> 32  # arithmetic shift = floor division
    b = int(enc.bound)
    q = np.clip(q, -b, b)
    words = np.empty(n_words(x.size), dtype=np.uint32)
    words[:x.size] = (q & 0xFFFFFFFF).astype(np.uint32)
    extra = dict(summed or {})
    unknown = set(extra) - set(SUMMED)
    if unknown:
        raise ValueError(f"not TFD_SUMMED scalars: {sorted(unknown)}")
    for i, name in enumerate(SUMMED):
        words[x.size + i] = weight if name == "weight" else int(extra.get(name, 0)) & 0xFFFFFFFF
    return words


def decode_sum(sum_words: np.ndarray, enc: Encoding) -> tuple[np.ndarray, int]:
    """(sum_u g_u x_u as float64, sum_u w_u) from the unmasked sum of encodings."""
    w = np.asarray(sum_words, dtype=np.uint32)
    if w.ndim != 1 or w.size < N_SUMMED:
        raise ValueError(f"expected n + {N_SUMMED} words")
    n = w.size - N_SUMMED
    values = w[:n].view(np.int32).astype(np.float64) / float(1 << enc.frac_bits)
    return values, int(w[n + WEIGHT_WORD])


def summed_totals(sum_words: np.ndarray) -> dict[str, int]:
    """The sums of the TFD_SUMMED scalars (mod 2^32) from the unmasked sum."""
    w = np.asarray(sum_words, dtype=np.uint32)
    n = w.size - N_SUMMED
    return {name: int(w[n + i]) for i, name in enumerate(SUMMED)}


def weighted_mean(sum_words: np.ndarray, enc: Encoding) -> np.ndarray:
    """FedAvg mean W * sum_u g_u x_u / sum_u w_u (float64)."""
    values, total = decode_sum(sum_words, enc)
    if total <= 0:
        raise ValueError("total weight is zero")
    return values * (float(enc.weight_max) / float(total))


def masked_input(update: np.ndarray, enc: Encoding, weight: int, noise_key: bytes, round_id: int,
                 self_id: int, self_seed: bytes, mask_sk: bytes, mask_pk: bytes,
                 peers: Sequence[tuple[int, bytes]]) -> np.ndarray:
    """encode(update) || the summed scalars + self mask + pairwise masks (``n_words(n)`` uint32 words)."""
    words = encode(update, enc, weight, noise_key, round_id)
    n = len(words)
    out: np.ndarray = words + self_mask(self_seed, round_id, n)
    out = out + pair_masks(self_id, mask_sk, mask_pk, peers, round_id, n)
    return out.astype(np.uint32)
