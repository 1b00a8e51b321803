"""Differential privacy for securely aggregated rounds: central Gaussian noise
on the unmasked sum, and the (epsilon, delta) of a run from an RDP accountant
(Google's ``dp_accounting``).

Why central and not distributed (discrete Gaussian / Skellam on devices):

* the accounting is exact for what is implemented: each round is the
  sampled Gaussian mechanism with sensitivity C (every client's contribution
  g_u x_u has L2 norm <= C because the encoding clips to C and scales by
  w_u / W <= 1), noise sigma = z C, sampling rate q = participants / fleet;
  distributed discrete noise needs the (looser) accounting of sums of
  discrete Gaussians / Skellam with modular clipping (Kairouz et al. 2021,
  Agarwal et al. 2021) and extra ring headroom -- 32-bit words with our
  n_max B <= 2^31 - 1 no-wrap bound leave little of it;
* dropouts would remove part of a distributed noise budget (each device adds
  only its share of the variance), weakening the guarantee exactly when the
  fleet is unreliable; the central noise is always complete;
* cost: the noise is added by the host AFTER unmasking, so the guarantee
  holds against whoever sees the released model (and later rounds), not
  against the aggregating host itself -- secure aggregation already limits
  that host to the sum.  Distributed noise is the upgrade when the host must
  not see even an exact sum.

The sample-count word of the sum (total weight) is not noised; it reveals how
many samples took part, not their values.
"""

from __future__ import annotations

import math

import numpy as np


def gaussian_noise(shape: int | tuple[int, ...], clip: float, noise_multiplier: float,
                   rng: np.random.Generator) -> np.ndarray:
    """N(0, (z C)^2) per coordinate (float64), to add to the decoded sum sum_u g_u x_u."""
    if not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
        raise ValueError("noise multiplier must be finite and >= 0")
    return rng.normal(0.0, noise_multiplier * float(clip), size=shape)


#: integer Renyi orders (fractional ones below 2 make dp_accounting's series warn at large q)
_ORDERS = [float(a) for a in (*range(2, 129), 160, 192, 256, 384, 512)]


def epsilon(noise_multiplier: float, sampling_rate: float, rounds: int, delta: float) -> float:
    """epsilon after ``rounds`` rounds of the Poisson-sampled Gaussian mechanism (RDP accountant)."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    if not 0 < sampling_rate <= 1:
        raise ValueError("sampling rate must be in (0, 1]")
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if rounds == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), rounds)
    acc = RdpAccountant(orders=_ORDERS)
    acc.compose(event)
    return float(acc.get_epsilon(delta))


__all__ = ["epsilon", "gaussian_noise"]
