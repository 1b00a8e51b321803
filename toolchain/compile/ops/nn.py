"""Lowerings for the "nn" ops: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
MAX/AVERAGE_POOL_2D, MEAN.  Parameters follow TFLite Micro's Prepare functions
exactly (see firmware/include/tfd/params_nn.h for the struct layouts)."""

from __future__ import annotations

import numpy as np

from ...facts.c_headers import conv_dsp_scratch_bytes, dw_dsp_scratch_bytes
from ..quant_math import activation_range, f64, per_channel_multipliers, quantize_multiplier
from ..tflite_reader import Graph, Op
from .base import CArray, CStruct, Lowered, UnsupportedOpError, fused_activation, register, require_type


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
    if b_i >= 0 and (graph.tensor(b_i).data is None or graph.tensor(b_i).num_elements != units):
        raise UnsupportedOpError(f"unsupported op: FULLY_CONNECTED (op {op.index}) with a bias that is not "
                                 f"{units} constant values")
    if not w.quantized or (w.per_channel and (len(w.scales) != units or w.quant_dim != 0)):  # type: ignore[arg-type]
        raise UnsupportedOpError(f"unsupported op: FULLY_CONNECTED (op {op.index}) with "
                                 f"{0 if w.scales is None else len(w.scales)} filter scales for {units} units")
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
    if b_i < 0 or graph.tensor(b_i).data is not None:
        # bias + input_offset * sum(filter row) per unit, wrapped to int32 like the
        # accumulator (params_nn.h): the optimized kernels start from it.  Left
        # NULL for a bias computed at run time (the kernels then use the reference).
        row_sums = np.asarray(w.data, dtype=np.int64).reshape(units, depth).sum(axis=1)
        bias = (np.asarray(graph.tensor(b_i).data, dtype=np.int64).reshape(-1) if b_i >= 0
                else np.zeros(units, np.int64))
        acc_init = ((bias - x.zero_point * row_sums + 2**31) % 2**32) - 2**31
        params.fields["acc_init"] = CArray("int32_t", acc_init)
    return Lowered("FULLY_CONNECTED", [x_i, w_i, b_i], y_i, params)


# ---- shared helpers for the spatial ops ------------------------------------------

_PADDING_NAMES = {0: "SAME", 1: "VALID"}


def _refuse(op: Op, reason: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"unsupported op: {op.name} (op {op.index}) {reason}")


def _opt(op: Op, name: str, default: int) -> int:
    return int(getattr(op.options, name, default)) if op.options is not None else default


def _padding_name(op: Op) -> str:
    code = _opt(op, "padding", 0)
    if code not in _PADDING_NAMES:
        raise _refuse(op, f"with padding type #{code}")
    return _PADDING_NAMES[code]


def out_size(padding: str, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """TFLM ComputeOutSize."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def leading_padding(in_size: int, filter_size: int, out: int, stride: int, dilation: int) -> int:
    """TFLM ComputePaddingWithOffset: the top/left padding (total // 2; the odd
    remainder, TFLM's ``offset``, goes to the bottom/right and is implicit in
    the output size, so the reference kernels never read it)."""
    effective = (filter_size - 1) * dilation + 1
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2


def _spatial_geometry(
    op: Op, in_shape: tuple[int, ...], out_shape: tuple[int, ...], fh: int, fw: int, dilation: tuple[int, int]
) -> dict[str, int]:
    """Strides, dilation and top/left padding, TFLM ComputePaddingHeightWidth;
    checks the output tensor's H, W against the sizes TFLM would compute."""
    padding = _padding_name(op)
    sh, sw = _opt(op, "strideH", 1), _opt(op, "strideW", 1)
    dh, dw = dilation
    if min(sh, sw, dh, dw) < 1:
        raise _refuse(op, f"with stride {sh}x{sw} / dilation {dh}x{dw}")
    if max(sh, sw, dh, dw) > 0xFFFF:
        raise _refuse(op, f"with stride {sh}x{sw} / dilation {dh}x{dw} beyond 16 bits")
    ih, iw = in_shape[1], in_shape[2]
    oh = out_size(padding, ih, fh, sh, dh)
    ow = out_size(padding, iw, fw, sw, dw)
    if (oh, ow) != (out_shape[1], out_shape[2]):
        raise _refuse(
            op,
            f"whose output {out_shape[1]}x{out_shape[2]} differs from the {oh}x{ow} that {padding} "
            f"padding gives for a {ih}x{iw} input",
        )
    ph = leading_padding(ih, fh, oh, sh, dh)
    pw = leading_padding(iw, fw, ow, sw, dw)
    if max(ph, pw) > 0x7FFF:
        raise _refuse(op, f"with padding {ph}x{pw} beyond 16 bits")
    return {"stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw, "pad_h": ph, "pad_w": pw}


def _check_int8_4d(graph: Graph, op: Op, x_i: int, y_i: int) -> None:
    require_type(graph, op, x_i, "INT8")
    require_type(graph, op, y_i, "INT8")
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise _refuse(op, f"with input shape {list(x.shape)} / output shape {list(y.shape)}; needs 4-D NHWC")
    if x.shape[0] != y.shape[0]:
        raise _refuse(op, f"with input batch {x.shape[0]} != output batch {y.shape[0]}")
    for t in (x, y):
        if t.data is not None:
            raise _refuse(op, f"with a constant input/output tensor {t.name!r}")
        if t.per_channel:
            raise _refuse(op, f"with per-channel quantized activation tensor {t.name!r}")


def _conv_common(graph: Graph, op: Op, depthwise: bool) -> Lowered:
    if len(op.inputs) < 2:
        raise _refuse(op, "without a filter")
    x_i, w_i = op.inputs[0], op.inputs[1]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    y_i = op.outputs[0]
    _check_int8_4d(graph, op, x_i, y_i)
    x, w, y = graph.tensor(x_i), graph.tensor(w_i), graph.tensor(y_i)
    if w.dtype != "INT8":
        raise _refuse(op, f"with {w.dtype} filter {w.name!r}; supported: INT8 (no int4, no hybrid)")
    if w.data is None:
        raise _refuse(op, "with a non-constant filter")
    if len(w.shape) != 4:
        raise _refuse(op, f"with filter shape {list(w.shape)}")
    if not w.quantized or w.scales is None:
        raise _refuse(op, "with an unquantized filter")
    if w.zero_points is not None and np.any(w.zero_points != 0):
        raise _refuse(op, "with a non-zero filter zero point (int8 filters must be symmetric)")
    if b_i >= 0:
        require_type(graph, op, b_i, "INT32")
        if graph.tensor(b_i).data is None:
            raise _refuse(op, "with a non-constant bias")
    ic = x.shape[3]
    oc = y.shape[3]
    if depthwise:
        one, fh, fw, w_oc = w.shape
        if one != 1 or w_oc != oc:
            raise _refuse(op, f"with filter shape {list(w.shape)} for output channels {oc}")
        mult = _opt(op, "depthMultiplier", 1)
        if mult < 1 or ic * mult != oc:
            raise _refuse(
                op, f"with depth_multiplier {mult}: input channels {ic} x {mult} != output channels {oc}"
            )
        quant_dim = 3
    else:
        w_oc, fh, fw, w_ic = w.shape
        if w_oc != oc:
            raise _refuse(op, f"with {w_oc} filters for {oc} output channels")
        if w_ic != ic:
            raise _refuse(
                op,
                f"as a grouped convolution (input channels {ic} != filter input channels {w_ic}); "
                "tinyfed runs groups = 1 only",
            )
        mult = 1
        quant_dim = 0
    if w.per_channel and (len(w.scales) != oc or w.quant_dim != quant_dim):
        raise _refuse(
            op, f"with {len(w.scales)} filter scales on dimension {w.quant_dim} for {oc} output channels"
        )
    if b_i >= 0 and graph.tensor(b_i).num_elements != oc:
        raise _refuse(op, f"with {graph.tensor(b_i).num_elements} biases for {oc} output channels")
    dilation = (_opt(op, "dilationHFactor", 1), _opt(op, "dilationWFactor", 1))
    geo = _spatial_geometry(op, x.shape, y.shape, fh, fw, dilation)
    mults, shifts = per_channel_multipliers(x.scale, w.scales, y.scale, oc)
    act_min, act_max = activation_range(fused_activation(op), y.scale, y.zero_point)
    # bias + input_offset * sum(filter) per output channel, wrapped to int32 like the
    # kernel's accumulator (see params_nn.h).
    filt = np.asarray(w.data, dtype=np.int64)
    filter_sums = filt.sum(axis=(0, 1, 2)) if depthwise else filt.reshape(oc, -1).sum(axis=1)
    bias = np.asarray(graph.tensor(b_i).data, dtype=np.int64).reshape(-1) if b_i >= 0 else np.zeros(oc, np.int64)
    acc_init = (bias - x.zero_point * filter_sums).astype(np.int64)
    acc_init = ((acc_init + 2**31) % 2**32) - 2**31
    params = CStruct(
        "tfd_conv_params_t",
        {
            **geo,
            "input_offset": -x.zero_point,
            "output_offset": y.zero_point,
            "act_min": act_min,
            "act_max": act_max,
            "depth_multiplier": mult,
            "mult": CArray("int32_t", np.asarray(mults, dtype=np.int64)),
            "shift": CArray("int32_t", np.asarray(shifts, dtype=np.int64)),
            "acc_init": CArray("int32_t", acc_init),
        },
    )
    # Scratch of the optimized kernels (params scratch_offset/bytes, set by the planner):
    # CONV_2D's im2col columns, DEPTHWISE_CONV_2D's widened filter.
    scratch = dw_dsp_scratch_bytes(fh * fw, oc, mult) if depthwise else conv_dsp_scratch_bytes(fh * fw * ic)
    return Lowered(op.name, [x_i, w_i, b_i], y_i, params, scratch_bytes=scratch)


@register("CONV_2D")
def lower_conv_2d(graph: Graph, op: Op) -> Lowered:
    """CONV_2D int8 per-channel (TFLM ConvPrepare + PopulateConvolutionQuantizationParams)."""
    return _conv_common(graph, op, depthwise=False)


@register("DEPTHWISE_CONV_2D")
def lower_depthwise_conv_2d(graph: Graph, op: Op) -> Lowered:
    """DEPTHWISE_CONV_2D int8 per-channel, any depth multiplier (TFLM DepthwiseConvPrepare)."""
    return _conv_common(graph, op, depthwise=True)


@register("MAX_POOL_2D", "AVERAGE_POOL_2D")
def lower_pool_2d(graph: Graph, op: Op) -> Lowered:
    """MAX/AVERAGE_POOL_2D int8 (TFLM PoolingPrepare): input and output share quantization."""
    x_i, y_i = op.inputs[0], op.outputs[0]
    _check_int8_4d(graph, op, x_i, y_i)
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    if x.shape[3] != y.shape[3]:
        raise _refuse(op, f"with input channels {x.shape[3]} != output channels {y.shape[3]}")
    # TFLM PoolingPrepare: |in scale - out scale| <= 1e-6 (float math) and equal zero points.
    if abs(float(np.float32(x.scale) - np.float32(y.scale))) > 1.0e-6 or x.zero_point != y.zero_point:
        raise _refuse(op, "whose output quantization differs from its input's")
    fh, fw = _opt(op, "filterHeight", 1), _opt(op, "filterWidth", 1)
    if fh < 1 or fw < 1 or max(fh, fw) > 0xFFFF:
        raise _refuse(op, f"with filter {fh}x{fw}")
    geo = _spatial_geometry(op, x.shape, y.shape, fh, fw, (1, 1))
    act_min, act_max = activation_range(fused_activation(op), y.scale, y.zero_point)
    params = CStruct(
        "tfd_pool_params_t",
        {
            "stride_h": geo["stride_h"],
            "stride_w": geo["stride_w"],
            "filter_h": fh,
            "filter_w": fw,
            "pad_h": geo["pad_h"],
            "pad_w": geo["pad_w"],
            "act_min": act_min,
            "act_max": act_max,
        },
    )
    return Lowered(op.name, [x_i], y_i, params)


def mean_multiplier(input_scale: float, output_scale: float, num_elements: int) -> tuple[int, int]:
    """The requantization TFLM's int8 MEAN applies to a sum of ``num_elements`` values.

    TFLM PrepareMeanOrSumHelper: QuantizeMultiplier(double(in_scale) / double(out_scale));
    then reference_ops::QuantizedMeanOrSum folds 1/num_elements into it:
    ``s = min(floor(log2 n), 32, 31 + shift)``, ``mult = (mult << s) // n`` (truncating),
    ``shift -= s``.
    """
    m, shift = quantize_multiplier(f64(input_scale) / f64(output_scale))
    n = int(num_elements)
    if n <= 0:
        raise ValueError(f"MEAN over {n} elements")
    # QuantizeMultiplier keeps shift >= -31, so s >= 0; n >= 2^s keeps the result < 2^31.
    s = min(n.bit_length() - 1, 32, 31 + shift)
    return (m << s) // n, shift - s


@register("MEAN")
def lower_mean(graph: Graph, op: Op) -> Lowered:
    """MEAN int8 over constant axes (TFLM reduce: QuantizedMeanOrSum, always the requantize path)."""
    if len(op.inputs) != 2:
        raise _refuse(op, f"with {len(op.inputs)} inputs (expects input and axes)")
    x_i, a_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    require_type(graph, op, x_i, "INT8")
    require_type(graph, op, y_i, "INT8")
    x, a, y = graph.tensor(x_i), graph.tensor(a_i), graph.tensor(y_i)
    if a.dtype != "INT32" or a.data is None:
        raise _refuse(op, "with non-constant or non-int32 axes")
    if x.per_channel or y.per_channel:
        raise _refuse(op, "with per-channel quantized activations")
    rank = len(x.shape)
    if not 1 <= rank <= 4:
        raise _refuse(op, f"on a rank-{rank} input (supported: rank 1..4)")
    axes: list[int] = []
    for v in np.asarray(a.data).reshape(-1).tolist():
        ax = int(v) + rank if int(v) < 0 else int(v)
        if not 0 <= ax < rank:
            raise _refuse(op, f"with axis {int(v)} for a rank-{rank} input")
        if ax not in axes:
            axes.append(ax)
    if not axes:
        raise _refuse(op, "with an empty axis list")
    reduced = int(np.prod([x.shape[ax] for ax in axes], dtype=np.int64))
    kept = [d for i, d in enumerate(x.shape) if i not in axes]
    if y.num_elements != int(np.prod(kept, dtype=np.int64)) or reduced == 0:
        raise _refuse(op, f"from {list(x.shape)} over axes {axes} to output {list(y.shape)}")
    if reduced > (1 << 23):
        raise _refuse(op, f"over {reduced} elements (int32 sum could overflow)")
    mult, shift = mean_multiplier(x.scale, y.scale, reduced)
    mask = 0
    for ax in axes:
        mask |= 1 << (ax + 4 - rank)  # the runtime right-aligns shapes into 4 dims
    params = CStruct(
        "tfd_mean_params_t",
        {
            "axis_mask": mask,
            "input_zero_point": x.zero_point,
            "output_zero_point": y.zero_point,
            "mult": mult,
            "shift": shift,
            "num_elements": reduced,
        },
    )
    return Lowered("MEAN", [x_i], y_i, params)
