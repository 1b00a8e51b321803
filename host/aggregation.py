"""How a cohort of updates becomes one aggregate: in the clear or through
SecAgg+, behind one interface (:class:`Aggregation`), so the round engine and
the strategies never know which.

A *cohort* is the set of updates one aggregation step uses (a synchronous
round's updates, or a FedBuff / FTTE buffer flush).  Each member carries a
**public integer weight** ``w_i`` chosen by the strategy: its sample count
times its staleness factor, in units of ``2**-WEIGHT_FRAC_BITS`` samples
(``public_weight``).  Both backends compute the same thing::

    mean  = sum_i w_i delta_i / sum_i w_i          (float64)
    neff  = (sum_i w_i)^2 / sum_i w_i^2            (effective number of updates: public)

* :class:`PlainAggregation` fetches each member's float32 delta after TRAIN
  (the host sees every update) and sums in float64.
* :class:`SecureAggregation` never sees an update: it runs SecAgg+ over the
  cohort's devices (``host/secagg``); each device weights its own update
  before masking, so the unmasked sum is already the weighted sum.

Sample counts are public (TRAIN_RESULT), so ``samples_total`` is exact in
both cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import OptionsError
from tinyfed_toolchain.facts.wire_table import WIRE

from .fedavg import AggregationError
from .fl_client import ENC_F32, Update

#: public weights are integers in units of 1/WEIGHT_ONE sample (wire.def SA_WEIGHT_ONE: a device refuses
#: more than that per sample it trained on)
WEIGHT_ONE = int(WIRE.const("SA_WEIGHT_ONE"))
WEIGHT_FRAC_BITS = WEIGHT_ONE.bit_length() - 1


def public_weight(factor: float, samples: int) -> int:
    """The integer weight of an update of ``samples`` samples scaled by ``factor`` in (0, 1]:
    ``round(factor * samples * 2^8)``, at least 1."""
    if not (0.0 < factor <= 1.0):
        raise OptionsError(f"staleness factor must be in (0, 1], got {factor}")
    if samples < 1:
        raise OptionsError(f"samples must be >= 1, got {samples}")
    return max(1, int(round(factor * samples * WEIGHT_ONE)))


def effective_count(weights: Sequence[int]) -> float:
    """(sum w)^2 / sum w^2: how many equally weighted updates a weighted mean is worth."""
    s = float(sum(weights))
    q = float(sum(float(w) * float(w) for w in weights))
    return s * s / q if q > 0 else 0.0


@dataclass
class Contribution:
    """One update offered to an aggregation step."""

    client_id: int  # stable 1-based id of the device in the fleet (its SecAgg+ id)
    name: str
    participant: Any  # tinyfed_host.participant.Participant
    version: int  # the model version it trained from
    samples: int  # n_i (TRAIN_RESULT.samples)
    update: Update | None = None  # plain: the fetched delta; secure: None (it stays on the device)
    staleness: int = 0  # set when the cohort is formed: current version - version
    weight: int = 0  # public integer weight (public_weight), set by the strategy


@dataclass
class CohortSum:
    """What one aggregation step reveals (the same for plain and secure)."""

    mean: np.ndarray  # float64: sum w_i delta_i / sum w_i
    weight_total: int  # sum w_i (units 2^-8 samples)
    samples_total: int  # sum n_i of the members in the sum
    count: int
    devices: tuple[str, ...]
    effective_count: float = 1.0  # (sum w_i)^2 / sum w_i^2 of the members in the sum (public weights)
    second_moment: float | None = None  # plain only: sum w_i |delta_i|^2 / sum w_i (a secure sum never has it)
    dropped: dict[str, str] = field(default_factory=dict)  # member -> why it is not in the sum
    report: dict[str, Any] | None = None  # SecAgg+ round report (dropouts, bytes per stage, DP)
    updates: list[Update] = field(default_factory=list)  # plain: the updates summed

    @property
    def variance(self) -> float | None:
        """Weighted variance of the members' updates: E|d|^2 - |E d|^2 (>= 0)."""
        if self.second_moment is None:
            return None
        return max(0.0, self.second_moment - float(np.dot(self.mean, self.mean)))


class Aggregation(Protocol):
    """Plain or secure: the engine's only view of how a cohort is summed."""

    name: str  # "plain" | "secagg+"
    secure: bool
    #: the update encoding a plain backend fetches after TRAIN (None: the update stays on the device)
    fetch_encoding: int | None

    def aggregate(self, step: int, n_params: int, members: Sequence[Contribution]) -> CohortSum:
        """Sum the cohort; a member that cannot be summed (bad update, dropout) is left out and
        named in ``dropped``.  Raises AggregationError (or SecAggAbort) when nothing can be revealed."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class PlainAggregation:
    """Weighted mean of float32 deltas in float64 (the host sees each update)."""

    name = "plain"
    secure = False
    fetch_encoding: int | None = ENC_F32

    def aggregate(self, step: int, n_params: int, members: Sequence[Contribution]) -> CohortSum:
        acc = np.zeros(n_params, dtype=np.float64)
        sq = 0.0
        wsum = 0
        samples = 0
        names: list[str] = []
        dropped: dict[str, str] = {}
        used: list[Update] = []
        for m in sorted(members, key=lambda c: c.client_id):  # one summation order, however the updates arrived
            u = m.update
            try:
                if u is None:
                    raise AggregationError("no update fetched")
                if u.n_params != n_params:
                    raise AggregationError(f"{u.n_params} values, expected {n_params}")
                if m.weight <= 0 or u.weight <= 0:
                    raise AggregationError(f"weight {m.weight} / {u.weight}")
                if m.name in names:
                    raise AggregationError(f"second update in step {step}")
                d = u.delta().astype(np.float64)
                if not np.all(np.isfinite(d)):
                    raise AggregationError("non-finite values in its update")
            except AggregationError as e:
                dropped[m.name] = f"update rejected: {e}"
                continue
            acc += float(m.weight) * d
            sq += float(m.weight) * float(np.dot(d, d))
            wsum += int(m.weight)
            samples += int(m.samples)
            names.append(m.name)
            used.append(u)
        if not names:
            raise AggregationError(f"step {step}: no update could be aggregated")
        ws = [m.weight for m in members if m.name in names]
        return CohortSum(acc / wsum, wsum, samples, len(names), tuple(names), effective_count(ws), sq / wsum,
                         dropped, None, used)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class SecureAggregation:
    """SecAgg+ over the cohort's devices (``tinyfed_host.secagg.aggregator.SecureAggregator``).

    One SecAgg+ instance per cohort (pairwise masks cancel only within one): the cohort
    invitation (ADVERTISE_KEYS) names each member's public weight and staleness, and each device
    weights its own update by it before encoding and masking.  The host learns only the cohort's
    weighted sum (with DP noise: a noised one) and the sum of the weights, which it chose."""

    name = "secagg+"
    secure = True
    fetch_encoding: int | None = None

    def __init__(self, aggregator: Any, log: Callable[[str], None] = print) -> None:
        self.inner = aggregator  # SecureAggregator
        self.log = log

    def aggregate(self, step: int, n_params: int, members: Sequence[Contribution]) -> CohortSum:
        by_name = {m.name: m for m in members}
        # the fleet's weight floor (signed manifest, enforced by the devices): no member's public weight
        # below floor x its samples, so no member is weighted down to isolate another
        floor_of = getattr(self.inner, "weight_floor", None)
        floor = floor_of([m.participant for m in members]) if callable(floor_of) and members else 0
        for m in members:
            m.weight = max(m.weight, floor * m.samples)
        agg = self.inner.aggregate_secure(step, n_params, [(m.client_id, m.participant, m.weight, m.staleness)
                                                           for m in members])
        report = getattr(self.inner, "last_report", None)
        survivors = set(agg.devices)
        dropped = {}
        for m in members:
            if m.name not in survivors:
                stage = next((s for s, who in (report or {}).get("dropouts", {}).items() if m.name in who), "secagg")
                dropped[m.name] = f"dropped out of secure aggregation at {stage}"
        samples = sum(by_name[n].samples for n in agg.devices)
        if agg.total_weight != sum(by_name[n].weight for n in agg.devices):
            raise AggregationError(f"step {step}: the cohort's weight word sums to {agg.total_weight}, its members' "
                                   f"public weights to {sum(by_name[n].weight for n in agg.devices)}")
        return CohortSum(np.asarray(agg.mean_delta, dtype=np.float64), int(agg.total_weight), samples, agg.count,
                         tuple(agg.devices), effective_count([by_name[n].weight for n in agg.devices]), None,
                         dropped, report)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.inner.state_dict())

    def load_state(self, state: dict[str, Any]) -> None:
        self.inner.load_state(state)


def as_aggregation(aggregator: Any, log: Callable[[str], None] = print) -> "Aggregation":
    """An Aggregation backend from what callers pass: None -> plain; an Aggregation as is;
    a SecAgg+ ``SecureAggregator`` (``aggregate_secure``) -> :class:`SecureAggregation`."""
    if aggregator is None:
        return PlainAggregation()
    if hasattr(aggregator, "fetch_encoding") and hasattr(aggregator, "aggregate"):
        return aggregator  # type: ignore[no-any-return]
    if hasattr(aggregator, "aggregate_secure"):
        return SecureAggregation(aggregator, log)
    raise OptionsError(f"{type(aggregator).__name__} is not an aggregation backend")


__all__ = ["Aggregation", "as_aggregation", "effective_count", "CohortSum", "Contribution", "PlainAggregation", "SecureAggregation", "WEIGHT_FRAC_BITS",
           "WEIGHT_ONE", "public_weight"]
