"""Federated averaging (McMahan et al., 2017) over model deltas: the shared
types of aggregation and the reference formula.

Each round every participating device k trains from the global parameters
``w`` on its ``n_k`` samples and returns ``delta_k = w_k - w``.  FedAvg::

    w' = w + server_lr * sum_k n_k * delta_k / sum_k n_k

The host never needs the individual deltas, only that weighted sum and the
total weight: the aggregation backends (``tinyfed_host.aggregation``: plain,
or SecAgg+ where the devices' masks cancel in the sum) and the strategies
(``tinyfed_host.strategy``: sync FedAvg, FedBuff, FTTE) build on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyfed_toolchain.facts.errors import TinyfedError


@dataclass(frozen=True)
class Aggregate:
    """What a secure aggregation reveals about a cohort: the weighted mean delta."""

    round: int
    mean_delta: np.ndarray  # float64, sum_k n_k delta_k / sum_k n_k
    total_weight: int
    count: int  # updates that went into it
    devices: tuple[str, ...]


class AggregationError(TinyfedError, RuntimeError):
    """The updates of a step cannot be combined (none, wrong size, wrong round)."""


def fedavg(params: np.ndarray, deltas: list[np.ndarray], weights: list[int], server_lr: float = 1.0) -> np.ndarray:
    """Reference FedAvg step (the formula in the module docstring), for checks."""
    if not deltas or len(deltas) != len(weights):
        raise AggregationError("fedavg needs one weight per delta, and at least one delta")
    w = np.asarray(weights, dtype=np.float64)
    mean = (np.stack([d.astype(np.float64) for d in deltas]) * w[:, None]).sum(0) / w.sum()
    return (params.astype(np.float64) + server_lr * mean).astype(np.float32)


__all__ = ["Aggregate", "AggregationError", "fedavg"]
