"""Op lowering: TFLite op + tensors -> tinyfed layer (C op id + precomputed params).

Each op family lives in its own module and registers a lowering function with
:func:`.base.register`.  A lowering receives the graph and the op and returns a
:class:`Lowered` (or raises :class:`UnsupportedOpError` naming the variant it
cannot run).  The runtime's op list (firmware/include/tfd/model.h TFD_OP_LIST)
is the single source of op ids; :mod:`tinyfed_toolchain.facts.c_headers` reads it.
"""

from __future__ import annotations

from ..tflite_reader import Graph, Op, UnsupportedOpError
from . import activations, elementwise, gather, nn  # noqa: F401  (importing them registers their lowerings)
from .base import LOWERINGS, CArray, CStruct, Lowered, fused_activation

__all__ = ["CArray", "CStruct", "Lowered", "lower_op", "supported_ops", "fused_activation"]


def supported_ops() -> list[str]:
    """Every TFLite op name tinyfed lowers."""
    return sorted(LOWERINGS)


def lower_op(graph: Graph, op: Op) -> Lowered:
    fn = LOWERINGS.get(op.name)
    if fn is None:
        raise UnsupportedOpError(
            f"unsupported op: {op.name} (op {op.index}); tinyfed kernels: {', '.join(sorted(LOWERINGS))}"
        )
    if len(op.outputs) != 1:
        raise UnsupportedOpError(f"unsupported op: {op.name} (op {op.index}) with {len(op.outputs)} outputs")
    return fn(graph, op)
