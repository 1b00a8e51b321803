"""Lowerings for the int8 activations with their own requantization recipe:
LEAKY_RELU and HARD_SWISH (Keras ``LeakyReLU`` / ``hard_swish``, MobileNetV3).

Parameters follow TFLite Micro's Prepare functions; the real multipliers are
computed in double from the float32 scales.  (TFLM's source text computes them
in float and widens the result, but the tflite-micro runtime — the reference —
agrees with double arithmetic and not with float on scales where the two differ:
tests/test_kernels_activation.py pins such scales.)  The struct layouts are in
firmware/include/tfd/params_elementwise.h.
"""

from __future__ import annotations

import numpy as np

from ..quant_math import f64, quantize_multiplier
from ..tflite_reader import Graph, Op, Tensor
from .base import CStruct, Lowered, refuse, register, require_int8_io

INT16_MAX = 32767
# TFLM's saturating left shift by (reluish exponent - 1) computes 1 << amount
# in int: the kernel reproduces amounts up to 30.
HARD_SWISH_MAX_RELUISH_EXPONENT = 31


def _unary_int8(graph: Graph, op: Op) -> tuple[int, int, Tensor, Tensor]:
    """The int8 input and output of a one-input activation, with positive scales."""
    if len(op.inputs) != 1:
        raise refuse(op, f"{len(op.inputs)} inputs (expected 1)")
    x_i, y_i = op.inputs[0], op.outputs[0]
    require_int8_io(graph, op, [x_i])
    x, y = graph.tensor(x_i), graph.tensor(y_i)
    if not all(t.scale > 0 and np.isfinite(t.scale) for t in (x, y)):
        raise refuse(op, f"input/output scales {x.scale!r} / {y.scale!r} (must be positive)")
    return x_i, y_i, x, y


@register("LEAKY_RELU")
def lower_leaky_relu(graph: Graph, op: Op) -> Lowered:
    """TFLM ``CalculateOpDataLeakyRelu`` for int8: an identity multiplier
    s_in / s_out and an alpha multiplier s_in * alpha / s_out (in double).
    A negative alpha is run as TFLM does: |multiplier|, result negated."""
    x_i, y_i, x, y = _unary_int8(graph, op)
    alpha = f64(getattr(op.options, "alpha", 0.0) if op.options is not None else 0.0)
    if not np.isfinite(alpha):
        raise refuse(op, f"alpha {alpha!r}")
    m_alpha, s_alpha = quantize_multiplier(f64(x.scale) * alpha / f64(y.scale))
    m_id, s_id = quantize_multiplier(f64(x.scale) / f64(y.scale))
    if m_alpha == -(1 << 31):
        raise refuse(op, f"alpha {alpha!r}: its multiplier is -2^31, which TFLM cannot negate")
    for what, shift in (("alpha", s_alpha), ("identity", s_id)):
        if shift > 30:
            raise refuse(op, f"{what} rescale factor too large (shift {shift}; at most 30)")
    params = CStruct(
        "tfd_leaky_relu_params_t",
        {
            "input_offset": x.zero_point,
            "output_offset": y.zero_point,
            "mult_identity": m_id,
            "shift_identity": s_id,
            "mult_alpha": abs(m_alpha),
            "shift_alpha": s_alpha,
            "alpha_negative": int(m_alpha < 0),
        },
    )
    return Lowered("LEAKY_RELU", [x_i], y_i, params)


def downscale_multiplier_q15(multiplier_q31: int) -> int:
    """TFLM ``DownScaleInt32ToInt16Multiplier``: round a Q31 multiplier to Q15."""
    if multiplier_q31 < 0:
        raise ValueError(f"negative multiplier {multiplier_q31}")
    rounding = 1 << 15
    if multiplier_q31 >= (1 << 31) - 1 - rounding:
        return INT16_MAX
    return (multiplier_q31 + rounding) >> 16


def hard_swish_params(input_scale: float, output_scale: float) -> tuple[int, int, int, int]:
    """TFLM ``HardSwishPrepare`` for int8: the hires input scale s_in / 128 and the
    reluish scale 3 / 32768 are exact float32 values; the two ratios are in double.

    Returns (output Q15 multiplier, output exponent, reluish Q15 multiplier,
    reluish exponent).
    """
    f = np.float32
    hires_input_scale = f(1.0 / 128.0) * f(input_scale)
    reluish_scale = f(3.0) / f(32768.0)
    m_out, e_out = quantize_multiplier(float(hires_input_scale) / float(f(output_scale)))
    m_rel, e_rel = quantize_multiplier(float(hires_input_scale) / float(reluish_scale))
    return downscale_multiplier_q15(m_out), e_out, downscale_multiplier_q15(m_rel), e_rel


@register("HARD_SWISH")
def lower_hard_swish(graph: Graph, op: Op) -> Lowered:
    """TFLM ``HardSwishPrepare`` for int8: two Q15 multipliers with exponents."""
    x_i, y_i, x, y = _unary_int8(graph, op)
    if not (-128 <= x.zero_point <= 127 and -128 <= y.zero_point <= 127):
        raise refuse(op, f"zero points {x.zero_point} / {y.zero_point} outside int8")
    m_out, e_out, m_rel, e_rel = hard_swish_params(x.scale, y.scale)
    if e_out > 0:
        # TF_LITE_ENSURE(output_multiplier_exponent <= 0) in TFLM's Prepare.
        raise refuse(op, f"output scale {y.scale!r} is below input scale / 128 ({x.scale!r} / 128); "
                         "TFLM requires output exponent <= 0")
    if e_rel > HARD_SWISH_MAX_RELUISH_EXPONENT:
        raise refuse(op, f"input scale {x.scale!r} gives reluish exponent {e_rel} (at most "
                         f"{HARD_SWISH_MAX_RELUISH_EXPONENT}: TFLM's 1 << (exponent - 1) would overflow)")
    params = CStruct(
        "tfd_hard_swish_params_t",
        {
            "input_zero_point": x.zero_point,
            "output_zero_point": y.zero_point,
            "output_mult_q15": m_out,
            "output_exponent": e_out,
            "reluish_mult_q15": m_rel,
            "reluish_exponent": e_rel,
        },
    )
    return Lowered("HARD_SWISH", [x_i], y_i, params)
