"""Quantization arithmetic computed at generation time, exactly as TFLite Micro does.

The runtime never sees a float scale for requantization: the toolchain turns
every real multiplier into a Q31 significand and a power-of-two shift with the
same rounding TFLM uses (``QuantizeMultiplier``: ``frexp``, then
``TfLiteRound(q * 2^31)`` i.e. round-half-away-from-zero in double precision).
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def tflite_round(x: float) -> int:
    """std::round: half away from zero (Python's round() is half-to-even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Return (Q31 multiplier, shift) with real = m * 2^(shift - 31); TFLM semantics."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    # No clamp of shift > 30: that exists only in TFLM's TFLITE_SINGLE_ROUNDING
    # build; the reference (tflite-micro runtime) uses double rounding.
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplierSmallerThanOneExp (0 < real < 1)."""
    if not (0.0 < real < 1.0):
        raise ValueError(f"multiplier {real} not in (0, 1)")
    return quantize_multiplier(real)


def f64(x: float) -> float:
    """A float32 value widened to double, as C's static_cast<double>(float)."""
    return float(np.float32(x))


def per_channel_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int
) -> tuple[list[int], list[int]]:
    """Per-channel (or broadcast per-tensor) multipliers for conv / FC.

    TFLM PopulateConvolutionQuantizationParams: effective scale computed in double
    from float32 scales: in_scale * filter_scale[c] / out_scale.
    """
    mults: list[int] = []
    shifts: list[int] = []
    fs = np.asarray(filter_scales, dtype=np.float32)
    for c in range(channels):
        s = fs[c] if fs.size > 1 else fs[0]
        eff = f64(input_scale) * f64(float(s)) / f64(output_scale)
        m, sh = quantize_multiplier(eff)
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for an int8 output.

    ``activation`` is one of "NONE", "RELU", "RELU6", "RELU_N1_TO_1".
    """
    qmin, qmax = INT8_MIN, INT8_MAX

    def q(v: float) -> int:
        # TFLM: zero_point + static_cast<int32_t>(TfLiteRound(f / scale)) with float math
        return zero_point + tflite_round(float(np.float32(v) / np.float32(scale)))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"unsupported fused activation {activation}")
