"""Training plan: what trains on the device, and the training memory plan.

Given the inference plan of an int8 model (:func:`tinyfed_toolchain.compile.plan.plan_model`)
and a :class:`Selection` of what trains, :func:`build_train_plan` decides

* the **tail**: layers ``[first_layer, end)`` that run in float32 with backward
  kernels (``first_layer`` = the first layer with something trainable; ``end``
  excludes a final SOFTMAX, which the loss absorbs).  Every tail op must have a
  backward kernel (:data:`BACKWARD_OPS`), else :class:`UnsupportedOpError`
  names it;
* the **parameter vector**: the concatenation of the trainable segments, sorted
  by layer then kind (weight rows, bias, LoRA A, LoRA B); its layout is
  documented in ``firmware/include/tfd/train_plan.h``;
* the **training memory plan**: one byte offset per float buffer in a work area
  that shares its storage with the int8 inference arena, from lifetimes on the
  timeline ``dequantize (0) | forward of tail layer i (1+i) | loss (T+1) |
  backward of tail layer i (2T+1-i)``.  Forward activations are kept only where
  backward needs them (a layer's input for its weight / LoRA gradients);
  ReLU-type derivatives come from a kept output when there is one (no cost),
  else from a 1-bit mask; MAX_POOL_2D keeps a 1-byte window index per output
  (2 bytes for windows over 256 taps); LoRA ``h = x.A`` is recomputed from
  the kept ``x`` (or stored, ``store_h=True``).  Placement is greedy by size,
  like :mod:`tinyfed_toolchain.compile.plan`.

Schemes (each returns a :class:`Selection`): :func:`select_last_k`,
:func:`select_biases`, :func:`select_lora`, :func:`select_all`, and the sparse
update by contribution analysis in :mod:`tinyfed_toolchain.training.sparse`.

Quantization-aware scaling: with ``TrainOptions(domain="real")`` (default) the
parameters are real values and SGD on them is float SGD; QAS (which rescales
the gradient of a weight stored in units of its scale ``s`` by ``s**-2``)
reduces to the identity there.  ``domain="quantized"`` stores weights as int8
codes and biases as int32 codes (as floats) and applies QAS in the optimizer
(``qas=True``), which makes it follow the same trajectory as the real domain.

Example
-------
>>> mplan = plan_model(read_tflite(tfl), tfl)                 # doctest: +SKIP
>>> tplan = build_train_plan(mplan, select_last_k(mplan, 2))  # doctest: +SKIP
>>> print(tplan.memory.report())                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from ..compile.plan import Plan
from ..compile.tflite_reader import UnsupportedOpError
from ..facts.c_headers import train_abi
from .layers import BACKWARD_OPS, TrainPlanError, WeightLayer, act_of, tail_end, weight_layer_info
from .memory import MemoryPlan, plan_memory

__all__ = ["Selection", "TrainOptions", "TailLayer", "Segment", "TrainPlan", "build_train_plan", "describe_selection"]

# ---- what trains ----------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What trains.

    Attributes
    ----------
    scheme
        A short name, emitted into the plan (``"last2"``, ``"bias"``, ``"sparse"``, ``"lora4"`` ...).
    weights
        Model layer index → trained output channels (ascending), or ``None`` for all.
    biases
        Model layers whose (whole) bias trains.
    lora
        Model layer index → LoRA rank (FULLY_CONNECTED, 1x1 stride-1 CONV_2D).
    lora_alpha
        LoRA scale = alpha / rank (``None``: alpha = rank, scale 1).
    lora_store_h
        Keep ``h = x.A`` from forward to backward instead of recomputing it.
    seed
        Seed of the LoRA ``A`` initialization.
    """

    scheme: str
    weights: Mapping[int, tuple[int, ...] | None] = field(default_factory=dict)
    biases: frozenset[int] = frozenset()
    lora: Mapping[int, int] = field(default_factory=dict)
    lora_alpha: float | None = None
    lora_store_h: bool = False
    seed: int = 0

    @property
    def layers(self) -> set[int]:
        return set(self.weights) | set(self.biases) | set(self.lora)


@dataclass(frozen=True)
class TrainOptions:
    """How the parameters are represented and which optimizer state exists.

    ``domain="real"``: parameters in real units (QAS is the identity).
    ``domain="quantized"``: weights in units of their per-channel scale, biases in
    units of ``s_W * s_x``; ``qas`` applies quantization-aware scaling.
    ``momentum=False`` leaves the momentum buffer out of the memory block (then
    only ``momentum = 0`` may be used at run time).
    """

    domain: Literal["real", "quantized"] = "real"
    qas: bool = True
    momentum: bool = True


@dataclass
class Segment:
    """One trainable tensor (or its trained rows) in the parameter vector."""

    kind: Literal["weight", "bias", "lora_a", "lora_b"]
    layer: int
    offset: int
    rows: int
    row_len: int
    decay: bool
    qscale: np.ndarray | None = None  # QUANTIZED domain: per row
    channels: tuple[int, ...] | None = None  # weight rows: trained channels (None = all)

    @property
    def count(self) -> int:
        return self.rows * self.row_len


@dataclass
class TailLayer:
    layer: int
    op: str
    act: str
    flags: int = 0
    seg_w: int = -1
    seg_b: int = -1
    seg_la: int = -1
    seg_lb: int = -1
    lora_rank: int = 0
    lora_scale: float = 1.0
    w_scale: np.ndarray | None = None
    b_scale: np.ndarray | None = None
    w_rows: np.ndarray | None = None  # int16 channel -> row, -1 frozen
    in_off: int = 0
    out_off: int = 0
    mask_off: int = 0
    aux_off: int = 0
    gin_off: int = 0
    gout_off: int = 0
    h_off: int = 0
    dh_off: int = 0


@dataclass
class TrainPlan:
    model_plan: Plan
    selection: Selection
    options: TrainOptions
    first_layer: int
    tail: list[TailLayer]
    segments: list[Segment]
    init_params: np.ndarray  # float32 [n_params]
    boundary_tensor: int  # graph tensor index
    n_logits: int
    memory: MemoryPlan

    @property
    def n_params(self) -> int:
        return int(self.init_params.size)

    @property
    def scheme(self) -> str:
        return self.selection.scheme

    def layout(self) -> list[dict[str, Any]]:
        """The parameter vector, segment by segment (for docs, JSON and the host)."""
        return [
            {
                "kind": s.kind,
                "layer": s.layer,
                "op": self.model_plan.layers[s.layer].op,
                "offset": s.offset,
                "rows": s.rows,
                "row_len": s.row_len,
                "count": s.count,
                "channels": list(s.channels) if s.channels is not None else None,
            }
            for s in self.segments
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "abi": train_abi(),
            "scheme": self.scheme,
            "domain": self.options.domain,
            "qas": self.options.qas,
            "momentum": self.options.momentum,
            "first_layer": self.first_layer,
            "tail_ops": [t.op for t in self.tail],
            "n_params": self.n_params,
            "n_logits": self.n_logits,
            "segments": self.layout(),
            "memory": self.memory.to_json(),
        }


def _check_tail(plan: Plan, first: int, end: int) -> None:
    g = plan.graph
    layers = plan.layers
    if first >= end:
        raise TrainPlanError(f"nothing to train before the loss (first trainable layer {first}, loss at {end})")
    for k in range(first, end):
        op = layers[k].op
        if op not in BACKWARD_OPS:
            raise UnsupportedOpError(
                f"training: op {op} (layer {k}) is in the trainable tail (layers {first}..{end - 1}) "
                f"but has no backward kernel; train only layers after it (tail ops with a backward: "
                f"{', '.join(sorted(BACKWARD_OPS))})"
            )
    boundary = layers[first].inputs[0]
    bt = g.tensor(boundary)
    if bt.dtype != "INT8" or bt.data is not None:
        raise TrainPlanError(f"the tail's input {bt.name!r} is not an int8 activation ({bt.dtype})")
    for k in range(first, end):
        if k > first and layers[k].inputs[0] != layers[k - 1].output:
            raise TrainPlanError(f"the tail is not a chain: layer {k} ({layers[k].op}) does not read layer {k - 1}")
        consumers = [c for c in g.consumers.get(layers[k].inputs[0], []) if c >= first]
        if consumers != [k]:
            raise TrainPlanError(
                f"the tail is not a chain: tensor {g.tensor(layers[k].inputs[0]).name!r} feeds layers {consumers}"
            )
    # the tail's output must be (through identity ops / a final SOFTMAX) the model's first output
    t = layers[end - 1].output
    for k in range(end, len(layers)):
        if layers[k].inputs[0] != t:
            raise TrainPlanError(f"layer {k} ({layers[k].op}) after the logits does not continue the chain")
        t = layers[k].output
    if t != g.outputs[0]:
        raise TrainPlanError("the last layer does not produce the model's first output")


def _check_selection(plan: Plan, sel: Selection, wl: dict[int, WeightLayer]) -> None:
    if not sel.layers:
        raise TrainPlanError(f"selection {sel.scheme!r} trains nothing")
    for k in sel.layers:
        if k not in wl:
            op = plan.layers[k].op if 0 <= k < len(plan.layers) else "?"
            raise TrainPlanError(f"layer {k} ({op}) has no weights to train")
    for k, ch in sel.weights.items():
        if ch is not None:
            if len(ch) == 0 or list(ch) != sorted(set(ch)) or ch[0] < 0 or ch[-1] >= wl[k].channels:
                raise TrainPlanError(f"layer {k}: trained channels must be ascending, unique, in [0, {wl[k].channels})")
            if len(ch) >= 32768:
                raise TrainPlanError(f"layer {k}: too many channels")
    for k in sel.biases:
        if wl[k].bias_q is None:
            raise TrainPlanError(f"layer {k} ({wl[k].op}) has no bias tensor to train")
    for k, r in sel.lora.items():
        if not wl[k].lora_ok:
            raise TrainPlanError(f"layer {k} ({wl[k].op}): LoRA needs FULLY_CONNECTED or a 1x1 stride-1 CONV_2D")
        if k in sel.weights:
            raise TrainPlanError(f"layer {k}: LoRA and full weights cannot both train")
        if not 1 <= r <= 0xFFFF:
            raise TrainPlanError(f"layer {k}: LoRA rank {r}")


def build_train_plan(plan: Plan, sel: Selection, options: TrainOptions | None = None) -> TrainPlan:
    """Decide the tail, the parameter vector and the memory plan for ``sel``.

    Raises
    ------
    UnsupportedOpError
        an op in the tail has no backward kernel (the message names it).
    TrainPlanError
        the selection does not fit the model.
    """
    opts = options or TrainOptions()
    if opts.domain not in ("real", "quantized"):
        raise TrainPlanError(f"unknown parameter domain {opts.domain!r}")
    end = tail_end(plan)
    wl = weight_layer_info(plan)
    _check_selection(plan, sel, wl)
    first = min(sel.layers)
    _check_tail(plan, first, end)
    quantized = opts.domain == "quantized"
    rng_base = int(sel.seed)

    segments: list[Segment] = []
    chunks: list[np.ndarray] = []
    offset = 0
    tail: list[TailLayer] = []
    keep: set[int] = set(sel.weights) | set(sel.lora)

    def add(seg: Segment, values: np.ndarray) -> int:
        nonlocal offset
        assert values.size == seg.count
        segments.append(seg)
        chunks.append(np.asarray(values, dtype=np.float32).reshape(-1))
        offset += seg.count
        return len(segments) - 1

    for k in range(first, end):
        tl = TailLayer(layer=k, op=plan.layers[k].op, act=act_of(plan, k))
        if k in wl:
            w = wl[k]
            tl.w_scale = w.w_scale
            tl.b_scale = w.b_scale
            if k in sel.weights:
                ch = sel.weights[k]
                idx = np.arange(w.channels) if ch is None else np.asarray(ch, dtype=np.int64)
                rows = (w.rows_q if quantized else w.rows_real)[idx]
                tl.seg_w = add(Segment("weight", k, offset, len(idx), w.row_len, True,
                                       w.w_scale[idx] if quantized else None,
                                       None if ch is None else tuple(int(c) for c in ch)), rows)
                if ch is not None:
                    m = np.full(w.channels, -1, dtype=np.int16)
                    m[idx] = np.arange(len(idx), dtype=np.int16)
                    tl.w_rows = m
            if k in sel.biases:
                assert w.bias_q is not None and w.b_scale is not None
                vals = w.bias_q.astype(np.float32) if quantized else w.bias_real
                assert vals is not None
                tl.seg_b = add(Segment("bias", k, offset, w.channels, 1, False,
                                       w.b_scale if quantized else None), vals)
            if k in sel.lora:
                r = int(sel.lora[k])
                rng = np.random.default_rng([rng_base, k])
                a = (rng.standard_normal((w.depth, r)) / np.sqrt(w.depth)).astype(np.float32)
                tl.lora_rank = r
                tl.lora_scale = float(np.float32((sel.lora_alpha if sel.lora_alpha is not None else r) / r))
                tl.seg_la = add(Segment("lora_a", k, offset, w.depth, r, True), a)
                tl.seg_lb = add(Segment("lora_b", k, offset, r, w.channels, True),
                                np.zeros((r, w.channels), dtype=np.float32))
        tail.append(tl)

    init = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    mem, per = plan_memory(plan, first, end, keep, sel.lora, sel.lora_store_h, opts.momentum, int(init.size), wl)
    for tl, d in zip(tail, per):
        tl.flags = d["flags"]
        for key in ("in_off", "out_off", "mask_off", "aux_off", "gin_off", "gout_off", "h_off", "dh_off"):
            if key in d:
                setattr(tl, key, int(d[key]))
    n_logits = plan.graph.tensor(plan.layers[end - 1].output).num_elements
    if n_logits < 2:
        raise TrainPlanError(f"the model's output has {n_logits} element(s); cross-entropy needs >= 2 classes")
    return TrainPlan(
        model_plan=plan,
        selection=sel,
        options=opts,
        first_layer=first,
        tail=tail,
        segments=segments,
        init_params=init,
        boundary_tensor=plan.layers[first].inputs[0],
        n_logits=n_logits,
        memory=mem,
    )


def describe_selection(tp: TrainPlan) -> str:
    """One line per trained layer: what trains and how many parameters."""
    lines = []
    for s in tp.segments:
        op = tp.model_plan.layers[s.layer].op
        what = {"weight": "weight rows", "bias": "bias", "lora_a": "LoRA A", "lora_b": "LoRA B"}[s.kind]
        extra = "" if s.channels is None or s.kind != "weight" else f" (channels {list(s.channels)})"
        lines.append(f"layer {s.layer:>3} {op:<18} {what:<12} {s.count:>7} params{extra}")
    return "\n".join(lines)
