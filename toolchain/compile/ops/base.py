"""What every op lowering shares: the lowered-layer types, the registry and the checks.

The op modules (:mod:`.nn`, :mod:`.elementwise`, :mod:`.activations`,
:mod:`.gather`) import this module and register their lowerings with
:func:`register`; the package (:mod:`tinyfed_toolchain.compile.ops`) loads
them all and looks lowerings up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import numpy as np

from ...facts.c_headers import define
from ..tflite_reader import Graph, ModelError, Op, Tensor, UnsupportedOpError

__all__ = ["CArray", "CStruct", "Lowered", "LoweringFn", "register", "LOWERINGS"]


@dataclass
class CArray:
    """A constant array emitted as ``static const <ctype> name[] = {...}``."""

    ctype: str  # "int32_t", "int8_t", ...
    values: np.ndarray


FieldValue = Union[int, float, bool, CArray, list[int], list[float]]


@dataclass
class CStruct:
    """A constant parameter struct emitted with designated initializers."""

    ctype: str
    fields: dict[str, FieldValue] = field(default_factory=dict)


@dataclass
class Lowered:
    op: str  # TFD_OP_LIST name, e.g. "CONV_2D"
    inputs: list[int]  # tensor indices, -1 for an absent optional input
    output: int
    params: CStruct | None = None
    alias_input: int | None = None  # output shares this input's storage (RESHAPE)
    # Arena bytes the layer's optimized kernel needs while it runs (im2col
    # columns...): the planner places them (live during this layer only) and
    # writes params.scratch_offset / params.scratch_bytes.
    scratch_bytes: int = 0
    # True when the kernel also runs without that scratch (only slower): the
    # planner then keeps it only if it does not grow the arena (plan.py).
    scratch_optional: bool = False


LoweringFn = Callable[[Graph, Op], Lowered]
LOWERINGS: dict[str, LoweringFn] = {}


def register(*names: str) -> Callable[[LoweringFn], LoweringFn]:
    def deco(fn: LoweringFn) -> LoweringFn:
        for n in names:
            LOWERINGS[n] = fn
        return fn

    return deco


# ---- helpers shared by the op modules -------------------------------------------

def require_type(graph: Graph, op: Op, tensor_index: int, *types: str) -> None:
    t = graph.tensor(tensor_index)
    if t.dtype not in types:
        raise UnsupportedOpError(
            f"unsupported op: {op.name} (op {op.index}) with {t.dtype} tensor {t.name!r}; "
            f"supported: {'/'.join(types)}"
        )


def require_per_tensor(graph: Graph, op: Op, tensor_index: int) -> None:
    t = graph.tensor(tensor_index)
    if t.per_channel:
        raise UnsupportedOpError(
            f"unsupported op: {op.name} (op {op.index}) with per-channel quantized tensor {t.name!r}"
        )


def fused_activation(op: Op) -> str:
    """Name of the op's fused activation function ("NONE", "RELU", ...)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    code = getattr(op.options, "fusedActivationFunction", 0) if op.options is not None else 0
    names = {v: k for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}
    name = names.get(int(code), f"#{code}")
    if name not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise UnsupportedOpError(f"unsupported op: {op.name} (op {op.index}) with fused activation {name}")
    return name


MAX_DIMS = define("TFD_MAX_DIMS", "model.h")  # the runtime's right-aligned tensor rank


def refuse(op: Op, reason: str) -> UnsupportedOpError:
    """The error for a variant of ``op`` tinyfed (or TFLM) cannot run."""
    return UnsupportedOpError(f"unsupported op: {op.name} (op {op.index}): {reason}")


def dims4(op: Op, t: Tensor) -> list[int]:
    """``t``'s shape right-aligned into the runtime's 4 dims (refused above rank 4)."""
    if len(t.shape) > MAX_DIMS:
        raise refuse(op, f"tensor {t.name!r} has rank {len(t.shape)} (at most {MAX_DIMS} supported)")
    shape = [int(d) for d in t.shape]
    return [1] * (MAX_DIMS - len(shape)) + shape


def require_int8_io(graph: Graph, op: Op, inputs: Sequence[int]) -> None:
    """``inputs`` and the op's output are per-tensor quantized int8 tensors."""
    for i in [*inputs, op.outputs[0]]:
        require_type(graph, op, i, "INT8")
        require_per_tensor(graph, op, i)
        if not graph.tensor(i).quantized:
            raise refuse(op, f"int8 tensor {graph.tensor(i).name!r} has no quantization parameters")


def check_broadcast(op: Op, a: Tensor, b: Tensor, y: Tensor) -> None:
    """``a`` and ``b`` broadcast to ``y`` in the runtime's 4 dims (tfd/broadcast.h)."""
    if tuple(a.shape) == tuple(b.shape) == tuple(y.shape):
        return  # no broadcasting: any rank (the kernel loops over the flat size)
    da, db, dy = dims4(op, a), dims4(op, b), dims4(op, y)
    for k in range(MAX_DIMS):
        if dy[k] != max(da[k], db[k]) or da[k] not in (1, dy[k]) or db[k] not in (1, dy[k]):
            raise refuse(op, f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast to {list(y.shape)}")


__all__ += [
    "require_type", "require_per_tensor", "fused_activation", "ModelError", "UnsupportedOpError",
    "MAX_DIMS", "refuse", "dims4", "require_int8_io", "check_broadcast",
]
