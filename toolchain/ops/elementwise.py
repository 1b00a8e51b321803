"""Lowerings for elementwise, activation and data-movement ops: ADD, MUL,
SOFTMAX, LOGISTIC, TANH, RELU, RELU6, PAD, CONCATENATION, QUANTIZE,
DEQUANTIZE, RESHAPE (+ SQUEEZE / EXPAND_DIMS as reshapes).  Parameters follow
TFLite Micro's Prepare functions (structs: firmware/include/tfd/params_elementwise.h)."""

from __future__ import annotations

from ..tflite_reader import Graph, Op
from . import Lowered, UnsupportedOpError, register


@register("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def lower_reshape(graph: Graph, op: Op) -> Lowered:
    x_i, y_i = op.inputs[0], op.outputs[0]
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    if x.dtype != y.dtype or x.num_elements != y.num_elements:
        raise UnsupportedOpError(
            f"unsupported op: {op.name} (op {op.index}) from {x.dtype}{list(x.shape)} to {y.dtype}{list(y.shape)}"
        )
    if x.quantized and (x.scale != y.scale or x.zero_point != y.zero_point):
        raise UnsupportedOpError(f"unsupported op: {op.name} (op {op.index}) that changes quantization")
    # The shape operand (if any) is compile-time; the output shares the input's storage.
    return Lowered("RESHAPE", [x_i], y_i, None, alias_input=x_i)
