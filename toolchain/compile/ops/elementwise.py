"""Lowerings for elementwise, activation and data-movement ops: ADD, SUB, MUL,
MAXIMUM, MINIMUM, SOFTMAX, LOGISTIC, TANH, RELU, RELU6, PAD/PADV2, CONCATENATION, QUANTIZE,
DEQUANTIZE, RESHAPE (+ SQUEEZE / EXPAND_DIMS as reshapes).

Parameters follow TFLite Micro's Prepare functions exactly (the TFLM build with
double-rounding requantization, which is what the tflite-micro runtime runs);
the struct layouts are in firmware/include/tfd/params_elementwise.h.  Every
variant the runtime (or TFLM itself) cannot run is refused with an
:class:`UnsupportedOpError` that names the op and the reason.
"""

from __future__ import annotations

import math

import numpy as np

from ...facts.c_headers import add_dsp_scratch_bytes
from ..quant_math import quantize_multiplier, INT8_MAX, INT8_MIN, activation_range, f64, tflite_round
from ..tflite_reader import Graph, Op, Tensor
from .base import (
    MAX_DIMS,
    CStruct,
    Lowered,
    UnsupportedOpError,
    check_broadcast,
    dims4,
    fused_activation,
    refuse,
    register,
    require_int8_io,
    require_per_tensor,
    require_type,
)

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # TFLM kScaledDiffIntegerBits (Q5.26 exp input)
SIGMOID_INPUT_INTEGER_BITS = 4  # TFLM kInputIntegerBits for int8 LOGISTIC / TANH (Q4.27)
ADD_LEFT_SHIFT_INT8 = 20
CONCAT_MAX_INPUTS = 10  # TFLM kMaxInputNum


# ---- TFLM Prepare-time arithmetic ------------------------------------------------

# TFLM QuantizeMultiplier (double-rounding build): the shared implementation.
quantize_multiplier_tflm = quantize_multiplier


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLM ``CalculateInputRadius`` (double arithmetic, then floor)."""
    if not 0 <= input_left_shift <= 62:
        raise ValueError(f"input_left_shift {input_left_shift} out of range")
    max_input_rescaled = (
        1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
        / float(1 << input_left_shift)
    )
    return int(math.floor(max_input_rescaled))


# ---- lowerings -------------------------------------------------------------------

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


def _binary_operands(graph: Graph, op: Op) -> tuple[int, int, int, Tensor, Tensor, Tensor]:
    """The two int8 inputs and the output of a broadcasting binary op, checked."""
    if len(op.inputs) != 2:
        raise refuse(op, f"{len(op.inputs)} inputs (expected 2)")
    a_i, b_i = op.inputs
    y_i = op.outputs[0]
    require_int8_io(graph, op, [a_i, b_i])
    a, b, y = graph.tensor(a_i), graph.tensor(b_i), graph.tensor(y_i)
    check_broadcast(op, a, b, y)
    return a_i, b_i, y_i, a, b, y


def _binary_fields(op: Op, a: Tensor, b: Tensor, y: Tensor) -> dict[str, int]:
    """The offset and fused-activation fields ADD, SUB and MUL params share."""
    act_min, act_max = activation_range(fused_activation(op), y.scale, y.zero_point)
    return {
        "input1_offset": -a.zero_point,
        "input2_offset": -b.zero_point,
        "output_offset": y.zero_point,
        "act_min": act_min,
        "act_max": act_max,
    }


def add_sub_multipliers(s1: float, s2: float, s_out: float) -> tuple[float, float, float]:
    """The three real rescale factors of TFLM's int8 ADD / SUB Prepare, in double:
    ``twice_max = 2 * double(max(s1, s2))``, ``s1 / twice_max``, ``s2 / twice_max``,
    ``twice_max / (2^20 * double(s_out))``.

    (TFLM's source text of ``CalculateOpDataSub`` divides the float32 scales in
    float; the tflite-micro runtime, the reference, computes SUB's factors in
    double exactly like ADD's: tests/test_kernels_binary.py pins scales where the
    two differ in the output.)
    """
    twice_max = 2.0 * f64(max(np.float32(s1), np.float32(s2)))
    return f64(s1) / twice_max, f64(s2) / twice_max, twice_max / (float(1 << ADD_LEFT_SHIFT_INT8) * f64(s_out))


@register("ADD", "SUB")
def lower_add_sub(graph: Graph, op: Op) -> Lowered:
    """TFLM ``CalculateOpDataAdd`` / ``CalculateOpDataSub`` for int8 (left shift 20,
    three multipliers < 1, one Prepare for both).  SUB runs the same kernel
    arithmetic with the scaled inputs subtracted (firmware/src/kernels/add.c says
    why that is not ADD with a negated multiplier)."""
    a_i, b_i, y_i, a, b, y = _binary_operands(graph, op)
    reals = add_sub_multipliers(a.scale, b.scale, y.scale)
    for what, real in zip(("input 1", "input 2", "output"), reals):
        if not 0.0 < real < 1.0:
            # TFLM's QuantizeMultiplierSmallerThanOneExp aborts on these.
            raise refuse(op, f"{what} rescale factor {real:.6g} is outside (0, 1) (scales "
                             f"{a.scale:.6g}, {b.scale:.6g} -> {y.scale:.6g})")
    (m1, s1), (m2, s2), (mo, so) = (quantize_multiplier_tflm(r) for r in reals)
    params = CStruct(
        "tfd_add_params_t",
        {
            **_binary_fields(op, a, b, y),
            "left_shift": ADD_LEFT_SHIFT_INT8,
            "input1_mult": m1,
            "input1_shift": s1,
            "input2_mult": m2,
            "input2_shift": s2,
            "output_mult": mo,
            "output_shift": so,
        },
    )
    # the optimized kernel's two rescale tables (params scratch_offset/bytes, set by the
    # planner; optional: without them each element is rescaled in registers)
    return Lowered(op.name, [a_i, b_i], y_i, params, scratch_bytes=add_dsp_scratch_bytes(y.num_elements),
                   scratch_optional=True)


@register("MUL")
def lower_mul(graph: Graph, op: Op) -> Lowered:
    """TFLM ``CalculateOpDataMul`` for int8: one multiplier s1 * s2 / s_out."""
    a_i, b_i, y_i, a, b, y = _binary_operands(graph, op)
    real = f64(a.scale) * f64(b.scale) / f64(y.scale)
    mult, shift = quantize_multiplier_tflm(real)
    if shift > 30:
        raise refuse(op, f"output rescale factor {real:.6g} is too large")
    params = CStruct("tfd_mul_params_t", {**_binary_fields(op, a, b, y), "output_mult": mult, "output_shift": shift})
    return Lowered("MUL", [a_i, b_i], y_i, params)


@register("MAXIMUM", "MINIMUM")
def lower_maximum_minimum(graph: Graph, op: Op) -> Lowered:
    """TFLM MAXIMUM / MINIMUM for int8: the larger / smaller raw code, broadcast.

    TFLM has no Prepare and never looks at the quantization (the converter gives
    both inputs and the output one scale and zero point, inserting a requantizing
    QUANTIZE where they differ); tinyfed does exactly the same.
    """
    a_i, b_i, y_i, _, _, _ = _binary_operands(graph, op)
    return Lowered(op.name, [a_i, b_i], y_i, None)


@register("SOFTMAX")
def lower_softmax(graph: Graph, op: Op) -> Lowered:
    """TFLM ``CalculateSoftmaxParams`` for int8 input (int8 or int16 output)."""
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_type(graph, op, x_i, "INT8")
    require_type(graph, op, y_i, "INT8", "INT16")
    require_per_tensor(graph, op, x_i)
    require_per_tensor(graph, op, y_i)
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    if not x.shape:
        raise refuse(op, "scalar input")
    if y.dtype == "INT8":
        if y.zero_point != -128 or np.float32(y.scale) != np.float32(1.0) / np.float32(256.0):
            raise refuse(op, f"int8 output quantization (scale {y.scale!r}, zero point {y.zero_point}); "
                              "TFLM requires scale 1/256 and zero point -128")
    else:
        tol = np.float32(0.001) * np.float32(1.0) / np.float32(65536.0)
        if y.zero_point != -32768 or abs(np.float32(y.scale) - np.float32(1.0) / np.float32(65536.0)) > tol:
            raise refuse(op, f"int16 output quantization (scale {y.scale!r}, zero point {y.zero_point}); "
                              "TFLM requires scale 1/65536 and zero point -32768")
    beta = f64(float(getattr(op.options, "beta", 1.0))) if op.options is not None else 1.0
    real = min(beta * f64(x.scale) * float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    if not real > 1.0:
        # TFLM's QuantizeMultiplierGreaterThanOne aborts.
        raise refuse(op, f"beta * input scale = {beta * f64(x.scale):.6g} is too small (TFLM requires "
                          f"beta * scale * 2^26 > 1)")
    mult, left_shift = quantize_multiplier_tflm(real)
    diff_min = int(-1.0 * calculate_input_radius(SOFTMAX_SCALED_DIFF_INTEGER_BITS, left_shift))
    params = CStruct(
        "tfd_softmax_params_t",
        {"input_multiplier": mult, "input_left_shift": left_shift, "diff_min": diff_min},
    )
    return Lowered("SOFTMAX", [x_i], y_i, params)


def _sigmoid_params(graph: Graph, op: Op) -> CStruct:
    """TFLM int8 LOGISTIC / TANH Prepare: rescale to Q4.27 plus a saturation radius."""
    x = graph.tensor(op.inputs[0])
    real = f64(x.scale) * float(1 << (31 - SIGMOID_INPUT_INTEGER_BITS))
    q, left_shift = math.frexp(real)
    mult = tflite_round(q * (1 << 31))
    if mult >= (1 << 31) or not 0 <= left_shift <= 62:
        raise refuse(op, f"input scale {x.scale!r} is out of the range TFLM handles")
    radius = calculate_input_radius(SIGMOID_INPUT_INTEGER_BITS, left_shift)
    return CStruct(
        "tfd_sigmoid_params_t",
        {
            "input_zero_point": x.zero_point,
            "input_range_radius": radius,
            "input_multiplier": mult,
            "input_left_shift": left_shift,
        },
    )


@register("LOGISTIC")
def lower_logistic(graph: Graph, op: Op) -> Lowered:
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    y = graph.tensor(y_i)
    if y.zero_point != -128:
        raise refuse(op, f"output zero point {y.zero_point} (TFLM requires -128)")
    return Lowered("LOGISTIC", [x_i], y_i, _sigmoid_params(graph, op))


@register("TANH")
def lower_tanh(graph: Graph, op: Op) -> Lowered:
    # TFLM does not check the output quantization: it always writes scale 1/128,
    # zero point 0 codes.  We do the same (the converter emits exactly that).
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    return Lowered("TANH", [x_i], y_i, _sigmoid_params(graph, op))


@register("RELU")
def lower_relu(graph: Graph, op: Op) -> Lowered:
    """TFLM ``CalculateReluOpData<int8_t>``: requantize, clamp below at the output zero point."""
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    # In double: TFLM's source text divides the float32 scales in float, but the
    # tflite-micro runtime (the reference) does not (tests pin scales where the two
    # differ: test_relu_multiplier_in_double).
    real = f64(x.scale) / f64(y.scale)
    mult, shift = quantize_multiplier_tflm(real)
    if shift > 30:
        raise refuse(op, f"input/output scale ratio {real:.6g} is too large")
    act_min = max(INT8_MIN, y.zero_point + tflite_round(float(np.float32(0.0) / np.float32(y.scale))))
    params = CStruct(
        "tfd_requant_params_t",
        {
            "input_offset": x.zero_point,
            "output_offset": y.zero_point,
            "mult": mult,
            "shift": shift,
            "act_min": act_min,
            "act_max": INT8_MAX,
        },
    )
    return Lowered("RELU", [x_i], y_i, params)


@register("RELU6")
def lower_relu6(graph: Graph, op: Op) -> Lowered:
    """TFLM ``Relu6Prepare`` for int8: clamp raw codes to [zp, q(6.0)], no rescaling."""
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    x = graph.tensor(x_i)
    six = tflite_round(float(np.float32(6.0) / np.float32(x.scale))) + x.zero_point
    six = min(INT8_MAX, max(INT8_MIN, six))
    params = CStruct("tfd_clamp_params_t", {"lo": x.zero_point, "hi": six})
    return Lowered("RELU6", [x_i], y_i, params)


@register("PAD", "PADV2")
def lower_pad(graph: Graph, op: Op) -> Lowered:
    """TFLM ``PadPrepare`` for int8: constant paddings, pad with the output zero
    point (PAD) or the constant value (PADV2); codes are copied unchanged."""
    if len(op.inputs) not in (2, 3):
        raise refuse(op, f"{len(op.inputs)} inputs")
    x_i, p_i = op.inputs[0], op.inputs[1]
    y_i = op.outputs[0]
    require_int8_io(graph, op, [x_i])
    x, pads, y = graph.tensor(x_i), graph.tensor(p_i), graph.tensor(y_i)
    if pads.data is None:
        raise refuse(op, "non-constant paddings")
    if pads.dtype != "INT32":
        raise refuse(op, f"{pads.dtype} paddings (TFLM reads INT32 paddings)")
    rank = len(y.shape)
    if len(x.shape) != rank or pads.num_elements != 2 * rank:
        raise refuse(op, f"paddings of shape {list(pads.shape)} for a rank-{rank} output")
    pd = np.asarray(pads.data, dtype=np.int64).reshape(rank, 2)
    for k in range(rank):
        if pd[k, 0] < 0 or pd[k, 1] < 0 or y.shape[k] != x.shape[k] + pd[k, 0] + pd[k, 1]:
            raise refuse(op, f"paddings {pd.tolist()} do not map {list(x.shape)} to {list(y.shape)}")
    dims4(op, y)
    lead = MAX_DIMS - rank
    before = [0] * lead + [int(v) for v in pd[:, 0]]
    after = [0] * lead + [int(v) for v in pd[:, 1]]
    pad_value = y.zero_point
    if len(op.inputs) == 3 and op.inputs[2] >= 0:
        c = graph.tensor(op.inputs[2])
        if c.dtype != "INT8" or c.data is None or c.num_elements != 1:
            raise refuse(op, "constant_values must be a constant int8 scalar")
        if c.zero_point != y.zero_point or f64(c.scale) != f64(y.scale):
            raise refuse(op, "constant_values quantization differs from the output's (TFLM requires equal)")
        pad_value = int(np.asarray(c.data).reshape(-1)[0])
    params = CStruct("tfd_pad_params_t", {"before": before, "after": after, "pad_value": pad_value})
    return Lowered("PAD", [x_i], y_i, params)


@register("CONCATENATION")
def lower_concatenation(graph: Graph, op: Op) -> Lowered:
    """TFLM ``ConcatenationPrepare`` for int8: every input must already have the
    output's scale and zero point (TFLM refuses to rescale; the converter inserts
    QUANTIZE ops where they differ), so the kernel is a raw copy."""
    ins = [i for i in op.inputs if i >= 0]
    y_i = op.outputs[0]
    if not 1 <= len(ins) <= CONCAT_MAX_INPUTS:
        raise refuse(op, f"{len(ins)} inputs (TFLM supports 1..{CONCAT_MAX_INPUTS})")
    require_int8_io(graph, op, ins)
    if fused_activation(op) != "NONE":
        raise refuse(op, "a fused activation (TFLM requires NONE)")
    y = graph.tensor(y_i)
    rank = len(y.shape)
    dims4(op, y)
    for i in ins:
        t = graph.tensor(i)
        if len(t.shape) != rank:
            raise refuse(op, f"input {t.name!r} has rank {len(t.shape)}, output rank {rank}")
        if f64(t.scale) != f64(y.scale) or t.zero_point != y.zero_point:
            raise refuse(
                op,
                f"input {t.name!r} is quantized (scale {t.scale!r}, zero point {t.zero_point}) unlike the "
                f"output (scale {y.scale!r}, zero point {y.zero_point}); TFLM requires them equal",
            )
    axis = int(getattr(op.options, "axis", 0)) if op.options is not None else 0
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise refuse(op, f"axis {axis} for rank {rank}")
    total = 0
    for i in ins:
        t = graph.tensor(i)
        for k in range(rank):
            if k != axis and t.shape[k] != y.shape[k]:
                raise refuse(op, f"input shape {list(t.shape)} does not match output {list(y.shape)}")
        total += t.shape[axis]
    if total != y.shape[axis]:
        raise refuse(op, f"inputs add up to {total} along axis {axis}, output has {y.shape[axis]}")
    params = CStruct("tfd_concat_params_t", {"axis": axis + MAX_DIMS - rank})
    return Lowered("CONCATENATION", ins, y_i, params)


@register("QUANTIZE")
def lower_quantize(graph: Graph, op: Op) -> Lowered:
    """TFLM ``PrepareQuantizeReference``: float32 -> int8 (AffineQuantize) or
    int8 -> int8 (Requantize with QuantizeMultiplier(s_in / s_out))."""
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_type(graph, op, x_i, "FLOAT32", "INT8")
    require_type(graph, op, y_i, "INT8")
    require_per_tensor(graph, op, y_i)
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    if not y.quantized:
        raise refuse(op, "output without quantization parameters")
    fields: dict[str, int | float] = {
        "output_scale": float(np.float32(y.scale)),
        "output_offset": y.zero_point,
        "input_offset": 0,
        "mult": 0,
        "shift": 0,
    }
    if x.dtype == "INT8":
        require_per_tensor(graph, op, x_i)
        mult, shift = quantize_multiplier_tflm(f64(x.scale) / f64(y.scale))
        if shift > 30:
            raise refuse(op, f"rescale factor {f64(x.scale) / f64(y.scale):.6g} is too large")
        fields.update(input_offset=x.zero_point, mult=mult, shift=shift)
    elif not y.scale > 0.0:
        raise refuse(op, f"output scale {y.scale!r}")
    return Lowered("QUANTIZE", [x_i], y_i, CStruct("tfd_quantize_params_t", dict(fields)))


@register("DEQUANTIZE")
def lower_dequantize(graph: Graph, op: Op) -> Lowered:
    """TFLM ``DequantizePrepare`` for int8 -> float32 (per-tensor)."""
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_type(graph, op, x_i, "INT8")
    require_type(graph, op, y_i, "FLOAT32")
    require_per_tensor(graph, op, x_i)
    x = graph.tensor(x_i)
    if not x.quantized:
        raise refuse(op, "input without quantization parameters")
    params = CStruct("tfd_dequantize_params_t", {"scale": float(np.float32(x.scale)), "zero_point": x.zero_point})
    return Lowered("DEQUANTIZE", [x_i], y_i, params)
