"""Sparse update: which layers / channels to train under a memory budget.

After MIT tiny-training (Lin et al., "On-Device Training Under 256KB Memory",
arXiv 2206.15472): not every layer is worth its training memory.  Their offline
*contribution analysis* fine-tunes each candidate and measures the gain; here
the gain of updating a set S of parameters is estimated to first order from a
few gradient evaluations on the float model (the device's own engine, host
build): one SGD step of size eta on S lowers the loss by about
``eta * sum_{i in S} g_i**2``, so each candidate's score is the mean over
mini-batches of its squared gradient (``score="grad_sq"``), or the Taylor
importance ``|g_i * w_i|`` (``score="taylor"``).  Candidates are a layer's bias
and its weight rows (output channels, best-scoring first, in chunks of 1/8,
1/4, 1/2 or all of the layer so that paying for a layer's kept input
activation can be worth it); they are picked greedily by score per byte of
*training SRAM* (:attr:`MemoryPlan.mem_bytes`: the planned float work area
shared with the arena, plus parameters, gradients and momentum) while the
total stays within ``budget_bytes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..compile.emit_c import emit_model
from .emit import emit_train
from ..compile.plan import Plan
from .layers import TrainPlanError, tail_end, weight_layer_info
from .memory import align, plan_memory
from .plan import Selection, TrainOptions, build_train_plan

__all__ = ["ContributionScores", "SparseReport", "contribution_scores", "select_sparse"]


@dataclass
class ContributionScores:
    """Per weight layer: a score per output channel's row, and the bias score (or None)."""

    rows: dict[int, np.ndarray]
    bias: dict[int, float | None]
    kind: str
    samples: int


def contribution_scores(
    plan: Plan,
    x: np.ndarray,
    y: np.ndarray,
    work_dir: Path,
    *,
    batch: int = 16,
    score: Literal["grad_sq", "taylor"] = "grad_sq",
    max_samples: int = 512,
) -> ContributionScores:
    """Score every weight row and bias from gradients of the float tail (all layers
    trainable) on int8 inputs ``x`` / labels ``y``, computed by the host build of
    the device's engine (emitted into ``work_dir``)."""
    from .native_trainer import NativeTrainer

    if score not in ("grad_sq", "taylor"):
        raise ValueError(f"unknown contribution score {score!r}")
    work_dir = Path(work_dir)
    emit_model(plan, work_dir)
    wl = weight_layer_info(plan)
    if not wl:
        raise TrainPlanError("the model has no FULLY_CONNECTED/CONV layer")
    everything = Selection(scheme="all", weights={k: None for k in wl},
                           biases=frozenset(k for k, w in wl.items() if w.bias_q is not None))
    tp = build_train_plan(plan, everything)
    emit_train(tp, work_dir)
    ht = NativeTrainer(work_dir)
    x = np.asarray(x)[:max_samples]
    y = np.asarray(y)[:max_samples]
    if len(x) == 0:
        raise ValueError("contribution analysis needs samples")
    p = ht.params()
    acc = np.zeros(tp.n_params, dtype=np.float64)
    n_batches = 0
    for s in range(0, len(x), batch):
        g = ht.gradient(x[s : s + batch], y[s : s + batch]).astype(np.float64)
        acc += g * g if score == "grad_sq" else np.abs(g * p)
        n_batches += 1
    acc /= n_batches
    rows: dict[int, np.ndarray] = {}
    bias: dict[int, float | None] = {k: None for k in wl}
    for seg in tp.segments:
        v = acc[seg.offset : seg.offset + seg.count].reshape(seg.rows, seg.row_len)
        if seg.kind == "weight":
            rows[seg.layer] = v.sum(axis=1)
        elif seg.kind == "bias":
            bias[seg.layer] = float(v.sum())
    return ContributionScores(rows=rows, bias=bias, kind=score, samples=len(x))


@dataclass
class SparseReport:
    budget_bytes: int
    mem_bytes: int
    picked: list[str] = field(default_factory=list)  # in pick order
    per_layer: list[str] = field(default_factory=list)
    score_kept: float = 0.0  # fraction of the total score covered by the selection

    def lines(self) -> list[str]:
        head = (f"sparse update: training SRAM {self.mem_bytes:,} B of a {self.budget_bytes:,} B budget, "
                f"{100.0 * self.score_kept:.1f}% of the contribution score")
        return [head, *("  " + s for s in self.per_layer)]


def select_sparse(
    plan: Plan,
    x: np.ndarray,
    y: np.ndarray,
    budget_bytes: int,
    work_dir: Path,
    *,
    options: TrainOptions | None = None,
    score: Literal["grad_sq", "taylor"] = "grad_sq",
    batch: int = 16,
    ratios: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0),
    scores: ContributionScores | None = None,
) -> tuple[Selection, SparseReport]:
    """Pick weight rows and biases greedily by contribution per byte of training
    SRAM, within ``budget_bytes`` (see the module docstring).

    Raises
    ------
    TrainPlanError
        if not even the cheapest candidate fits the budget.
    """
    opts = options or TrainOptions()
    sc = scores or contribution_scores(plan, x, y, work_dir, batch=batch, score=score)
    wl = weight_layer_info(plan)
    end = tail_end(plan)
    state_mult = 3 if opts.momentum else 2
    region_cache: dict[tuple[int, frozenset[int]], int] = {}

    def mem(rows: dict[int, int], biases: set[int]) -> int:
        layers = {k for k, r in rows.items() if r > 0} | biases
        if not layers:
            return 0
        keep = frozenset(k for k, r in rows.items() if r > 0)
        key = (min(layers), keep)
        if key not in region_cache:
            mplan, _ = plan_memory(plan, key[0], end, set(keep), {}, False, opts.momentum, 0, wl)
            region_cache[key] = mplan.region_bytes
        n = sum(r * wl[k].row_len for k, r in rows.items()) + sum(wl[k].channels for k in biases)
        return region_cache[key] + state_mult * align(4 * n)

    order = {k: np.argsort(-v, kind="stable") for k, v in sc.rows.items()}
    taken: dict[int, int] = {k: 0 for k in sc.rows}
    biases: set[int] = set()
    total_score = sum(float(v.sum()) for v in sc.rows.values()) + sum(b for b in sc.bias.values() if b)
    cur = 0
    picked: list[str] = []
    cheapest: tuple[int, str] | None = None
    while True:
        best: tuple[float, float, int, str, int, int] | None = None
        for k, v in sc.rows.items():
            left = len(v) - taken[k]
            if left == 0:
                continue
            for r in ratios:
                m = min(left, max(1, math.ceil(r * len(v))))
                chunk = order[k][taken[k] : taken[k] + m]
                gain = float(v[chunk].sum())
                trial = dict(taken)
                trial[k] += m
                need = mem(trial, biases)
                if cheapest is None or need < cheapest[0]:
                    cheapest = (need, f"{m} row(s) of layer {k}")
                if need > budget_bytes or gain <= 0.0:
                    continue
                cand = (gain / max(need - cur, 1), gain, need, f"rows:{k}:{m}", k, m)
                if best is None or cand[:2] > best[:2]:
                    best = cand
        for k, b in sc.bias.items():
            if b is None or k in biases:
                continue
            need = mem(taken, biases | {k})
            if cheapest is None or need < cheapest[0]:
                cheapest = (need, f"the bias of layer {k}")
            if need > budget_bytes or b <= 0.0:
                continue
            cand = (b / max(need - cur, 1), b, need, f"bias:{k}", k, -1)
            if best is None or cand[:2] > best[:2]:
                best = cand
        if best is None:
            break
        _, _, cur, label, layer, m = best
        if m < 0:
            biases.add(layer)
        else:
            taken[layer] += m
        picked.append(label)
    if not picked:
        what = f": the cheapest choice ({cheapest[1]}) needs {cheapest[0]:,} B" if cheapest else ""
        raise TrainPlanError(f"sparse update: nothing fits a budget of {budget_bytes:,} B{what}")

    weights: dict[int, tuple[int, ...] | None] = {}
    covered = 0.0
    per_layer: list[str] = []
    for k in sorted(set(sc.rows) | set(sc.bias)):
        n_ch = wl[k].channels
        t = taken.get(k, 0)
        if t:
            ch = np.sort(order[k][:t])
            weights[k] = None if t == n_ch else tuple(int(c) for c in ch)
            covered += float(sc.rows[k][ch].sum())
        if k in biases:
            covered += float(sc.bias[k] or 0.0)
        per_layer.append(f"layer {k:>3} {wl[k].op:<18} weight rows {t:>4}/{n_ch:<4} bias {'yes' if k in biases else 'no '}")
    sel = Selection(scheme="sparse", weights=weights, biases=frozenset(biases))
    final = build_train_plan(plan, sel, opts)
    if final.memory.mem_bytes > budget_bytes:  # the estimate above is the same planner; guard anyway
        raise TrainPlanError(f"sparse update: planned {final.memory.mem_bytes:,} B exceeds the budget {budget_bytes:,} B")
    report = SparseReport(budget_bytes=budget_bytes, mem_bytes=final.memory.mem_bytes, picked=picked,
                          per_layer=per_layer, score_kept=covered / total_score if total_score > 0 else 0.0)
    return sel, report
