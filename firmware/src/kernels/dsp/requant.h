/* tinyfed — requantization for the optimized kernels: the same int32 results
 * as tfd_mbqm (tfd/qmath.h, TFLM's MultiplyByQuantizedMultiplier with double
 * rounding) in a few instructions.
 *
 *   SaturatingRoundingDoublingHighMul(x, m) = (x * m + 2^30) >> 31 (arithmetic)
 *     gemmlowp adds 2^30 (or 1 - 2^30 when x * m < 0) and divides by 2^31
 *     truncating toward zero; for a negative product that truncation is the
 *     floor of (x * m + 2^30) / 2^31, so both cases are one floor shift.  The
 *     saturating case x = m = INT32_MIN cannot occur: multipliers are in
 *     [2^30, 2^31) or 0 (QuantizeMultiplier; the toolchain checks).
 *     On the core: SMULL, LSRS #31 (bit 30 into the carry), ADC ... LSL #1.
 *   RoundingDivideByPOT(r, e), e >= 1 (round half away from zero) =
 *     ((r - (r < 0)) >> e) + (bit e-1 of r - (r < 0)): ADD ... ASR #31, ASRS, ADC.
 *     r is never INT32_MIN here (|x * m| < 2^62 gives |r| < 2^31), so r - 1
 *     does not wrap.
 *
 * Private to firmware/src/kernels/dsp/.
 */
#ifndef TFD_KERNELS_DSP_REQUANT_H
#define TFD_KERNELS_DSP_REQUANT_H

#include <stdint.h>

#include "simd.h"

/* (x * m + 2^30) >> 31: SaturatingRoundingDoublingHighMul for m != INT32_MIN. */
TFD_ALWAYS_INLINE int32_t tfd_dsp_srdhm(int32_t x, int32_t m)
{
#if TFD_SIMD_NATIVE
    int32_t lo, hi;
    __asm__("smull %0, %1, %2, %3\n\t"
            "lsrs %0, %0, #31\n\t"
            "adc %1, %0, %1, lsl #1"
            : "=&r"(lo), "=&r"(hi)
            : "r"(x), "r"(m)
            : "cc");
    return hi;
#else
    return (int32_t)(((int64_t)x * (int64_t)m + (1LL << 30)) >> 31);
#endif
}

/* RoundingDivideByPOT(r, e) for 1 <= e <= 31 and r != INT32_MIN. */
TFD_ALWAYS_INLINE int32_t tfd_dsp_rdivpot(int32_t r, int32_t e)
{
#if TFD_SIMD_NATIVE
    int32_t t;
    __asm__("add %0, %1, %1, asr #31\n\t"
            "asrs %0, %0, %2\n\t"
            "adc %0, %0, #0"
            : "=&r"(t)
            : "r"(r), "r"(e)
            : "cc");
    return t;
#else
    const int32_t t = r + (r >> 31);
    return (t >> e) + ((t >> (e - 1)) & 1);
#endif
}

/* tfd_mbqm(acc, mult, shift): x * mult * 2^shift with TFLM's double rounding. */
TFD_ALWAYS_INLINE int32_t tfd_dsp_requant(int32_t acc, int32_t mult, int32_t shift)
{
    if (shift > 0) return tfd_dsp_srdhm((int32_t)((uint32_t)acc << shift), mult);
    const int32_t r = tfd_dsp_srdhm(acc, mult);
    return shift < 0 ? tfd_dsp_rdivpot(r, -shift) : r;
}

/* The common case in 7 instructions: shift < 0 (right = -shift >= 1), then
 * + offset and saturation to int8 (SSAT): tfd_mbqm(acc, m, -right) + offset
 * clamped to [-128, 127].  The fused activation's narrower range, if any, is
 * the caller's (tfd_dsp_clamp). */
TFD_ALWAYS_INLINE int32_t tfd_dsp_requant_s8(int32_t acc, int32_t m, int32_t right, int32_t offset)
{
#if TFD_SIMD_NATIVE
    int32_t lo, hi;
    __asm__("smull %0, %1, %2, %3\n\t"
            "lsrs %0, %0, #31\n\t"
            "adc %1, %0, %1, lsl #1\n\t"
            "add %1, %1, %1, asr #31\n\t"
            "asrs %1, %1, %4\n\t"
            "adc %1, %1, %5\n\t"
            "ssat %1, #8, %1"
            : "=&r"(lo), "=&r"(hi)
            : "r"(acc), "r"(m), "r"(right), "r"(offset)
            : "cc");
    return hi;
#else
    int32_t v = tfd_dsp_rdivpot(tfd_dsp_srdhm(acc, m), right) + offset;
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

/* Clamp to [lo, hi]. */
TFD_ALWAYS_INLINE int32_t tfd_dsp_clamp(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* Requantize, add the output offset, clamp to [lo, hi]: one int8 output. */
TFD_ALWAYS_INLINE int8_t tfd_dsp_out8(int32_t acc, int32_t mult, int32_t shift, int32_t offset, int32_t lo,
                                      int32_t hi)
{
    int32_t v = tfd_dsp_requant(acc, mult, shift) + offset;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)v;
}

#endif /* TFD_KERNELS_DSP_REQUANT_H */
