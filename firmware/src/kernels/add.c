/* ADD and SUB, int8 with 4-D broadcasting and fused activation (TFLite Micro
 * reference semantics: both inputs shifted left by 20 bits, each rescaled to
 * a common scale with a multiplier < 1, added or subtracted, rescaled to the
 * output).
 *
 * SUB is not ADD with input 2's multiplier negated: the rounding of
 * MultiplyByQuantizedMultiplierSmallerThanOneExp is not odd-symmetric
 * (SaturatingRoundingDoublingHighMul rounds negative ties toward zero), so
 * TFLM's scaled1 - scaled2 differs from scaled1 + MBQM(x2, -m2) on ties.  The
 * two ops share this arithmetic, the parameter struct and the toolchain's
 * Prepare math; only the sign of the combination differs. */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"

/* Input code rescaled to the common scale (Q20 shifted, multiplier < 1). */
static inline int32_t add_scaled(int32_t x, int32_t offset, int32_t left_shift, int32_t mult,
                                 int32_t shift)
{
    return tfd_mbqm_small((int32_t)((uint32_t)(x + offset) << left_shift), mult, shift);
}

static inline int8_t add_out(const tfd_add_params_t *p, int32_t raw)
{
    const int32_t out = tfd_mbqm_small(raw, p->output_mult, p->output_shift) + p->output_offset;
    return (int8_t)tfd_clamp_i32(out, p->act_min, p->act_max);
}

/* One row of ADD (subtract = 0) or SUB (subtract = 1); inlined into both
 * row functions with a constant `subtract`. */
static inline void add_sub_row(const tfd_add_params_t *p, const int8_t *x1, int32_t s1, const int8_t *x2,
                               int32_t s2, int8_t *y, int32_t n, int subtract)
{
    for (int32_t i = 0; i < n; ++i) {
        const int32_t a = add_scaled(x1[i * s1], p->input1_offset, p->left_shift, p->input1_mult, p->input1_shift);
        const int32_t b = add_scaled(x2[i * s2], p->input2_offset, p->left_shift, p->input2_mult, p->input2_shift);
        y[i] = add_out(p, subtract ? a - b : a + b);
    }
}

static void add_row(const void *p, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2, int8_t *y,
                    int32_t n)
{
    add_sub_row((const tfd_add_params_t *)p, x1, s1, x2, s2, y, n, 0);
}

static void sub_row(const void *p, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2, int8_t *y,
                    int32_t n)
{
    add_sub_row((const tfd_add_params_t *)p, x1, s1, x2, s2, y, n, 1);
}

TFD_CHECK_RESULT static tfd_status_t check_params(const tfd_layer_t *l)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_add_params_t *p = (const tfd_add_params_t *)l->params;
    TFD_ENSURE(p->left_shift >= 0 && p->left_shift <= 23 && p->input1_shift <= 0 &&
                   p->input2_shift <= 0 && p->output_shift <= 0 && p->input1_shift >= -31 &&
                   p->input2_shift >= -31 && p->output_shift >= -31,
               TFD_ERR_BAD_MODEL);
    return TFD_OK;
}

tfd_status_t TFD_REFERENCE_KERNEL(add)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_TRY(check_params(l));
    return tfd_eval_binary_i8(m, l, arena, add_row);
}

tfd_status_t TFD_REFERENCE_KERNEL(sub)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_TRY(check_params(l));
    return tfd_eval_binary_i8(m, l, arena, sub_row);
}
