"""The model's layers as the training planner sees them: which can train, which have a
backward kernel, each weight layer's filter rows, scales and bias, and where the
loss sits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compile.ops import fused_activation
from ..compile.plan import Plan
from ..compile.tflite_reader import ModelError

__all__ = ["TRAINABLE_OPS", "IDENTITY_OPS", "BACKWARD_OPS", "TrainPlanError", "WeightLayer", "weight_layer",
           "weight_layers", "weight_layer_info", "lora_layers", "tail_end", "act_of", "int_field"]

TRAINABLE_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
IDENTITY_OPS = frozenset({"RESHAPE", "QUANTIZE", "DEQUANTIZE"})
BACKWARD_OPS = frozenset(
    set(TRAINABLE_OPS) | {"MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "RELU", "RELU6"} | IDENTITY_OPS
)

class TrainPlanError(ModelError):
    """The selection cannot be trained on this model (the message says why)."""


@dataclass
class WeightLayer:
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


def weight_layer(plan: Plan, k: int) -> WeightLayer:
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
            int_field(plan, k, f, -1) == v for f, v in (("stride_h", 1), ("stride_w", 1), ("pad_h", 0), ("pad_w", 0)))
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
    return WeightLayer(
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


def tail_end(plan: Plan) -> int:
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
    end = tail_end(plan)
    return [k for k in range(end) if plan.layers[k].op in TRAINABLE_OPS]


def weight_layer_info(plan: Plan) -> dict[int, WeightLayer]:
    """Filter rows, scales and biases of every weight layer (by model layer index)."""
    return {k: weight_layer(plan, k) for k in weight_layers(plan)}


def lora_layers(plan: Plan) -> list[int]:
    """Weight layers that can carry a LoRA adapter (FC, 1x1 stride-1 unpadded CONV_2D)."""
    return [k for k in weight_layers(plan) if weight_layer(plan, k).lora_ok]


def act_of(plan: Plan, k: int) -> str:
    layer = plan.layers[k]
    if layer.op in ("RELU", "RELU6"):
        return layer.op
    if layer.op in TRAINABLE_OPS or layer.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return fused_activation(plan.graph.ops[k])
    return "NONE"


def int_field(plan: Plan, k: int, name: str, default: int) -> int:
    """An integer field of layer k's lowered parameter struct."""
    params = plan.layers[k].params
    value = params.fields.get(name, default) if params is not None else default
    if not isinstance(value, int):
        raise TrainPlanError(f"layer {k}: parameter {name} is not an integer")
    return value
