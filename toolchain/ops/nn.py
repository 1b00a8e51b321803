"""Lowerings for the "nn" ops: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
MAX/AVERAGE_POOL_2D, MEAN.  Parameters follow TFLite Micro's Prepare functions
exactly (see firmware/include/tfd/params_nn.h for the struct layouts)."""

from __future__ import annotations

import numpy as np

from ..quant_math import activation_range, per_channel_multipliers
from ..tflite_reader import Graph, Op
from . import CArray, CStruct, Lowered, UnsupportedOpError, fused_activation, register, require_type


@register("FULLY_CONNECTED")
def lower_fully_connected(graph: Graph, op: Op) -> Lowered:
    if len(op.inputs) < 2:
        raise UnsupportedOpError(f"unsupported op: FULLY_CONNECTED (op {op.index}) without a filter")
    x_i, w_i = op.inputs[0], op.inputs[1]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    y_i = op.outputs[0]
    require_type(graph, op, x_i, "INT8")
    require_type(graph, op, w_i, "INT8")
    require_type(graph, op, y_i, "INT8")
    if b_i >= 0:
        require_type(graph, op, b_i, "INT32")
    x, w, y = graph.tensor(x_i), graph.tensor(w_i), graph.tensor(y_i)
    if w.data is None:
        raise UnsupportedOpError(f"unsupported op: FULLY_CONNECTED (op {op.index}) with a non-constant filter")
    if len(w.shape) != 2:
        raise UnsupportedOpError(f"unsupported op: FULLY_CONNECTED (op {op.index}) with filter shape {w.shape}")
    if op.options is not None and getattr(op.options, "keepNumDims", False):
        # The output keeps the input's leading dims; the math is unchanged.
        pass
    units, depth = w.shape
    if x.num_elements % depth != 0:
        raise UnsupportedOpError(
            f"unsupported op: FULLY_CONNECTED (op {op.index}): input of {x.num_elements} elements "
            f"is not a multiple of the filter depth {depth}"
        )
    per_channel = w.per_channel
    channels = units if per_channel else 1
    assert w.scales is not None
    mults, shifts = per_channel_multipliers(x.scale, w.scales, y.scale, channels)
    act_min, act_max = activation_range(fused_activation(op), y.scale, y.zero_point)
    params = CStruct(
        "tfd_fc_params_t",
        {
            "input_offset": -x.zero_point,
            "filter_offset": -w.zero_point,
            "output_offset": y.zero_point,
            "act_min": act_min,
            "act_max": act_max,
            "n_mult": channels,
            "mult": CArray("int32_t", np.asarray(mults, dtype=np.int64)),
            "shift": CArray("int32_t", np.asarray(shifts, dtype=np.int64)),
        },
    )
    return Lowered("FULLY_CONNECTED", [x_i, w_i, b_i], y_i, params)
