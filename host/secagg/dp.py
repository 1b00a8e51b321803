"""Differential privacy for securely aggregated rounds: exact discrete Gaussian
noise added by the host to the unmasked *integer* sum, and the (epsilon, delta)
of a run from an RDP accountant (Google's ``dp_accounting``).

Mechanism (one round)
---------------------
SecAgg+ yields ``S = sum_u q_u`` exactly, where ``q_u in Z^d`` is client u's
fixed-point encoding (``encoding.py``: x_u clipped to L2 norm C, scaled by
g_u = clip factor * w_u / W <= 1 and by 2^f, stochastically rounded).  The host
releases ``S + Y`` with ``Y ~ N_Z(0, sigma^2)^d`` i.i.d. discrete Gaussians and
decodes ``(S + Y) / 2^f`` (then divides by the un-noised total weight).

Sensitivity, in integer units (add / remove one client)::

    Delta = C 2^f + sqrt(d)

since ``||q_u||_2 <= ||v_u||_2 + ||q_u - v_u||_2 < C 2^f + sqrt(d)``: the
unrounded ``v_u = g_u 2^f x_u`` has norm <= C 2^f, and stochastic rounding
(then clamping towards zero) moves each of the d coordinates by < 1.  The
rounding term is not negligible in principle (an update of tiny norm can round
to a vector of norm ~sqrt(p d) -- tests/test_secagg_dp.py shows one), so it is
part of the calibration.  :func:`sensitivity_bound` returns an exact dyadic
rational >= Delta: C 2^f is widened by the relative float64 error of the
clip computation ((d + 8) 2^-53, from the sequential sum of squares, the sqrt,
the division and the product) and sqrt(d) is rounded up.

Noise: ``sigma = z Delta`` for noise multiplier z; ``sigma^2`` is computed as an
exact rational from the (exact) binary values of z, C and the bound above and
rounded UP to 64 significant bits (:func:`calibrate`), so the noise is never
less than promised.

Sampler: :func:`discrete_gaussian` is the exact rejection sampler of Canonne,
Kamath & Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS
2020, arXiv:2004.00010), Algorithms 1-3: Bernoulli(exp(-gamma)) by von
Neumann's series trick, a discrete Laplace of scale t = floor(sigma) + 1, then
acceptance with probability exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)).  It uses
Python integers only (every probability is a ratio of integers, every
Bernoulli a comparison of a uniform integer), so the output distribution is
exactly N_Z(0, sigma^2) given uniform bits -- no floating point, hence none of
the low-order-bit leaks Mironov (CCS 2012) showed for floating-point noise.
The bits come from the OS CSPRNG (``os.urandom``, buffered, refilled after a
fork) unless a deterministic source is injected for tests.

Accounting
----------
CKS20 Theorem 14 (multivariate discrete Gaussian): adding ``N_Z(0, sigma^2)^d``
to a query ``Z^d``-valued with L2 sensitivity Delta is rho-zCDP with
``rho = Delta^2 / (2 sigma^2) = 1 / (2 z^2)``, i.e. RDP
``eps(alpha) = alpha / (2 z^2)`` -- exactly the continuous Gaussian's RDP curve.
So each round is accounted as ``GaussianDpEvent(z)`` and T rounds compose to
``T alpha / (2 z^2)``; dp_accounting converts that to (epsilon, delta) with the
CKS20 Proposition 12 conversion, which holds for any mechanism with that RDP.

No amplification by subsampling is claimed, whatever the participation rate
q = participants / fleet (it is still reported):

* tinyfed does not Poisson-sample participants with secret coins: every
  reachable device trains, and who took part (and who dropped) is visible to
  the host and the devices, so the premise of amplification does not hold;
* dp_accounting's Poisson-sampled Gaussian RDP is computed from the continuous
  Gaussian's density, not from its RDP curve, so it would not transfer to
  N_Z as is.  Should the host ever sample participants secretly, the generic
  bound for Poisson-subsampled RDP of any mechanism (Zhu & Wang, ICML 2019)
  applies to the discrete Gaussian's RDP curve and is the honest upgrade.

Without amplification, a client absent from a round loses nothing in it, so
composing T full Gaussian rounds upper-bounds every client's loss.

Why central and not distributed (discrete Gaussian / Skellam on devices)
-----------------------------------------------------------------------
* the accounting above is exact for what is implemented (the sensitivity
  includes the rounding; the sampler is exact); distributed discrete noise
  needs the looser accounting of sums of discrete Gaussians / Skellam with
  modular clipping (Kairouz, Liu & Steinke 2021; Agarwal, Kairouz & Liu 2021)
  and extra ring headroom -- 32-bit words with our n_max B <= 2^31 - 1 no-wrap
  bound leave little of it (the central noise is added after unmasking, in
  int64, so it needs none);
* dropouts would remove part of a distributed noise budget (each device adds
  only its share of the variance), weakening the guarantee exactly when the
  fleet is unreliable; the central noise is always complete;
* a microcontroller would need an exact sampler and a CSPRNG budget per
  parameter per round; the host has both;
* cost: the noise is added by the host AFTER unmasking, so the guarantee
  holds against whoever sees the released model (and later rounds), not
  against the aggregating host itself -- secure aggregation already limits
  that host to the sum.  Distributed noise is the upgrade when the host must
  not see even an exact sum.

Outside the guarantee: the sample-count word of the sum (total weight) and
W = the largest participant weight (it sets the encoding) are released exactly;
they reveal how many samples took part, not their values.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational
from typing import Any, Callable

import numpy as np

from .encoding import Encoding, n_words

#: a source of uniform random bits: ``randbits(k)`` is uniform in [0, 2^k) (k >= 1)
RandBits = Callable[[int], int]

MECHANISM = "discrete_gaussian (central, host, after unmasking)"


# ---------------------------------------------------------------------------------------- randomness

_LIVE_SOURCES: "weakref.WeakSet[SystemRandomBits]" = weakref.WeakSet()


def _reset_after_fork() -> None:
    for src in list(_LIVE_SOURCES):
        src._discard()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class SystemRandomBits:
    """Uniform bits from the OS CSPRNG (``os.urandom``), read 16 KiB at a time.

    Buffering only saves system calls: every bit is still a CSPRNG bit and is
    used once.  A forked child discards the inherited buffer (it would
    otherwise repeat its parent's noise).
    """

    _CHUNK_WORDS = 2048

    def __init__(self) -> None:
        self._words: memoryview = memoryview(b"").cast("Q")
        self._next = 0
        self._acc = 0     # unused bits of the current 64-bit word
        self._avail = 0   # how many
        _LIVE_SOURCES.add(self)

    def _discard(self) -> None:
        self._words = memoryview(b"").cast("Q")
        self._next = self._acc = self._avail = 0

    def _word(self) -> int:
        if self._next >= len(self._words):
            self._words = memoryview(os.urandom(8 * self._CHUNK_WORDS)).cast("Q")
            self._next = 0
        w = self._words[self._next]
        self._next += 1
        return w

    def __call__(self, k: int) -> int:
        if k <= self._avail:
            acc = self._acc
            self._acc = acc >> k
            self._avail -= k
            return acc & ((1 << k) - 1)
        if k <= 64:  # leftover bits are dropped (which ones survive does not depend on their values)
            w = self._word()
            self._acc = w >> k
            self._avail = 64 - k
            return w & ((1 << k) - 1)
        r, got = 0, 0
        while got < k:
            r |= self._word() << got
            got += 64
        return r & ((1 << k) - 1)


# ------------------------------------------------------------------------------------------ sampler


def _check_sigma_sq(sigma_sq: Rational | int | float) -> Fraction:
    s = Fraction(sigma_sq)  # exact for ints, Fractions and floats alike
    if s <= 0:
        raise ValueError("sigma^2 must be > 0")
    return s


class DiscreteGaussian:
    """Exact sampler of N_Z(0, sigma^2) (CKS20 Algorithms 1-3), integer arithmetic only.

    Parameters
    ----------
    sigma_sq:
        sigma^2 as an exact rational (``Fraction`` or ``int``; a float is taken at its exact
        binary value).
    randbits:
        source of uniform bits, ``randbits(k) -> int in [0, 2^k)``; default: the OS CSPRNG.
        Inject a deterministic one (e.g. ``random.Random(seed).getrandbits``) only in tests.
    """

    def __init__(self, sigma_sq: Rational | int | float, randbits: RandBits | None = None) -> None:
        s = _check_sigma_sq(sigma_sq)
        self.sigma_sq = s
        self.randbits: RandBits = randbits if randbits is not None else SystemRandomBits()
        num, den = s.numerator, s.denominator
        # t = floor(sigma) + 1 (floor(sqrt(x)) == isqrt(floor(x)) for real x >= 0)
        self.t = math.isqrt(num // den) + 1
        # acceptance exp(-(|y| - sigma^2/t)^2 / (2 sigma^2)) = exp(-(|y| t den - num)^2 / (2 num den t^2))
        self._scale = self.t * den
        self._num = num
        self._gden = 2 * num * den * self.t * self.t

    # -- building blocks (each exact given uniform bits) ----------------------------------------------
    def uniform(self, m: int) -> int:
        """Uniform integer in [0, m), m >= 1, by rejection."""
        k = (m - 1).bit_length()
        if k == 0:
            return 0
        rb = self.randbits
        while True:
            r = rb(k)
            if r < m:
                return r

    def bernoulli_exp(self, n: int, d: int) -> int:
        """Bernoulli(exp(-n/d)) for integers n >= 0, d >= 1 (CKS20 Algorithm 1)."""
        q, n = divmod(n, d)
        for _ in range(q):  # exp(-gamma) = exp(-1)^floor(gamma) * exp(-frac(gamma))
            if not self._bernoulli_exp_minus_one():
                return 0
        return self._bernoulli_exp_le1(n, d)

    def _bernoulli_exp_le1(self, n: int, d: int) -> int:
        """Bernoulli(exp(-n/d)) for 0 <= n <= d: K <- 1; while Bernoulli(n/(d K)): K += 1; K odd."""
        if n == 0:
            return 1
        rb = self.randbits
        k = 1
        while True:
            m = d * k
            bits = (m - 1).bit_length()
            while True:  # uniform in [0, m)
                r = rb(bits) if bits else 0
                if r < m:
                    break
            if r >= n:  # Bernoulli(n / (d k)) = 0
                return k & 1
            k += 1

    def _bernoulli_exp_minus_one(self) -> int:
        """Bernoulli(exp(-1)): the same series with gamma = 1 (its first trial always succeeds)."""
        rb = self.randbits
        k = 2
        while True:
            bits = (k - 1).bit_length()
            while True:
                r = rb(bits)
                if r < k:
                    break
            if r != 0:  # Bernoulli(1/k) = 0
                return k & 1
            k += 1

    def discrete_laplace(self) -> int:
        """P(x) proportional to exp(-|x| / t), t = floor(sigma) + 1 (CKS20 Algorithm 2, s = 1)."""
        t = self.t
        while True:
            u = self.uniform(t)
            if not self._bernoulli_exp_le1(u, t):
                continue
            v = 0
            while self._bernoulli_exp_minus_one():
                v += 1
            x = u + t * v
            if self.randbits(1):
                if x == 0:
                    continue  # -0: rejected so that 0 is not counted twice
                return -x
            return x

    def sample(self) -> int:
        """One draw from N_Z(0, sigma^2) (CKS20 Algorithm 3)."""
        scale, num, gden = self._scale, self._num, self._gden
        while True:
            y = self.discrete_laplace()
            e = abs(y) * scale - num
            if self.bernoulli_exp(e * e, gden):
                return y

    def samples(self, size: int) -> list[int]:
        """``size`` independent draws (Python ints)."""
        if size < 0:
            raise ValueError("size must be >= 0")
        draw = self.sample
        return [draw() for _ in range(size)]


def discrete_gaussian(sigma_sq: Rational | int | float, size: int,
                      randbits: RandBits | None = None) -> np.ndarray:
    """``size`` i.i.d. draws from N_Z(0, sigma^2) as int64 (see :class:`DiscreteGaussian`).

    Raises ``OverflowError`` if a draw does not fit int64 (only for sigma beyond ~1e17).
    """
    return np.array(DiscreteGaussian(sigma_sq, randbits).samples(size), dtype=np.int64)


# -------------------------------------------------------------------------------------- calibration

_SQRT_FRAC_BITS = 32
_SIGMA_SQ_BITS = 64


def sqrt_upper(n: int, frac_bits: int = _SQRT_FRAC_BITS) -> Fraction:
    """Smallest multiple of 2^-frac_bits that is >= sqrt(n)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    m = n << (2 * frac_bits)
    r = math.isqrt(m)
    if r * r < m:
        r += 1
    return Fraction(r, 1 << frac_bits)


def sensitivity_bound(clip: float, frac_bits: int, dim: int) -> Fraction:
    """Delta >= C 2^f + sqrt(d): L2 sensitivity of the integer sum to one client (exact dyadic).

    ``clip`` is the clip as the device holds it (``Encoding.clip32``).  C 2^f is widened by
    (d + 8) 2^-53 relative for the float64 arithmetic of the clip factor (module docstring).
    """
    if dim < 1:
        raise ValueError("dim must be >= 1")
    c = Fraction(float(clip)) * (1 << frac_bits)
    return c * (1 + Fraction(dim + 8, 1 << 53)) + sqrt_upper(dim)


def round_up_sigma_sq(x: Fraction, bits: int = _SIGMA_SQ_BITS) -> Fraction:
    """The smallest ``k / 2^e >= x`` with k of about ``bits`` bits (keeps the sampler's integers small)."""
    if x <= 0:
        raise ValueError("x must be > 0")
    mag = x.numerator.bit_length() - x.denominator.bit_length()  # log2(x) within 1
    e = bits - mag
    if e >= 0:
        k = -((-x.numerator << e) // x.denominator)
        return Fraction(k, 1 << e)
    k = -(-x.numerator // (x.denominator << -e))
    return Fraction(k << -e)


@dataclass(frozen=True)
class Calibration:
    """The noise of one round, in integer (fixed-point) units."""

    noise_multiplier: float
    clip: float
    frac_bits: int
    dim: int
    sensitivity: Fraction   # Delta (upper bound, exact)
    sigma_sq: Fraction      # >= (z Delta)^2, exact

    @property
    def sigma(self) -> float:
        return math.sqrt(float(self.sigma_sq))

    def as_dict(self) -> dict[str, Any]:
        scale = float(1 << self.frac_bits)
        return {"mechanism": MECHANISM, "noise_multiplier": self.noise_multiplier,
                "sensitivity": float(self.sensitivity), "sensitivity_formula": "C*2^f + sqrt(d)",
                "sigma": self.sigma, "sigma_over_sensitivity": self.sigma / float(self.sensitivity),
                "sigma_decoded": self.sigma / scale, "clip": self.clip, "frac_bits": self.frac_bits,
                "dim": self.dim}


def calibrate(noise_multiplier: float, enc: Encoding, dim: int) -> Calibration:
    """sigma = z Delta for the d = ``dim`` noised coordinates of a sum under ``enc``."""
    z = float(noise_multiplier)
    if not (z > 0 and math.isfinite(z)):
        raise ValueError("noise multiplier must be finite and > 0")
    delta = sensitivity_bound(enc.clip32, enc.frac_bits, dim)
    sigma_sq = round_up_sigma_sq((Fraction(z) * delta) ** 2)
    return Calibration(z, enc.clip32, enc.frac_bits, dim, delta, sigma_sq)


def add_noise(sum_words: np.ndarray, cal: Calibration, randbits: RandBits | None = None) -> np.ndarray:
    """The noised integer coordinates S + Y (int64) of an unmasked sum (n update words, then the summed scalars).

    S is read as int32 (``encoding.check_encoding`` guarantees it did not wrap); the noise is
    added in int64, so the noised sum is never wrapped modulo 2^32.  Decode with ``/ 2^f``.
    """
    w = np.asarray(sum_words, dtype=np.uint32)
    if w.ndim != 1 or w.size != n_words(cal.dim):
        raise ValueError(f"expected {n_words(cal.dim)} words")
    s = w[:cal.dim].view(np.int32).astype(np.int64)
    return s + discrete_gaussian(cal.sigma_sq, cal.dim, randbits)


# ---------------------------------------------------------------------------------------- accounting

#: Renyi orders: a fine grid below 8 (the optimum at large epsilon), integers to 128, a few large ones
_ORDERS = [1.0 + k / 32 for k in range(1, 225)] + [float(a) for a in (*range(9, 129), 160, 192, 256, 384, 512, 1024)]


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """epsilon after ``rounds`` rounds, each rho = 1/(2 z^2) zCDP (module docstring: no amplification)."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if not (noise_multiplier >= 0 and not math.isnan(noise_multiplier)):
        raise ValueError("noise multiplier must be >= 0")
    if rounds == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    acc = RdpAccountant(orders=_ORDERS)
    acc.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), rounds))
    return float(acc.get_epsilon(delta))


__all__ = ["Calibration", "DiscreteGaussian", "MECHANISM", "RandBits", "SystemRandomBits", "add_noise",
           "calibrate", "discrete_gaussian", "epsilon", "round_up_sigma_sq", "sensitivity_bound",
           "sqrt_upper"]
