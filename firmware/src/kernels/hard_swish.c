/* HARD_SWISH, int8: x * relu6(x + 3) / 6 with TFLite Micro's reference
 * 16-bit fixed-point recipe, reproduced operation for operation:
 *  1. the offset input on a "hires" scale (x 2^7, exact in int16);
 *  2. that value on the pre-shift output scale (rounding Q15 multiply);
 *  3. the "reluish" factor: the hires value rescaled so that 3.0 is 2^15
 *     (saturating left shift by exponent - 1, rounding Q15 multiply, the last
 *     bit of left shift saturating — or a rounding right shift), then mapped
 *     from [-1, 1] to [0, 1];
 *  4. reluish x pre-shift output with a *truncating* Q15 multiply (TFLM keeps
 *     it to cancel the rounding bias of step 2), the output exponent as a
 *     rounding right shift, the zero point added, saturated to int8.
 * Every intermediate is an int16 in TFLM; here they live in int32 with the
 * same values.  None wraps: |offset input| <= 255, so the pre-shift output is
 * within +-32640 and adding an int8 zero point stays inside int16. */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"

#define HS_I16_MIN (-32768)
#define HS_I16_MAX 32767

static inline int32_t hs_sat16(int64_t v)
{
    return (int32_t)(v < HS_I16_MIN ? HS_I16_MIN : (v > HS_I16_MAX ? HS_I16_MAX : v));
}

/* gemmlowp SaturatingRoundingDoublingHighMul on int16 values. */
static inline int32_t hs_srdhm16(int32_t a, int32_t b)
{
    if (a == HS_I16_MIN && b == HS_I16_MIN) return HS_I16_MAX;
    const int32_t ab = a * b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (ab + nudge) / (1 << 15); /* truncating division, as in C++ */
}

/* TFLM SaturatingDoublingHighMul (SQDMULH): the same, truncating. */
static inline int32_t hs_sdhm16(int32_t a, int32_t b)
{
    if (a == HS_I16_MIN && b == HS_I16_MIN) return HS_I16_MAX;
    return (a * b) / (1 << 15);
}

/* gemmlowp RoundingDivideByPOT on an int16 value.  From exponent 16 on, its
 * int16 mask (2^exponent - 1) wraps to -1 and the result degenerates to +1 for
 * x >= 0 and -1 for x < 0; TFLM runs it that way for tiny scale ratios. */
static inline int32_t hs_rdivpot16(int32_t x, int32_t exponent)
{
    if (exponent >= 16) return x >= 0 ? 1 : -1;
    return tfd_rdivpot(x, (int)exponent);
}

/* TFLM SaturatingLeftShift on an int16 value (in int64, amount <= 30). */
static inline int32_t hs_sat_lshift16(int32_t v, int32_t amount)
{
    return hs_sat16((int64_t)v * ((int64_t)1 << amount));
}

static int8_t hard_swish_one(const void *pv, int32_t code)
{
    const tfd_hard_swish_params_t *p = (const tfd_hard_swish_params_t *)pv;
    const int32_t hires = (code - p->input_zero_point) * (1 << 7);
    const int32_t preshift_out = hs_srdhm16(hires, p->output_mult_q15);

    int32_t reluish = hires;
    if (p->reluish_exponent > 0) reluish = hs_sat_lshift16(reluish, p->reluish_exponent - 1);
    reluish = hs_srdhm16(reluish, p->reluish_mult_q15);
    if (p->reluish_exponent > 0) reluish = hs_sat_lshift16(reluish, 1);
    if (p->reluish_exponent < 0) reluish = hs_rdivpot16(reluish, -p->reluish_exponent);
    reluish = (reluish + (1 << 15)) >> 1; /* [-1, 1] -> [0, 1] */

    const int32_t preshift_value = hs_sdhm16(reluish, preshift_out);
    const int32_t out = hs_rdivpot16(preshift_value, -p->output_exponent) + p->output_zero_point;
    return tfd_sat_i8(out);
}

tfd_status_t tfd_eval_hard_swish(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_hard_swish_params_t *p = (const tfd_hard_swish_params_t *)l->params;
    /* QuantizeMultiplier keeps exponents >= -31; TFLM requires output_exponent
     * <= 0; a reluish exponent <= 31 keeps the left shift amount <= 30. */
    TFD_ENSURE(p->output_exponent <= 0 && p->output_exponent >= -31 && p->reluish_exponent >= -31 &&
                   p->reluish_exponent <= 31 && p->output_mult_q15 >= 0 &&
                   p->output_mult_q15 <= HS_I16_MAX && p->reluish_mult_q15 >= 0 &&
                   p->reluish_mult_q15 <= HS_I16_MAX && p->input_zero_point >= -128 &&
                   p->input_zero_point <= 127 && p->output_zero_point >= -128 && p->output_zero_point <= 127,
               TFD_ERR_BAD_MODEL);
    return tfd_eval_map_i8(m, l, arena, hard_swish_one);
}
