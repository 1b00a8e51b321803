/* SOFTMAX, optimized for cores with the DSP extension (TFD_KERNELS_DSP).
 * Same results as the reference (firmware/src/kernels/softmax.c), byte for
 * byte, for any depth and either output type: the reference evaluates the
 * fixed-point exponential of every element twice (once for the sum, once for
 * the output); here the first TFD_SOFTMAX_DSP_MEMO of a row are kept from the
 * sum pass (on the stack) and only the elements past them are evaluated again.
 * The exponential dominates the kernel (~200 instructions per call at -Os),
 * so a row of up to TFD_SOFTMAX_DSP_MEMO classes costs about half. */
#include <stddef.h>

#include "../softmax_shape.h"
#include "tfd/fixedpoint.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"
#include "requant.h"

#if TFD_KERNELS_DSP

#define TFD_SOFTMAX_DSP_MEMO 64 /* 256 B of stack */

enum { kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12 };

/* gemmlowp's exp_on_interval_between_negative_one_quarter_and_0_excl
 * (tfd_fp_exp_on_interval_neg_quarter_0) with the DSP SaturatingRounding-
 * DoublingHighMul / RoundingDivideByPOT (requant.h): a is in [-1/4, 0), so no
 * operand is INT32_MIN and no product saturates. */
static int32_t exp_neg_quarter(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* Q0 exp(-1/8) */
    const int32_t one_third = 715827883;             /* Q0 1/3 */
    const int32_t x = tfd_fp_add(a, 1 << 28);        /* a + 1/8, in [-1/8, 1/8) */
    const int32_t x2 = tfd_dsp_srdhm(x, x);
    const int32_t x3 = tfd_dsp_srdhm(x2, x);
    const int32_t x4 = tfd_dsp_srdhm(x2, x2);
    const int32_t x4_over_4 = tfd_dsp_rdivpot(x4, 2);
    const int32_t poly = tfd_dsp_rdivpot(tfd_fp_add(tfd_dsp_srdhm(tfd_fp_add(x4_over_4, x3), one_third), x2), 1);
    return tfd_fp_add(exp_minus_one_eighth, tfd_dsp_srdhm(exp_minus_one_eighth, tfd_fp_add(x, poly)));
}

/* exp(beta * scale * diff) in Q0 for diff = x - max (<= 0, >= diff_min):
 * tfd_mbqm_big then gemmlowp's exp_on_negative_values for Q5.26, as the
 * reference (tfd_fp_exp_on_negative_values with integer_bits = 5).  The
 * rescaled difference is >= -31 * 2^26 > INT32_MIN and the multiplier is in
 * [2^30, 2^31), so the DSP multiply needs no saturation either. */
static int32_t softmax_exp(const tfd_softmax_params_t *p, int32_t diff)
{
    static const int32_t kExpNegPot[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t a = tfd_dsp_srdhm((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
    if (a == 0) return TFD_FP_Q0_ONE;
    const int32_t one_quarter = 1 << 24; /* Q5.26 */
    const int32_t a_mod = tfd_fp_sub(a & (one_quarter - 1), one_quarter);
    /* a_mod from Q5 to Q0: a saturating left shift by 5 (a_mod is in [-2^24, 0)) */
    int32_t result = exp_neg_quarter((int32_t)((uint32_t)a_mod << 5));
    const uint32_t remainder = (uint32_t)tfd_fp_sub(a_mod, a) >> 24; /* bits 24..30: exp(-2^k), k = -2..4 */
    for (int k = 0; k < 7; ++k) {
        if (remainder & (1u << k)) result = tfd_dsp_srdhm(result, kExpNegPot[k]);
    }
    return result;
}

tfd_status_t tfd_eval_softmax(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    softmax_shape_t s;
    TFD_TRY(softmax_shape(m, l, &s));
    const tfd_softmax_params_t *p = s.p;
    const int32_t depth = s.depth;
    const int32_t rows = s.rows;
    const int out16 = s.out16;
    const int32_t out_min = s.out_min;
    const int32_t out_max = s.out_max;
    const int out_bits = s.out_bits;
    const int32_t diff_min = p->diff_min;
    const int32_t kept = depth < TFD_SOFTMAX_DSP_MEMO ? depth : TFD_SOFTMAX_DSP_MEMO;
    int32_t memo[TFD_SOFTMAX_DSP_MEMO]; /* exp of element c < kept; 0 = below diff_min */

    const int8_t *xr = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y8 = (int8_t *)TFD_OUT(m, l, arena);
    int16_t *y16 = (int16_t *)TFD_OUT(m, l, arena);

    for (int32_t r = 0; r < rows; ++r, xr += depth) {
        int32_t max_in_row = INT8_MIN;
        for (int32_t c = 0; c < depth; ++c) max_in_row = xr[c] > max_in_row ? xr[c] : max_in_row;

        int32_t sum_of_exps = 0; /* Q12.19, wrapping add as in the reference */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)xr[c] - max_in_row;
            int32_t e = 0;
            if (diff >= diff_min) {
                e = softmax_exp(p, diff);
                sum_of_exps = tfd_fp_add(sum_of_exps, tfd_fp_rescale(e, 0, kAccumulationIntegerBits));
            }
            if (c < kept) memo[c] = e;
        }
        int bits_over_unit = 0;
        const int32_t shifted_scale = tfd_fp_reciprocal(sum_of_exps, kAccumulationIntegerBits, &bits_over_unit);
        const int exponent = bits_over_unit + 31 - out_bits;
        TFD_ENSURE(exponent >= 0 && exponent <= 31, TFD_ERR_INTERNAL);

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)xr[c] - max_in_row;
            int32_t out = out_min;
            if (diff >= diff_min) {
                const int32_t e = c < kept ? memo[c] : softmax_exp(p, diff);
                out = tfd_rdivpot(tfd_srdhm(shifted_scale, e), exponent) + out_min;
                out = tfd_clamp_i32(out, out_min, out_max);
            }
            if (out16) {
                *y16++ = (int16_t)out;
            } else {
                *y8++ = (int8_t)out;
            }
        }
    }
    return TFD_OK;
}

#endif /* TFD_KERNELS_DSP */
