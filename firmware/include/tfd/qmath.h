/* tinyfed — fixed-point arithmetic with TFLite-Micro (gemmlowp) semantics.
 *
 * Requantization uses double rounding exactly like the TFLM reference kernels:
 * SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT.
 * Written from the published definitions; tested bit-exact against the
 * tflite-micro runtime through the kernels that use it.
 */
#ifndef TFD_QMATH_H
#define TFD_QMATH_H

#include <stdint.h>

static inline int32_t tfd_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t tfd_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t tfd_clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* round(a * b / 2^31) with saturation of the single overflow case INT32_MIN*INT32_MIN. */
static inline int32_t tfd_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    /* Division truncating toward zero, as in C and gemmlowp. */
    return (int32_t)((ab + nudge) / (1LL << 31));
}

/* Arithmetic right shift by `exponent` (0..31) rounding half away from zero. */
static inline int32_t tfd_rdivpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + ((x < 0) ? 1 : 0);
    return (x >> exponent) + ((remainder > threshold) ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier: x * multiplier * 2^shift, shift in [-31, 30]. */
static inline int32_t tfd_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return tfd_rdivpot(tfd_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0). */
static inline int32_t tfd_mbqm_small(int32_t x, int32_t multiplier, int32_t shift)
{
    return tfd_rdivpot(tfd_srdhm(x, multiplier), -shift);
}

/* TFLM MultiplyByQuantizedMultiplierGreaterThanOne (shift >= 0). */
static inline int32_t tfd_mbqm_big(int32_t x, int32_t multiplier, int32_t shift)
{
    return tfd_srdhm((int32_t)((uint32_t)x << shift), multiplier);
}

static inline int8_t tfd_sat_i8(int32_t v) { return (int8_t)tfd_clamp_i32(v, -128, 127); }

#endif /* TFD_QMATH_H */
