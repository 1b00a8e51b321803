/* SOFTMAX over the innermost axis, int8 in; int8 or int16 out.  TFLite Micro
 * reference semantics: differences to the row maximum are rescaled to Q5.26,
 * exponentiated in fixed point, summed in Q12.19, and divided with a
 * fixed-point reciprocal. */
#include <stddef.h>

#include "softmax_shape.h"
#include "tfd/fixedpoint.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

enum { kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12 };

/* exp(beta * scale * diff) in Q0 for diff = x - max (<= 0, >= diff_min). */
static inline int32_t softmax_exp(const tfd_softmax_params_t *p, int32_t diff)
{
    const int32_t rescaled = tfd_mbqm_big(diff, p->input_multiplier, p->input_left_shift);
    return tfd_fp_exp_on_negative_values(rescaled, kScaledDiffIntegerBits);
}

tfd_status_t TFD_REFERENCE_KERNEL(softmax)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
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

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    void *yv = TFD_OUT(m, l, arena);

    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *xr = x + (size_t)r * (size_t)depth;
        int32_t max_in_row = INT8_MIN;
        for (int32_t c = 0; c < depth; ++c) max_in_row = tfd_max_i32(max_in_row, xr[c]);

        int32_t sum_of_exps = 0; /* Q12.19, wrapping add as in the reference */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)xr[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = softmax_exp(p, diff);
                sum_of_exps = tfd_fp_add(sum_of_exps, tfd_fp_rescale(e, 0, kAccumulationIntegerBits));
            }
        }
        int bits_over_unit = 0;
        const int32_t shifted_scale = tfd_fp_reciprocal(sum_of_exps, kAccumulationIntegerBits, &bits_over_unit);
        const int exponent = bits_over_unit + 31 - out_bits;
        TFD_ENSURE(exponent >= 0 && exponent <= 31, TFD_ERR_INTERNAL);

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)xr[c] - max_in_row;
            int32_t out = out_min;
            if (diff >= p->diff_min) {
                const int32_t e = softmax_exp(p, diff);
                out = tfd_rdivpot(tfd_srdhm(shifted_scale, e), exponent) + out_min;
                out = tfd_clamp_i32(out, out_min, out_max);
            }
            const size_t at = (size_t)r * (size_t)depth + (size_t)c;
            if (out16) {
                ((int16_t *)yv)[at] = (int16_t)out;
            } else {
                ((int8_t *)yv)[at] = (int8_t)out;
            }
        }
    }
    return TFD_OK;
}
