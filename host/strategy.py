"""Strategies: *when* the host aggregates and *how much* each update counts.

A strategy never sees how a cohort is summed (plain or SecAgg+:
``tinyfed_host.aggregation``) nor how devices are reached (boards over serial,
in-process devices: ``tinyfed_host.participant``).  The round engine
(``tinyfed_host.rounds.FederatedRunner``) asks it:

* ``synchronous`` -- True: lock-step rounds (every active device trains the
  current version; the step waits for all of them).  False: semi-asynchronous
  (every device is kept busy; a step happens as soon as ``buffer_size``
  updates are in);
* ``buffer_size(active)`` -- K, updates per aggregation step;
* ``max_staleness`` -- updates trained more than S versions ago are dropped
  (counted in the step's ``stale_dropped``); None: never;
* ``factor(staleness)`` -- the staleness factor s(tau) in (0, 1]; the
  update's public weight is ``public_weight(s(tau), samples)``;
* ``apply(params, cohort)`` -- the new global parameters;
* ``observe(old, new, cohort)`` -- statistics for later weights (FTTE);
* ``state_dict`` / ``load_state`` -- what ``--resume`` must restore.

The server step is the same for all three (FedBuff, Nguyen et al. 2022, with
FedAvg's sample weights)::

    w' = w + eta * sum_i s(tau_i) n_i delta_i / sum_i n_i

so a cohort of stale updates moves the model less (its weights are not
renormalised).  For ``sync`` every tau is 0 and this is FedAvg exactly.

Staleness factors:

* ``sync``: 1.
* ``fedbuff``: s(tau) = 1 / sqrt(1 + tau) (the FedBuff paper's).
* ``ftte``: the factor depends on the age tau **and on the variance of the
  client updates**.  FTTE (Tenison et al. 2025) weights by both; its exact
  function was not available to us, so tinyfed uses this one: a stale update
  missed tau global steps of squared size D^2 (running mean of
  |w_{v+1} - w_v|^2) while updates scatter around their mean with variance
  sigma^2.  Its excess error relative to a fresh update is about
  tau^2 D^2 / sigma^2, and

      s(tau) = (1 + tau^2 r)^(-1/2),   r = D^2 / sigma^2  (clamped to [1e-4, 1e2])

  Many disagreeing clients (non-IID, large sigma^2) or a slowly moving model
  (small D^2): stale updates keep most of their weight; a fast-moving model
  with agreeing clients: they are discounted hard.  sigma^2 comes from what
  the cohort sums reveal, never from a single update: two consecutive cohort
  means mu_c, mu_{c-1} of n_c, n_{c-1} effective updates (public weights)
  differ by E|mu_c - mu_{c-1}|^2 ~ sigma^2 (1/n_c + 1/n_{c-1}) (plus the
  drift of the expected update, which overstates sigma^2 a little), so
  sigma^2 ~ |mu_c - mu_{c-1}|^2 / (1/n_c + 1/n_{c-1}), averaged over cohorts.
  The same estimate is used with plain and secure aggregation.  Until two
  cohorts are in, FedBuff's factor is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinyfed_toolchain.facts.errors import OptionsError

from .aggregation import WEIGHT_ONE, CohortSum

STRATEGIES = ("sync", "fedbuff", "ftte")


class StrategyError(OptionsError):
    """Strategy options that cannot work together."""


@dataclass(frozen=True)
class StrategyOptions:
    """Every knob of a strategy, declared once (CLI: --strategy, --buffer, --max-staleness, --server-lr)."""

    name: str = "sync"
    buffer: int | None = None  # K (None: sync = every active device; fedbuff / ftte = DEFAULT_BUFFER, at most active)
    max_staleness: int | None = None  # S (None: keep every update)
    server_lr: float = 1.0  # eta
    ema: float = 0.3  # FTTE: weight of the newest cohort in the running D^2 and sigma^2

    def check(self) -> None:
        if self.name not in STRATEGIES:
            raise StrategyError(f"unknown strategy {self.name!r} (choose {', '.join(STRATEGIES)})")
        if self.buffer is not None and self.buffer < 1:
            raise StrategyError(f"--buffer {self.buffer}: a buffer holds at least 1 update")
        if self.max_staleness is not None and self.max_staleness < 0:
            raise StrategyError(f"--max-staleness {self.max_staleness}: must be >= 0")
        if not (self.server_lr > 0 and math.isfinite(self.server_lr)):
            raise StrategyError(f"--server-lr {self.server_lr}: must be > 0")
        if not 0.0 < self.ema <= 1.0:
            raise StrategyError("ema must be in (0, 1]")


DEFAULT_BUFFER = 10


class Strategy(Protocol):
    name: str
    synchronous: bool
    max_staleness: int | None

    def buffer_size(self, active: int) -> int: ...

    def factor(self, staleness: int) -> float: ...

    def apply(self, params: np.ndarray, cohort: CohortSum) -> np.ndarray: ...

    def observe(self, old: np.ndarray, new: np.ndarray, cohort: CohortSum) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


def server_step(params: np.ndarray, cohort: CohortSum, server_lr: float) -> np.ndarray:
    """``w + eta * mean * (sum w_i / (2^8 sum n_i))`` in float64, returned as float32.

    The factor is the cohort's sample-weighted mean staleness factor; for
    synchronous FedAvg it is exactly 1.0, and this is ``w + eta * mean``."""
    if cohort.mean.shape != params.shape:
        raise StrategyError(f"aggregate of {cohort.mean.size} values for {params.size} parameters")
    scale = float(cohort.weight_total) / float(WEIGHT_ONE * cohort.samples_total)
    return (params.astype(np.float64) + server_lr * (cohort.mean * scale)).astype(np.float32)


class _Base:
    name = "base"
    synchronous = False

    def __init__(self, options: StrategyOptions) -> None:
        options.check()
        self.opt = options
        self.max_staleness = options.max_staleness

    def buffer_size(self, active: int) -> int:
        k = self.opt.buffer if self.opt.buffer is not None else DEFAULT_BUFFER
        return max(1, min(k, max(1, active)))

    def apply(self, params: np.ndarray, cohort: CohortSum) -> np.ndarray:
        return server_step(params, cohort, self.opt.server_lr)

    def observe(self, old: np.ndarray, new: np.ndarray, cohort: CohortSum) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def describe(self) -> str:
        return self.name


class SyncFedAvg(_Base):
    """Lock-step FedAvg: one step per round over every device that trained it."""

    name = "sync"
    synchronous = True

    def buffer_size(self, active: int) -> int:
        return max(1, active) if self.opt.buffer is None else max(1, min(self.opt.buffer, max(1, active)))

    def factor(self, staleness: int) -> float:
        return 1.0

    def describe(self) -> str:
        return "sync FedAvg (lock-step rounds)"


def fedbuff_factor(staleness: int) -> float:
    """FedBuff's s(tau) = 1 / sqrt(1 + tau)."""
    return 1.0 / math.sqrt(1.0 + max(0, staleness))


class FedBuff(_Base):
    """FedBuff (Nguyen et al., AISTATS 2022): buffer of K, s(tau) = 1/sqrt(1 + tau)."""

    name = "fedbuff"

    def factor(self, staleness: int) -> float:
        return fedbuff_factor(staleness)

    def describe(self) -> str:
        return (f"FedBuff (semi-async, buffer {self.opt.buffer or DEFAULT_BUFFER}, s(tau) = 1/sqrt(1+tau)"
                + (f", max staleness {self.max_staleness})" if self.max_staleness is not None else ")"))


R_MIN, R_MAX = 1e-4, 1e2


def ftte_factor(staleness: int, drift_sq: float | None, variance: float | None) -> float:
    """FTTE's s(tau) = (1 + tau^2 D^2/sigma^2)^(-1/2), FedBuff's before sigma^2 is known (module docstring)."""
    tau = max(0, staleness)
    if tau == 0:
        return 1.0
    if drift_sq is None or variance is None or not variance > 0:
        return fedbuff_factor(tau)
    r = min(R_MAX, max(R_MIN, drift_sq / variance))
    return 1.0 / math.sqrt(1.0 + tau * tau * r)


class FTTE(_Base):
    """FTTE-style semi-async aggregation: buffer of K, staleness factor of age and update variance.

    The sparse half of FTTE (devices train and send only a global subset w* chosen under a
    memory budget) is the training plan's business: a ``sparse:BYTES`` plan makes the update
    vector w* for every device, so masks and sums cover the same coordinates."""

    name = "ftte"

    def __init__(self, options: StrategyOptions) -> None:
        super().__init__(options)
        self.drift_sq: float | None = None  # running D^2
        self.variance: float | None = None  # running sigma^2
        self._last_mean: np.ndarray | None = None  # the previous cohort's mean update
        self._last_count = 0.0  # and its effective number of updates

    def factor(self, staleness: int) -> float:
        return ftte_factor(staleness, self.drift_sq, self.variance)

    def observe(self, old: np.ndarray, new: np.ndarray, cohort: CohortSum) -> None:
        a = self.opt.ema
        d = new.astype(np.float64) - old.astype(np.float64)
        step_sq = float(np.dot(d, d))
        self.drift_sq = step_sq if self.drift_sq is None else (1 - a) * self.drift_sq + a * step_sq
        mean = np.asarray(cohort.mean, dtype=np.float64)
        if self._last_mean is not None and cohort.effective_count > 0 and self._last_count > 0:
            diff = mean - self._last_mean
            var = float(np.dot(diff, diff)) / (1.0 / cohort.effective_count + 1.0 / self._last_count)
            if math.isfinite(var):
                self.variance = var if self.variance is None else (1 - a) * self.variance + a * var
        self._last_mean, self._last_count = mean.copy(), float(cohort.effective_count)

    def state_dict(self) -> dict[str, Any]:
        return {"drift_sq": self.drift_sq, "variance": self.variance,
                "last_mean": None if self._last_mean is None else self._last_mean.tolist(),
                "last_count": self._last_count}

    def load_state(self, state: dict[str, Any]) -> None:
        self.drift_sq = state.get("drift_sq")
        self.variance = state.get("variance")
        last = state.get("last_mean")
        self._last_mean = None if last is None else np.asarray(last, dtype=np.float64)
        self._last_count = float(state.get("last_count") or 0.0)

    def describe(self) -> str:
        return (f"FTTE (semi-async, buffer {self.opt.buffer or DEFAULT_BUFFER}, s(tau, sigma^2) = "
                "(1 + tau^2 D^2/sigma^2)^-1/2" + (f", max staleness {self.max_staleness})"
                                                  if self.max_staleness is not None else ")"))


def make_strategy(options: StrategyOptions) -> "SyncFedAvg | FedBuff | FTTE":
    options.check()
    return {"sync": SyncFedAvg, "fedbuff": FedBuff, "ftte": FTTE}[options.name](options)


__all__ = ["DEFAULT_BUFFER", "FTTE", "FedBuff", "STRATEGIES", "Strategy", "StrategyError", "StrategyOptions",
           "SyncFedAvg", "fedbuff_factor", "ftte_factor", "make_strategy", "server_step"]
