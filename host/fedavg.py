"""Federated averaging (McMahan et al., 2017) over model deltas, with a
pluggable aggregator.

Each round every participating device k trains from the global parameters
``w`` on its ``n_k`` samples and returns ``delta_k = w_k - w``.  FedAvg::

    w' = w + server_lr * sum_k n_k * delta_k / sum_k n_k

The host never needs the individual deltas, only that weighted sum and the
total weight: that is the :class:`Aggregator` interface (``begin`` / ``add`` /
``finish``), so secure aggregation (the next issue: devices upload masked,
fixed-point deltas whose masks cancel in the sum) replaces
:class:`PlainAggregator` without touching the round logic.  An aggregator
also tells the rounds which update encoding to ask the devices for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .fl_client import ENC_F32, Update


@dataclass(frozen=True)
class Aggregate:
    """What an aggregator reveals about a round: the weighted mean delta."""

    round: int
    mean_delta: np.ndarray  # float64, sum_k n_k delta_k / sum_k n_k
    total_weight: int
    count: int  # updates that went into it
    devices: tuple[str, ...]


class AggregationError(RuntimeError):
    """The updates of a round cannot be combined (none, wrong size, wrong round)."""


class Aggregator(Protocol):
    """The round logic's view of aggregation (plain now, secure later)."""

    name: str
    encoding: int  # the update encoding devices are asked for (GET_UPDATE.encoding)

    def begin(self, round_: int, n_params: int) -> None:
        """Start a round over vectors of ``n_params`` values."""

    def add(self, update: Update) -> None:
        """Take one device's update (raises AggregationError if it does not fit)."""

    def finish(self) -> Aggregate:
        """The round's aggregate (raises AggregationError with no updates)."""


class PlainAggregator:
    """Sample-weighted mean of float32 deltas, accumulated in float64 (no secrecy)."""

    name = "plain"
    encoding = ENC_F32

    def __init__(self) -> None:
        self._round = -1
        self._n = 0
        self._sum: np.ndarray | None = None
        self._weight = 0
        self._devices: list[str] = []

    def begin(self, round_: int, n_params: int) -> None:
        self._round, self._n = round_, n_params
        self._sum = np.zeros(n_params, dtype=np.float64)
        self._weight = 0
        self._devices = []

    def add(self, update: Update) -> None:
        if self._sum is None:
            raise AggregationError("add() before begin()")
        if update.round != self._round:
            raise AggregationError(f"update of round {update.round} in round {self._round}")
        if update.n_params != self._n:
            raise AggregationError(f"{update.device}: {update.n_params} values, expected {self._n}")
        if update.weight <= 0:
            raise AggregationError(f"{update.device}: weight {update.weight}")
        if update.device in self._devices:
            raise AggregationError(f"{update.device}: second update in round {self._round}")
        delta = update.delta()
        if not np.all(np.isfinite(delta)):
            raise AggregationError(f"{update.device}: non-finite values in its update")
        self._sum += float(update.weight) * delta.astype(np.float64)
        self._weight += int(update.weight)
        self._devices.append(update.device)

    def finish(self) -> Aggregate:
        if self._sum is None or not self._devices:
            raise AggregationError(f"round {self._round}: no updates to aggregate")
        return Aggregate(self._round, self._sum / self._weight, self._weight, len(self._devices),
                         tuple(self._devices))


def apply_aggregate(params: np.ndarray, agg: Aggregate, server_lr: float = 1.0) -> np.ndarray:
    """The next global parameters (float32): ``params + server_lr * mean_delta``."""
    if agg.mean_delta.shape != params.shape:
        raise AggregationError(f"aggregate of {agg.mean_delta.size} values for {params.size} parameters")
    return (params.astype(np.float64) + server_lr * agg.mean_delta).astype(np.float32)


def fedavg(params: np.ndarray, deltas: list[np.ndarray], weights: list[int], server_lr: float = 1.0) -> np.ndarray:
    """Reference FedAvg step (the formula in the module docstring), for checks."""
    if not deltas or len(deltas) != len(weights):
        raise AggregationError("fedavg needs one weight per delta, and at least one delta")
    w = np.asarray(weights, dtype=np.float64)
    mean = (np.stack([d.astype(np.float64) for d in deltas]) * w[:, None]).sum(0) / w.sum()
    return (params.astype(np.float64) + server_lr * mean).astype(np.float32)


__all__ = ["Aggregate", "Aggregator", "AggregationError", "PlainAggregator", "apply_aggregate", "fedavg"]
