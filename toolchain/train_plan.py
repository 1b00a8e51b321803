"""Training plan: what trains on the device, and the training memory plan.

Given the inference plan of an int8 model (:func:`tinyfed_toolchain.plan.plan_model`)
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
  like :mod:`tinyfed_toolchain.plan`.

Schemes (each returns a :class:`Selection`): :func:`select_last_k`,
:func:`select_biases`, :func:`select_lora`, :func:`select_all`, and the sparse
update by contribution analysis in :mod:`tinyfed_toolchain.train_sparse`.

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

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Mapping

import numpy as np

from .cabi import TYPE_SIZES
from .ops import fused_activation
from .paths import FIRMWARE_INCLUDE
from .plan import Plan, align_up, first_fit
from .tflite_reader import ModelError, UnsupportedOpError

__all__ = [
    "TRAINABLE_OPS",
    "BACKWARD_OPS",
    "Selection",
    "TrainOptions",
    "TailLayer",
    "Segment",
    "MemoryPlan",
    "TrainPlan",
    "TrainPlanError",
    "build_train_plan",
    "select_last_k",
    "select_biases",
    "select_lora",
    "select_all",
    "weight_layers",
    "lora_layers",
    "train_abi",
    "header_constants",
]

TRAINABLE_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
IDENTITY_OPS = frozenset({"RESHAPE", "QUANTIZE", "DEQUANTIZE"})
BACKWARD_OPS = frozenset(
    set(TRAINABLE_OPS) | {"MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "RELU", "RELU6"} | IDENTITY_OPS
)
ALIGN = 16


class TrainPlanError(ModelError):
    """The selection cannot be trained on this model (the message says why)."""


# ---- constants read from the C header (one definition, cannot drift) ----------------


@lru_cache(maxsize=None)
def header_constants() -> dict[str, int]:
    """``TFD_TRAIN_ABI``, ``TFD_TL_*`` flags, ``TFD_TSEG_*``, ``TFD_TACT_*``, domains."""
    text = (FIRMWARE_INCLUDE / "tfd" / "train_plan.h").read_text()
    out: dict[str, int] = {}
    for m in re.finditer(r"#define\s+(TFD_(?:TRAIN_ABI|TL_\w+))\s+(0x[0-9a-fA-F]+|\d+)u?", text):
        out[m.group(1)] = int(m.group(2), 0)
    for m in re.finditer(r"\b(TFD_(?:TSEG|TACT|TRAIN)_\w+)\s*=\s*(\d+)", text):
        out[m.group(1)] = int(m.group(2))
    return out


def train_abi() -> int:
    return header_constants()["TFD_TRAIN_ABI"]


def _flag(name: str) -> int:
    return header_constants()[f"TFD_TL_{name}"]


_ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _act_id(name: str) -> int:
    return header_constants()[f"TFD_TACT_{name}"]


def _seg_kind_id(kind: str) -> int:
    return header_constants()[f"TFD_TSEG_{kind.upper()}"]


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


# ---- the model, as the planner needs it -------------------------------------------------


@dataclass
class _WeightLayer:
    layer: int
    op: str
    channels: int
    row_len: int
    rows_q: np.ndarray  # [channels, row_len] float32 int8 codes, channel-major
    w_scale: np.ndarray  # [channels] float32
    bias_q: np.ndarray | None  # [channels] int32
    b_scale: np.ndarray | None  # [channels] float32
    lora_ok: bool  # FULLY_CONNECTED, or 1x1 stride-1 unpadded CONV_2D
    depth: int  # input features per position (FC depth / conv in_c / dw: 1)

    @property
    def rows_real(self) -> np.ndarray:
        return (self.rows_q * self.w_scale[:, None]).astype(np.float32)

    @property
    def bias_real(self) -> np.ndarray | None:
        if self.bias_q is None or self.b_scale is None:
            return None
        return (self.bias_q.astype(np.float32) * self.b_scale).astype(np.float32)


def _per_channel(scales: np.ndarray | None, n: int, what: str) -> np.ndarray:
    if scales is None or len(scales) == 0:
        raise TrainPlanError(f"{what} has no quantization scale")
    s = np.asarray(scales, dtype=np.float32).reshape(-1)
    if s.size == 1:
        return np.full(n, s[0], dtype=np.float32)
    if s.size != n:
        raise TrainPlanError(f"{what} has {s.size} scales for {n} channels")
    return s


def _weight_layer(plan: Plan, k: int) -> _WeightLayer:
    layer = plan.layers[k]
    g = plan.graph
    w = g.tensor(layer.inputs[1])
    if w.data is None or w.dtype != "INT8":
        raise TrainPlanError(f"layer {k} ({layer.op}) has no constant int8 filter")
    data = np.asarray(w.data, dtype=np.int8)
    lora_ok = False
    if layer.op == "FULLY_CONNECTED":
        units, depth = data.shape
        rows = data.reshape(units, depth)
        channels, depth_in, lora_ok = units, depth, True
    elif layer.op == "CONV_2D":
        oc, kh, kw, ic = data.shape
        rows = data.reshape(oc, kh * kw * ic)
        channels, depth_in = oc, ic
        lora_ok = (kh, kw) == (1, 1) and all(
            _int_field(plan, k, f, -1) == v for f, v in (("stride_h", 1), ("stride_w", 1), ("pad_h", 0), ("pad_w", 0)))
    else:  # DEPTHWISE_CONV_2D [1, kh, kw, oc] -> channel-major [oc, kh*kw]
        _, kh, kw, oc = data.shape
        rows = data.reshape(kh * kw, oc).T
        channels, depth_in = oc, 1
    w_scale = _per_channel(w.scales, channels, f"filter of layer {k} ({layer.op})")
    bias_q = b_scale = None
    if len(layer.inputs) > 2 and layer.inputs[2] >= 0:
        b = g.tensor(layer.inputs[2])
        if b.data is None:
            raise TrainPlanError(f"layer {k} ({layer.op}) has a non-constant bias")
        bias_q = np.asarray(b.data, dtype=np.int32).reshape(-1)
        b_scale = _per_channel(b.scales, channels, f"bias of layer {k} ({layer.op})")
    return _WeightLayer(
        layer=k,
        op=layer.op,
        channels=int(channels),
        row_len=int(rows.shape[1]),
        rows_q=np.ascontiguousarray(rows, dtype=np.float32),
        w_scale=w_scale,
        bias_q=bias_q,
        b_scale=b_scale,
        lora_ok=lora_ok,
        depth=int(depth_in),
    )


def _tail_end(plan: Plan) -> int:
    """End (exclusive) of the layers the loss sees: a final SOFTMAX (followed by
    identity ops only) is left out, the loss is softmax cross-entropy."""
    n = len(plan.layers)
    for s in range(n - 1, -1, -1):
        op = plan.layers[s].op
        if op == "SOFTMAX":
            return s
        if op not in IDENTITY_OPS:
            break
    return n


def weight_layers(plan: Plan) -> list[int]:
    """Indices of the FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D layers before the loss."""
    end = _tail_end(plan)
    return [k for k in range(end) if plan.layers[k].op in TRAINABLE_OPS]


def weight_layer_info(plan: Plan) -> dict[int, _WeightLayer]:
    """Filter rows, scales and biases of every weight layer (by model layer index)."""
    return {k: _weight_layer(plan, k) for k in weight_layers(plan)}


def lora_layers(plan: Plan) -> list[int]:
    """Weight layers that can carry a LoRA adapter (FC, 1x1 stride-1 unpadded CONV_2D)."""
    return [k for k in weight_layers(plan) if _weight_layer(plan, k).lora_ok]


def _act_of(plan: Plan, k: int) -> str:
    layer = plan.layers[k]
    if layer.op in ("RELU", "RELU6"):
        return layer.op
    if layer.op in TRAINABLE_OPS or layer.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return fused_activation(plan.graph.ops[k])
    return "NONE"


# ---- schemes ----------------------------------------------------------------------------


def select_last_k(plan: Plan, k: int = 1, *, biases: bool = True) -> Selection:
    """Weights (and biases) of the last ``k`` FULLY_CONNECTED / CONV layers."""
    layers = weight_layers(plan)
    if k < 1 or k > len(layers):
        raise TrainPlanError(f"last-k: k={k}, the model has {len(layers)} FULLY_CONNECTED/CONV layers")
    chosen = layers[-k:]
    with_bias = {i for i in chosen if biases and _weight_layer(plan, i).bias_q is not None}
    return Selection(scheme=f"last{k}", weights={i: None for i in chosen}, biases=frozenset(with_bias))


def select_biases(plan: Plan, k: int | None = None) -> Selection:
    """Biases only: of every weight layer that has one (``k=None``) or of the last ``k``."""
    layers = [i for i in weight_layers(plan) if _weight_layer(plan, i).bias_q is not None]
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
    bias_layers = {i for i in layers if biases and _weight_layer(plan, i).bias_q is not None}
    name = f"lora{rank}" + ("_store_h" if store_h else "")
    return Selection(scheme=name, lora={i: rank for i in layers}, biases=frozenset(bias_layers),
                     lora_alpha=alpha, lora_store_h=store_h, seed=seed)


def select_all(plan: Plan) -> Selection:
    """Every weight and bias of every FULLY_CONNECTED / CONV layer."""
    layers = weight_layers(plan)
    if not layers:
        raise TrainPlanError("the model has no FULLY_CONNECTED/CONV layer")
    with_bias = {i for i in layers if _weight_layer(plan, i).bias_q is not None}
    return Selection(scheme="all", weights={i: None for i in layers}, biases=frozenset(with_bias))


# ---- the plan ----------------------------------------------------------------------------


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
class _Buf:
    name: str
    kind: str
    size: int
    spans: list[tuple[int, int]]
    fixed: int | None = None
    offset: int = 0

    def overlaps(self, other: _Buf) -> bool:
        return any(a0 <= b1 and b0 <= a1 for a0, a1 in self.spans for b0, b1 in other.spans)

    def live_at(self, step: int) -> bool:
        return any(a <= step <= b for a, b in self.spans)


# Buffer kinds, as reported.
KIND_LABELS = {
    "activation": "forward activations (float)",
    "saved": "activations saved for backward",
    "mask": "activation masks (1 bit/elem)",
    "argmax": "max-pool routes (window index)",
    "lora_h": "LoRA h saved for backward",
    "lora_scratch": "LoRA h / dh scratch",
    "gradient": "activation gradients",
    "row": "filter row scratch",
    "boundary": "int8 boundary (arena, step 0)",
}
SAVED_KINDS = ("saved", "mask", "argmax", "lora_h")


@dataclass
class MemoryPlan:
    """Training SRAM, planned at generation time (bytes)."""

    arena_bytes: int  # int8 inference arena (the model's plan)
    work_bytes: int  # float work area (placed, with reuse)
    region_bytes: int  # max(arena, work), shared
    param_bytes: int  # one float vector of n_params, 16-aligned
    has_momentum: bool
    steps: int
    buffers: list[_Buf]
    row_floats: int = 0
    row_off: int = 0

    @property
    def state_bytes(self) -> int:
        return self.param_bytes * (3 if self.has_momentum else 2)

    @property
    def mem_bytes(self) -> int:
        """The whole block the trainer needs (TFD_TRAIN_MEM_BYTES)."""
        return self.region_bytes + self.state_bytes

    def bytes_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {k: 0 for k in KIND_LABELS}
        for b in self.buffers:
            out[b.kind] += b.size
        return out

    @property
    def saved_bytes(self) -> int:
        """Bytes held from forward into backward (activations, masks, routes, LoRA h)."""
        return sum(b.size for b in self.buffers if b.kind in SAVED_KINDS)

    def live_bytes(self, step: int) -> dict[str, int]:
        out: dict[str, int] = {k: 0 for k in KIND_LABELS}
        for b in self.buffers:
            if b.kind != "boundary" and b.live_at(step):
                out[b.kind] += b.size
        return out

    def peak(self) -> tuple[int, dict[str, int]]:
        """(step, live bytes by kind) at the step with the most live float bytes."""
        best_step, best = 0, self.live_bytes(0)
        for s in range(self.steps):
            live = self.live_bytes(s)
            if sum(live.values()) > sum(best.values()):
                best_step, best = s, live
        return best_step, best

    def report(self) -> str:
        """Inference SRAM vs training SRAM, bytes by category."""
        step, live = self.peak()
        lines = [
            f"inference SRAM (int8 arena)        {self.arena_bytes:>9,} B",
            f"training SRAM (TFD_TRAIN_MEM_BYTES) {self.mem_bytes:>8,} B"
            + (f"  (x{self.mem_bytes / self.arena_bytes:.1f})" if self.arena_bytes else ""),
            f"  shared region = max(arena, float work) {self.region_bytes:>7,} B",
            f"    float work area (placed)        {self.work_bytes:>9,} B; live at its peak (step {step}):",
        ]
        for k, v in live.items():
            if v:
                lines.append(f"      {KIND_LABELS[k]:<34} {v:>7,} B")
        lines.append(f"    saved from forward to backward  {self.saved_bytes:>9,} B")
        lines.append(f"  parameters                        {self.param_bytes:>9,} B")
        lines.append(f"  gradients                         {self.param_bytes:>9,} B")
        if self.has_momentum:
            lines.append(f"  momentum                          {self.param_bytes:>9,} B")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        step, live = self.peak()
        return {
            "arena_bytes": self.arena_bytes,
            "work_bytes": self.work_bytes,
            "region_bytes": self.region_bytes,
            "param_bytes": self.param_bytes,
            "state_bytes": self.state_bytes,
            "mem_bytes": self.mem_bytes,
            "saved_bytes": self.saved_bytes,
            "bytes_by_kind": self.bytes_by_kind(),
            "peak_step": step,
            "peak_live_by_kind": live,
        }


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


def _align(n: int) -> int:
    return align_up(n, ALIGN)


def _place(bufs: list[_Buf]) -> int:
    """Greedy placement (fixed buffers first, then largest first, lowest free offset)."""
    placed: list[_Buf] = [b for b in bufs if b.fixed is not None]
    for b in placed:
        b.offset = int(b.fixed)  # type: ignore[arg-type]
    rest = sorted((b for b in bufs if b.fixed is None),
                  key=lambda b: (-b.size, min(s for s, _ in b.spans), b.name))
    for buf in rest:
        buf.offset = first_fit(buf.size, [(p.offset, p.size) for p in placed if p.overlaps(buf)], ALIGN)
        placed.append(buf)
    return max((_align(b.offset + b.size) for b in bufs if b.fixed is None), default=0)


def _int_field(plan: Plan, k: int, name: str, default: int) -> int:
    """An integer field of layer k's lowered parameter struct."""
    params = plan.layers[k].params
    value = params.fields.get(name, default) if params is not None else default
    if not isinstance(value, int):
        raise TrainPlanError(f"layer {k}: parameter {name} is not an integer")
    return value


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


def _check_selection(plan: Plan, sel: Selection, wl: dict[int, _WeightLayer]) -> None:
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


def plan_memory(
    plan: Plan,
    first: int,
    end: int,
    keep_input: set[int],
    lora: Mapping[int, int],
    store_h: bool,
    has_momentum: bool,
    n_params: int,
    wl: Mapping[int, _WeightLayer] | None = None,
) -> tuple[MemoryPlan, list[dict[str, int]]]:
    """Lifetimes and offsets of every float buffer of the tail (see the module docstring).

    Returns the memory plan and, per tail layer, its flags and offsets.  ``wl``:
    weight-layer info by layer (:func:`weight_layer_info`), computed if absent.
    """
    g = plan.graph
    if wl is None:
        wl = weight_layer_info(plan)
    layers = plan.layers
    T = end - first

    def fwd(i: int) -> int:
        return 1 + i

    loss = T + 1

    def bwd(i: int) -> int:
        return 2 * T + 1 - i

    n_steps = 2 * T + 2
    act_t = [layers[first + i].inputs[0] for i in range(T)] + [layers[end - 1].output]
    elems = [g.tensor(t).num_elements for t in act_t]
    ops = [layers[first + i].op for i in range(T)]
    per: list[dict[str, int]] = [{"flags": 0} for _ in range(T)]

    # activation buffers A[0..T]; identity ops share storage
    a_root = list(range(T + 1))
    for i in range(T):
        if ops[i] in IDENTITY_OPS:
            a_root[i + 1] = a_root[i]
            per[i]["flags"] |= _flag("ALIAS")
    a_span: dict[int, list[int]] = {}

    def touch(i: int, step: int) -> None:
        r = a_root[i]
        s = a_span.setdefault(r, [step, step])
        s[0], s[1] = min(s[0], step), max(s[1], step)

    touch(0, 0)
    for i in range(T):
        touch(i, fwd(i))
        touch(i + 1, fwd(i))
    touch(T, loss)
    for i in range(T):
        if first + i in keep_input:
            touch(i, bwd(i))
            per[i]["flags"] |= _flag("KEEP_INPUT")

    def covers(i: int, step: int) -> bool:
        lo, hi = a_span[a_root[i]]
        return lo <= step <= hi

    bufs: list[_Buf] = []
    for r, (lo, hi) in a_span.items():
        kind = "saved" if hi > loss else "activation"
        bufs.append(_Buf(f"A{r}", kind, 4 * max(elems[i] for i in range(T + 1) if a_root[i] == r), [(lo, hi)]))
    a_buf = {int(b.name[1:]): b for b in bufs}

    # MAX_POOL_2D routes (a window index per output: 1/4 of a float, cheaper than
    # keeping the pool's input to recompute them) and activation-derivative bits
    aux: dict[int, _Buf] = {}
    masks: dict[int, _Buf] = {}
    for i in range(T):
        k = first + i
        if ops[i] == "MAX_POOL_2D":
            taps = _int_field(plan, k, "filter_h", 1) * _int_field(plan, k, "filter_w", 1)
            wide = taps > 256
            per[i]["flags"] |= _flag("ARGMAX") | (_flag("ARGMAX_WIDE") if wide else 0)
            aux[i] = _Buf(f"R{i}", "argmax", elems[i + 1] * (2 if wide else 1), [(fwd(i), bwd(i))])
        act = _act_of(plan, k)
        if act != "NONE":
            step = bwd(i + 1) if i < T - 1 else loss
            if covers(i + 1, step):
                per[i]["flags"] |= _flag("MASK_OUTPUT")  # the output is kept anyway: derive it
            else:
                per[i]["flags"] |= _flag("MASK_BITS")
                masks[i] = _Buf(f"M{i}", "mask", (elems[i + 1] + 7) // 8, [(fwd(i), step)])
    bufs += aux.values()
    bufs += masks.values()

    # gradients G[1..T] (G[i] = dL/dA[i]); identity ops and RELU/RELU6 pass dz through in place
    g_root = list(range(T + 1))
    for i in range(T - 1, 0, -1):
        if ops[i] in IDENTITY_OPS or ops[i] in ("RELU", "RELU6"):
            g_root[i] = g_root[i + 1]
    g_span: dict[int, list[int]] = {}

    def gtouch(i: int, step: int) -> None:
        r = g_root[i]
        s = g_span.setdefault(r, [step, step])
        s[0], s[1] = min(s[0], step), max(s[1], step)

    gtouch(T, loss)
    for i in range(T - 1, -1, -1):
        gtouch(i + 1, bwd(i))  # dz of layer i
        if i >= 1:
            gtouch(i, bwd(i))  # dx of layer i
            per[i]["flags"] |= _flag("NEED_DX")
    g_buf: dict[int, _Buf] = {}
    for r, (lo, hi) in g_span.items():
        size = 4 * max(elems[i] for i in range(1, T + 1) if g_root[i] == r)
        g_buf[r] = _Buf(f"G{r}", "gradient", size, [(lo, hi)])
    bufs += g_buf.values()

    # filter-row scratch and LoRA buffers
    row_floats = 0
    row_spans: list[tuple[int, int]] = []
    lora_bufs: dict[int, tuple[_Buf, _Buf]] = {}
    for i in range(T):
        k = first + i
        if ops[i] in TRAINABLE_OPS:
            w = wl[k]
            row_floats = max(row_floats, w.row_len)
            row_spans.append((fwd(i), fwd(i)))
            if i >= 1:
                row_spans.append((bwd(i), bwd(i)))
            if k in lora:
                rows = elems[i] // w.depth
                size = 4 * rows * int(lora[k])
                if store_h:
                    h = _Buf(f"H{i}", "lora_h", size, [(fwd(i), bwd(i))])
                    per[i]["flags"] |= _flag("LORA_STORE_H")
                else:
                    h = _Buf(f"H{i}", "lora_scratch", size, [(fwd(i), fwd(i)), (bwd(i), bwd(i))])
                dh = _Buf(f"D{i}", "lora_scratch", size, [(bwd(i), bwd(i))])
                lora_bufs[i] = (h, dh)
                bufs += [h, dh]
    row_buf = _Buf("ROW", "row", 4 * row_floats, row_spans) if row_floats else None
    if row_buf is not None:
        bufs.append(row_buf)

    # the int8 boundary tensor is read (dequantized) at step 0 from its arena slot
    boundary = act_t[0]
    bt = g.tensor(boundary)
    bufs.append(_Buf("B", "boundary", bt.num_elements * TYPE_SIZES[bt.dtype], [(0, 0)],
                     fixed=plan.arena_offsets[boundary]))

    work = _place(bufs)
    for i in range(T):
        d = per[i]
        d["in_off"] = a_buf[a_root[i]].offset
        d["out_off"] = a_buf[a_root[i + 1]].offset
        d["gout_off"] = g_buf[g_root[i + 1]].offset
        d["gin_off"] = g_buf[g_root[i]].offset if i >= 1 else 0
        d["aux_off"] = aux[i].offset if i in aux else 0
        d["mask_off"] = masks[i].offset if i in masks else 0
        if i in lora_bufs:
            d["h_off"], d["dh_off"] = lora_bufs[i][0].offset, lora_bufs[i][1].offset
    region = _align(max(work, plan.arena_bytes))
    mem = MemoryPlan(
        arena_bytes=plan.arena_bytes,
        work_bytes=work,
        region_bytes=region,
        param_bytes=_align(4 * n_params),
        has_momentum=has_momentum,
        steps=n_steps,
        buffers=bufs,
        row_floats=row_floats,
        row_off=row_buf.offset if row_buf is not None else 0,
    )
    return mem, per


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
    end = _tail_end(plan)
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
        tl = TailLayer(layer=k, op=plan.layers[k].op, act=_act_of(plan, k))
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


def selection_from_spec(plan: Plan, spec: str, *, x: np.ndarray | None = None, y: np.ndarray | None = None,
                        work_dir: Any = None, seed: int = 0) -> Selection:
    """A selection from a short name: ``last`` / ``lastK``, ``bias`` / ``biasK`` (last K
    layers' biases), ``all``, ``loraR`` (``loraR-store-h``, ``loraR-bias``), or
    ``sparse:BYTES`` / ``sparseNk`` (budget; needs int8 samples ``x``, labels ``y``
    and a ``work_dir`` for the contribution analysis)."""
    m = re.fullmatch(r"(last|bias|all|lora|sparse)(\d*)(k?)((?:-store-h|-bias)*)(?::(\d+))?", spec.strip())
    if not m:
        raise TrainPlanError(f"unknown training scheme {spec!r} (last[K], bias[K], all, lora[R][-store-h][-bias], "
                             "sparse:BYTES / sparse<N>k)")
    kind, num, kilo, flags, budget = m.groups()
    if kind == "last":
        return select_last_k(plan, int(num or 1))
    if kind == "bias":
        return select_biases(plan, int(num) if num else None)
    if kind == "all":
        return select_all(plan)
    if kind == "lora":
        return select_lora(plan, int(num or 4), store_h="-store-h" in flags, biases="-bias" in flags, seed=seed)
    nbytes = int(budget) if budget else int(num or 0) * (1024 if kilo else 1)
    if nbytes <= 0 or x is None or y is None or work_dir is None:
        raise TrainPlanError("sparse: give a budget (sparse:BYTES or sparse<N>k) and samples for the contribution analysis")
    from .train_sparse import select_sparse

    return select_sparse(plan, x, y, nbytes, work_dir)[0]


__all__ += ["describe_selection", "plan_memory", "selection_from_spec", "tail_end", "weight_layer_info", "KIND_LABELS"]

tail_end = _tail_end
