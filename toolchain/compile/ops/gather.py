"""Lowerings for the int8 ops that copy input codes to new places:
STRIDED_SLICE (Keras ``Cropping*D``, tensor slicing) and
RESIZE_NEAREST_NEIGHBOR (``tf.image.resize(..., "nearest")``, Keras
``Resizing(interpolation="nearest")``).

The index arithmetic TFLite Micro does at run time is done here, once: slices
become a start, step and count per 4-D axis; resizes become a source row and
column table.  TFLM never requantizes in these ops (the converter gives input
and output one quantization), so neither does tinyfed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..quant_math import tflite_round
from ..tflite_reader import Graph, Op, Tensor
from .base import MAX_DIMS, CArray, CStruct, Lowered, refuse, register, require_int8_io

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
INDEX_MAX = 32767  # the resize index tables are int16


# ---- STRIDED_SLICE ----------------------------------------------------------------

@dataclass(frozen=True)
class SliceSpec:
    """A strided slice as TFLM reads it: constant begin/end/strides and the masks."""

    begin: tuple[int, ...]
    end: tuple[int, ...]
    strides: tuple[int, ...]
    begin_mask: int = 0
    end_mask: int = 0
    shrink_axis_mask: int = 0


def _bit(mask: int, axis: int) -> bool:
    return bool(mask & (1 << axis))


def _resolve(index: int, size: int, stride: int) -> int:
    """A begin / end index made non-negative and clamped to the range the
    iteration direction allows ([0, size] forward, [-1, size - 1] backward)."""
    if index < 0:
        index += size
    lo, hi = (0, size) if stride > 0 else (-1, size - 1)
    return hi if index > hi else (lo if index < lo else index)


def eval_start_stop(spec: SliceSpec, shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """TFLM Eval: ``StridedSliceStartForAxis`` / ``StridedSliceEndForAxis``."""
    size, stride = shape[axis], spec.strides[axis]
    start = _resolve(spec.begin[axis], size, stride)
    if _bit(spec.begin_mask, axis):
        start = 0 if stride > 0 else size - 1
    if _bit(spec.shrink_axis_mask, axis):
        return start, (start if start >= size else start + 1)
    end = _resolve(spec.end[axis], size, stride)
    if _bit(spec.end_mask, axis):
        end = size if stride > 0 else -1
    return start, end


def prepare_dim(spec: SliceSpec, shape: tuple[int, ...], axis: int) -> int:
    """TFLM Prepare (``CheckOutputSize`` with ``StartForAxis`` / ``StopForAxis``): the
    output extent it requires for ``axis``."""
    size, stride = shape[axis], spec.strides[axis]
    start = end = 0
    if size != 0:
        forward = stride > 0
        start = _resolve((INT_MIN if forward else INT_MAX) if _bit(spec.begin_mask, axis) else spec.begin[axis],
                         size, stride)
        end = _resolve((INT_MAX if forward else INT_MIN) if _bit(spec.end_mask, axis) else spec.end[axis],
                       size, stride)
    if _bit(spec.shrink_axis_mask, axis):
        end = start + 1
    dim = math.ceil(float(np.float32(end - start) / np.float32(stride)))
    return max(dim, 0)


def _const_int32_vector(graph: Graph, op: Op, index: int, what: str, n: int) -> tuple[int, ...]:
    t = graph.tensor(index)
    if t.data is None:
        raise refuse(op, f"non-constant {what} tensor (TFLM requires it constant)")
    if t.dtype != "INT32":
        raise refuse(op, f"{t.dtype} {what} tensor (TFLM reads INT32)")
    values = tuple(int(v) for v in np.asarray(t.data).reshape(-1))
    if len(values) != n:
        raise refuse(op, f"{what} has {len(values)} entries for a rank-{n} input")
    return values


@register("STRIDED_SLICE")
def lower_strided_slice(graph: Graph, op: Op) -> Lowered:
    """TFLM ``StridedSlicePrepare`` + reference ``StridedSlice`` for int8.

    Supported: constant begin/end/strides (any sign, stride != 0), begin_mask,
    end_mask, shrink_axis_mask on inputs of rank 1..4.  Refused: ellipsis_mask and
    new_axis_mask (TFLM silently drops them, which changes the meaning) and
    ``offset`` (TFLM ignores it).
    """
    if len(op.inputs) != 4:
        raise refuse(op, f"{len(op.inputs)} inputs (TFLM requires input, begin, end, strides)")
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    rank = len(x.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise refuse(op, f"rank-{rank} input (TFLM supports rank 1..{MAX_DIMS})")
    opts = op.options
    masks = {k: int(getattr(opts, k, 0) or 0) if opts is not None else 0
             for k in ("beginMask", "endMask", "ellipsisMask", "newAxisMask", "shrinkAxisMask")}
    if masks["ellipsisMask"]:
        raise refuse(op, f"ellipsis_mask {masks['ellipsisMask']:#x} (TFLM ignores it; unsupported)")
    if masks["newAxisMask"]:
        raise refuse(op, f"new_axis_mask {masks['newAxisMask']:#x} (TFLM ignores it; unsupported)")
    if opts is not None and bool(getattr(opts, "offset", False)):
        raise refuse(op, "offset=True (TFLM ignores it; unsupported)")
    spec = SliceSpec(
        begin=_const_int32_vector(graph, op, op.inputs[1], "begin", rank),
        end=_const_int32_vector(graph, op, op.inputs[2], "end", rank),
        strides=_const_int32_vector(graph, op, op.inputs[3], "strides", rank),
        begin_mask=masks["beginMask"],
        end_mask=masks["endMask"],
        shrink_axis_mask=masks["shrinkAxisMask"],
    )
    if any(s == 0 for s in spec.strides):
        raise refuse(op, f"strides {list(spec.strides)} (a stride of 0)")
    shape = tuple(int(d) for d in x.shape)
    prepare_shape = [prepare_dim(spec, shape, a) for a in range(rank) if not _bit(spec.shrink_axis_mask, a)]
    if prepare_shape != [int(d) for d in y.shape]:
        raise refuse(op, f"output shape {list(y.shape)}; TFLM's Prepare requires {prepare_shape}")
    begin, stride, count = [0] * MAX_DIMS, [1] * MAX_DIMS, [1] * MAX_DIMS
    lead = MAX_DIMS - rank
    for a in range(rank):
        start, stop = eval_start_stop(spec, shape, a)
        begin[lead + a], stride[lead + a] = start, spec.strides[a]
        count[lead + a] = len(range(start, stop, spec.strides[a]))
    if int(np.prod(count)) != y.num_elements or y.num_elements == 0:
        raise refuse(op, f"an empty or inconsistent slice (counts {count[lead:]} for output {list(y.shape)})")
    params = CStruct("tfd_strided_slice_params_t", {"begin": begin, "stride": stride, "count": count})
    return Lowered("STRIDED_SLICE", [x_i], y_i, params)


# ---- RESIZE_NEAREST_NEIGHBOR -------------------------------------------------------

def nearest_neighbor_index(out_index: int, in_size: int, out_size: int, align_corners: bool,
                           half_pixel_centers: bool) -> int:
    """TFLM reference ``GetNearestNeighbor``, in float32 as TFLM computes it."""
    f = np.float32
    if align_corners and out_size > 1:
        scale = f(in_size - 1) / f(out_size - 1)
    else:
        scale = f(in_size) / f(out_size)
    offset = f(0.5) if half_pixel_centers else f(0.0)
    pos = float((f(out_index) + offset) * scale)
    value = tflite_round(pos) if align_corners else math.floor(pos)
    value = min(value, in_size - 1)
    if half_pixel_centers:
        value = max(0, value)
    return value


def _resize_shapes(graph: Graph, op: Op, x: Tensor, y: Tensor) -> tuple[int, int]:
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise refuse(op, f"input {list(x.shape)} / output {list(y.shape)}; TFLM requires 4-D NHWC")
    size = graph.tensor(op.inputs[1])
    if size.data is None:
        raise refuse(op, "non-constant size tensor (TFLM requires it constant)")
    if size.dtype != "INT32" or size.num_elements != 2 or len(size.shape) != 1:
        raise refuse(op, f"size tensor {size.dtype}{list(size.shape)} (TFLM requires INT32[2])")
    out_h, out_w = (int(v) for v in np.asarray(size.data).reshape(-1))
    if [x.shape[0], out_h, out_w, x.shape[3]] != [int(d) for d in y.shape]:
        raise refuse(op, f"size {[out_h, out_w]} for input {list(x.shape)} and output {list(y.shape)}")
    if max(x.shape[1], x.shape[2], out_h, out_w) > INDEX_MAX:
        raise refuse(op, f"spatial size beyond {INDEX_MAX}")
    return out_h, out_w


@register("RESIZE_NEAREST_NEIGHBOR")
def lower_resize_nearest_neighbor(graph: Graph, op: Op) -> Lowered:
    """TFLM ``ResizeNearestNeighborPrepare`` + reference kernel for int8, any
    combination of align_corners / half_pixel_centers (TFLM runs them all)."""
    if len(op.inputs) != 2:
        raise refuse(op, f"{len(op.inputs)} inputs (TFLM requires input and size)")
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    out_h, out_w = _resize_shapes(graph, op, x, y)
    align = bool(getattr(op.options, "alignCorners", False)) if op.options is not None else False
    half = bool(getattr(op.options, "halfPixelCenters", False)) if op.options is not None else False
    in_h, in_w = int(x.shape[1]), int(x.shape[2])
    in_y = [nearest_neighbor_index(i, in_h, out_h, align, half) for i in range(out_h)]
    in_x = [nearest_neighbor_index(i, in_w, out_w, align, half) for i in range(out_w)]
    params = CStruct(
        "tfd_resize_nn_params_t",
        {"in_y": CArray("int16_t", np.asarray(in_y, dtype=np.int64)),
         "in_x": CArray("int16_t", np.asarray(in_x, dtype=np.int64))},
    )
    return Lowered("RESIZE_NEAREST_NEIGHBOR", [x_i], y_i, params)
