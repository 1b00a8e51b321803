"""Distributed DP (``--dp distributed``): the host's side -- the encoding that leaves room for
the devices' noise, and the accounting.  The noise itself is drawn on the devices
(firmware/src/secagg/dp_noise.c; dp_device.py is its mirror): the host never adds any and
never sees an exact sum.

Mechanism (one round)
---------------------
Every device u adds ``y_u ~ N_Z(0, s2)^d`` (exact discrete Gaussian, truncated at 16 tt)
to its encoded update ``q_u`` before masking, with ``s2`` computed on the device from the
advertised noise multiplier z (``dp_z_milli = ceil(1000 z)``, signed by every device in its
advertisement, refused below the manifest's floor), the encoding (C, f), d and the threshold
t: ``s2 >= (z Delta)^2 / (t - 1)`` (tfd/secagg_dp.h).  The host unmasks ``sum_{u in U}
(q_u + y_u)``.

Privacy of device u (neighbouring: u's update replaced by zero, "zero-out"): u's own noise is
independent of its data, so adding it is post-processing; at least t - 1 OTHER devices'
noises are in the sum because the round reveals nothing unless t holders of each unmasked
secret signed the survivor set (the consistency check; ``|U| >= t``).  The sum of n = t - 1
i.i.d. N_Z(0, s2) is, by Kairouz, Liu & Steinke ("The Distributed Discrete Gaussian Mechanism
for Federated Learning with Secure Aggregation", ICML 2021, Theorem on sums of discrete
Gaussians), for L2 sensitivity Delta on Z^d:

    D_alpha <= alpha/2 * (Delta / (sqrt(n s2)) + tau sqrt(d))^2,
    tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 s2 k / (k + 1)),

i.e. the RDP of a Gaussian mechanism of noise multiplier ``z_eff = 1 / (Delta/sqrt(n s2) +
tau sqrt(d))`` (tau is below 1e-300 for every s2 a device uses, so z_eff = sqrt(n s2)/Delta
>= z).  Each round is one ``GaussianDpEvent(z_eff)``; rounds compose in dp_accounting's RDP
accountant without amplification (as central DP, dp.py).  Truncation at 16 tt > 16 sigma moves
each draw by total variation <= 2 exp(-128); over all draws of the run this adds at most
``(1 + e^eps) * draws * 2 e^-128`` to delta, reported as ``truncation_delta`` (< 1e-40 here).

Assumptions stated in the report and SECURITY.md: the t - 1 other devices of the smallest
revealed sum add their noise honestly; with c of them colluding with the host (adding none)
the noise multiplier falls to z sqrt((t-1-c)/(t-1)).  Dropouts (real or claimed) do not lower
it: the protocol never reveals a sum of fewer than t devices.  With more survivors than t the
sum carries more noise than needed (|U|/(t-1) times the variance).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .dp_device import INT32_MAX, DeviceGaussian, sensitivity, sigma_sq, word_bound
from .encoding import MAX_FRAC_BITS, UINT32_MAX

MECHANISM = "distributed"
TRUNC_TV = 2.0 * math.exp(-128.0)  # per draw, P(|Y| > 16 sigma) bound (CKS20 sub-Gaussian tail)


def z_milli(noise_multiplier: float) -> int:
    """The advertised integer: ceil(1000 z) (never less noise than asked)."""
    z = float(noise_multiplier)
    if not (z > 0 and math.isfinite(z)):
        raise ValueError("noise multiplier must be finite and > 0")
    zm = math.ceil(z * 1000 - 1e-9)
    if not 1 <= zm <= UINT32_MAX:
        raise ValueError(f"noise multiplier {z:g} out of range for a device")
    return zm


def device_s2(clip: float, frac_bits: int, dim: int, zm: int, threshold: int) -> int:
    """The s2 every device of the round computes; ``OverflowError`` where a device refuses."""
    s2 = sigma_sq(zm, sensitivity(clip, frac_bits, dim), threshold)
    DeviceGaussian(s2)  # tt within a device's range
    if word_bound(clip, frac_bits, s2) > INT32_MAX:
        raise OverflowError("a noised word could exceed 2^31 - 1")
    return s2


def choose_fraction_bits(n_max: int, clip: float, dim: int, zm: int, threshold: int) -> int:
    """The largest f with room for n_max noised encodings: n_max (B' + L) <= 2^31 - 1 (no wrap)."""
    for f in range(MAX_FRAC_BITS, -1, -1):
        try:
            s2 = device_s2(clip, f, dim, zm, threshold)
        except OverflowError:
            continue
        if n_max * word_bound(clip, f, s2) <= INT32_MAX:
            return f
    raise OverflowError(f"no fixed-point scale leaves room for {n_max} noised updates of clip {clip:g} "
                        f"(noise multiplier {zm / 1000:g}, threshold {threshold})")


def tau(s2: int, n: int) -> float:
    """KLS21's tau for n summands of variance s2 (0.0 when below the float range)."""
    total = 0.0
    for k in range(1, n):
        total += math.exp(-2.0 * math.pi ** 2 * s2 * k / (k + 1))
    return 10.0 * total


def effective_multiplier(clip: float, frac_bits: int, dim: int, zm: int, threshold: int) -> float:
    """z_eff of one round (module docstring): the noise of t - 1 other devices vs Delta."""
    delta = sensitivity(clip, frac_bits, dim)
    s2 = device_s2(clip, frac_bits, dim, zm, threshold)
    n = threshold - 1
    return 1.0 / (delta / math.sqrt(n * s2) + tau(s2, n) * math.sqrt(dim))


_ORDERS = [1.0 + k / 32 for k in range(1, 225)] + [float(a) for a in (*range(9, 129), 160, 192, 256, 384, 512, 1024)]


def epsilon(z_effs: Sequence[float], delta: float) -> float:
    """epsilon after rounds with these effective noise multipliers (RDP, no amplification)."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    if not z_effs:
        return 0.0
    acc = RdpAccountant(orders=_ORDERS)
    for z in z_effs:
        acc.compose(dp_accounting.GaussianDpEvent(float(z)))
    return float(acc.get_epsilon(delta))


def summary(z_effs: Sequence[float], draws: int, noise_multiplier: float, delta: float) -> dict[str, Any]:
    """The report's ``dp`` for distributed DP after these rounds."""
    eps = epsilon(z_effs, delta)
    trunc = (1.0 + math.exp(min(eps, 700.0))) * draws * TRUNC_TV
    return {"mechanism": MECHANISM, "noise_multiplier": float(noise_multiplier), "delta": float(delta),
            "epsilon": eps, "rounds": len(z_effs),
            "noise_multiplier_effective_min": min(z_effs) if z_effs else None,
            "truncation_delta": trunc,
            "noise": "discrete Gaussian drawn on each device before masking (CKS20, truncated at 16 sigma)",
            "accounting": "RDP of the sum of the t-1 other devices' noise (Kairouz-Liu-Steinke 2021), "
                          "GaussianDpEvent(z_eff) per round, no amplification; zero-out neighbouring",
            "assumption": "the protocol reveals no sum of fewer than t devices; each of them adds its noise "
                          "(c colluders among the t lower z to z*sqrt((t-1-c)/(t-1)))"}


__all__ = ["MECHANISM", "choose_fraction_bits", "device_s2", "effective_multiplier", "epsilon", "summary", "tau",
           "z_milli"]
