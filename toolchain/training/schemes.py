"""Training schemes: what trains on the device, by name -- the one grammar.

::

    auto | none | all | last[K] | bias[K] | lora[R][-lastK|-all][-store-h][-bias] | sparse<N>k | sparse:BYTES

* ``auto``: the last two weight layers (the last one for a one-layer model);
  when those cannot train (an op without a backward kernel between them), the
  last layer alone (:func:`plan_scheme`);
* ``none``: inference-only images;
* ``all``: every weight and bias of every FULLY_CONNECTED / CONV layer;
* ``lastK``: weights and biases of the last K (default 1) weight layers;
* ``biasK``: the biases of the last K weight layers (all of them without K);
* ``loraR``: rank-R (default 4) LoRA adapters on the last eligible layer
  (FULLY_CONNECTED, 1x1 stride-1 CONV_2D); ``-lastK`` on the last K, ``-all``
  on every eligible layer; ``-store-h`` keeps ``h = x.A`` from forward to
  backward; ``-bias`` trains those layers' biases too;
* ``sparse<N>k`` / ``sparse:BYTES``: the sparse update under a training-SRAM
  budget, picked by contribution analysis (:mod:`.sparse`; needs int8 samples).

Each scheme is a function returning a :class:`~.plan.Selection` (``select_*``);
:func:`parse_scheme` checks a name without a model, so a bad name fails before
any training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..compile.plan import Plan
from ..compile.tflite_reader import UnsupportedOpError
from .layers import TrainPlanError, lora_layers, weight_layer, weight_layers
from .plan import Selection, TrainOptions, TrainPlan, build_train_plan
from .sparse import select_sparse

GRAMMAR = "auto | none | all | last[K] | bias[K] | lora[R][-lastK|-all][-store-h][-bias] | sparse<N>k | sparse:BYTES"

_SCHEME_RE = re.compile(
    r"(?P<kind>auto|none|all|last|bias|lora|sparse)(?P<num>\d*)(?P<kilo>k?)"
    r"(?P<flags>(?:-last\d+|-all|-store-h|-bias)*)(?::(?P<budget>\d+))?"
)


@dataclass(frozen=True)
class Scheme:
    """A parsed scheme name (see the module docstring)."""

    kind: str  # auto | none | all | last | bias | lora | sparse
    number: int | None = None  # K of last/bias, R of lora
    lora_layers: int | None = 1  # LoRA on the last K eligible layers (None = all)
    store_h: bool = False
    bias: bool = False
    budget_bytes: int = 0  # sparse


def parse_scheme(spec: str) -> Scheme:
    """Check a scheme name against the grammar; raise :class:`TrainPlanError` if it is not one."""
    m = _SCHEME_RE.fullmatch(spec.strip())
    bad = TrainPlanError(f"unknown training scheme {spec!r}: {GRAMMAR}")
    if not m:
        raise bad
    kind, num, kilo, flags, budget = m.group("kind", "num", "kilo", "flags", "budget")
    number = int(num) if num else None
    if kind in ("auto", "none", "all") and (num or kilo or flags or budget):
        raise bad
    if kind in ("last", "bias") and (kilo or flags or budget):
        raise bad
    if kind == "lora":
        if kilo or budget:
            raise bad
        lasts = re.findall(r"-last(\d+)", flags)
        if len(lasts) > 1 or (lasts and "-all" in flags):
            raise bad
        k: int | None = int(lasts[0]) if lasts else (None if "-all" in flags else 1)
        return Scheme("lora", number or 4, k, "-store-h" in flags, "-bias" in flags)
    if kind == "sparse":
        if flags or (budget and (num or kilo)):
            raise bad
        nbytes = int(budget) if budget else (number or 0) * (1024 if kilo else 1)
        if nbytes <= 0:
            raise TrainPlanError(f"sparse: give a budget (sparse:BYTES or sparse<N>k), not {spec!r}")
        return Scheme("sparse", budget_bytes=nbytes)
    if kilo:
        raise bad
    return Scheme(kind, number)


def select_last_k(plan: Plan, k: int = 1, *, biases: bool = True) -> Selection:
    """Weights (and biases) of the last ``k`` FULLY_CONNECTED / CONV layers."""
    layers = weight_layers(plan)
    if k < 1 or k > len(layers):
        raise TrainPlanError(f"last-k: k={k}, the model has {len(layers)} FULLY_CONNECTED/CONV layers")
    chosen = layers[-k:]
    with_bias = {i for i in chosen if biases and weight_layer(plan, i).bias_q is not None}
    return Selection(scheme=f"last{k}", weights={i: None for i in chosen}, biases=frozenset(with_bias))


def select_biases(plan: Plan, k: int | None = None) -> Selection:
    """Biases only: of every weight layer that has one (``k=None``) or of the last ``k``."""
    layers = [i for i in weight_layers(plan) if weight_layer(plan, i).bias_q is not None]
    if not layers:
        raise TrainPlanError("bias-only: no FULLY_CONNECTED/CONV layer has a bias")
    if k is not None:
        if k < 1:
            raise TrainPlanError(f"bias-only: k={k}")
        layers = layers[-k:]
    return Selection(scheme="bias" if k is None else f"bias_last{k}", biases=frozenset(layers))


def select_lora(
    plan: Plan,
    rank: int = 4,
    k: int | None = None,
    *,
    alpha: float | None = None,
    store_h: bool = False,
    biases: bool = False,
    seed: int = 0,
) -> Selection:
    """LoRA adapters of rank ``rank`` on the last ``k`` (None = all) eligible layers
    (FULLY_CONNECTED and 1x1 stride-1 CONV_2D), optionally with their biases."""
    layers = lora_layers(plan)
    if not layers:
        raise TrainPlanError("LoRA: no FULLY_CONNECTED or 1x1 CONV_2D layer")
    if rank < 1:
        raise TrainPlanError(f"LoRA: rank {rank}")
    if k is not None:
        layers = layers[-k:]
    bias_layers = {i for i in layers if biases and weight_layer(plan, i).bias_q is not None}
    name = f"lora{rank}" + ("_store_h" if store_h else "")
    return Selection(scheme=name, lora={i: rank for i in layers}, biases=frozenset(bias_layers),
                     lora_alpha=alpha, lora_store_h=store_h, seed=seed)


def select_all(plan: Plan) -> Selection:
    """Every weight and bias of every FULLY_CONNECTED / CONV layer."""
    layers = weight_layers(plan)
    if not layers:
        raise TrainPlanError("the model has no FULLY_CONNECTED/CONV layer")
    with_bias = {i for i in layers if weight_layer(plan, i).bias_q is not None}
    return Selection(scheme="all", weights={i: None for i in layers}, biases=frozenset(with_bias))


def select_scheme(plan: Plan, spec: str, *, x: np.ndarray | None = None, y: np.ndarray | None = None,
                  work_dir: Path | None = None, seed: int = 0) -> Selection | None:
    """The :class:`Selection` a scheme name stands for on this model (``None`` for ``none``).

    ``sparse`` needs int8 samples ``x``, labels ``y`` and a ``work_dir`` for the
    contribution analysis.
    """
    s = parse_scheme(spec)
    if s.kind == "none":
        return None
    if s.kind == "auto":
        return select_last_k(plan, 2 if len(weight_layers(plan)) >= 2 else 1)
    if s.kind == "last":
        return select_last_k(plan, s.number or 1)
    if s.kind == "bias":
        return select_biases(plan, s.number)
    if s.kind == "all":
        return select_all(plan)
    if s.kind == "lora":
        return select_lora(plan, s.number or 4, s.lora_layers, store_h=s.store_h, biases=s.bias, seed=seed)
    if x is None or y is None or work_dir is None:
        raise TrainPlanError(f"{spec}: the sparse update needs samples for its contribution analysis "
                             "(python -m tinyfed_toolchain.training MODEL OUT --scheme {spec} --dataset D)")
    return select_sparse(plan, x, y, s.budget_bytes, work_dir)[0]


def plan_scheme(plan: Plan, spec: str, options: TrainOptions | None = None, *,
                log: Callable[[str], None] = print, **samples: object) -> TrainPlan | None:
    """The training plan for a scheme name (``None`` for ``none``, or for ``auto`` on a
    model where not even the last layer can train: the reason is logged).

    ``auto`` falls back to the last layer alone when the last two cannot train.
    """
    try:
        sel = select_scheme(plan, spec, **samples)  # type: ignore[arg-type]
        return None if sel is None else build_train_plan(plan, sel, options)
    except (TrainPlanError, UnsupportedOpError) as exc:
        if parse_scheme(spec).kind != "auto":
            raise
        try:  # auto: the last layer alone when the last two cannot train (an op without a backward)
            tp = build_train_plan(plan, select_last_k(plan, 1), options)
            log(f"training: the last two layers cannot train here ({exc}); training the last layer")
            return tp
        except (TrainPlanError, UnsupportedOpError):
            log(f"no on-device training for this model: {exc}")
            return None


__all__ = ["GRAMMAR", "Scheme", "parse_scheme", "select_scheme", "plan_scheme", "select_last_k", "select_biases",
           "select_lora", "select_all"]
