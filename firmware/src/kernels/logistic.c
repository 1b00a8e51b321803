/* LOGISTIC, int8 (TFLite Micro reference semantics: inputs outside the range
 * radius saturate; others are rescaled to Q4.27 and fed to the fixed-point
 * logistic; the Q0 result is rounded to the output scale 1/256, zero point -128). */
#include <stddef.h>

#include "tfd/fixedpoint.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

/* One output code for one input code. */
static int8_t logistic_one(const tfd_sigmoid_params_t *p, int32_t code)
{
    const int32_t v = code - p->input_zero_point;
    int32_t out;
    if (v <= -p->input_range_radius) {
        out = INT8_MIN;
    } else if (v >= p->input_range_radius) {
        out = INT8_MAX;
    } else {
        const int32_t q4 = tfd_mbqm(v, p->input_multiplier, p->input_left_shift);
        out = tfd_clamp_i32(tfd_rdivpot(tfd_fp_logistic(q4, 4), 31 - 8) - 128, INT8_MIN, INT8_MAX);
    }
    return (int8_t)out;
}

tfd_status_t tfd_eval_logistic(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_sigmoid_params_t *p = (const tfd_sigmoid_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(tfd_tensor_elems(yt) == n, TFD_ERR_SHAPE);
    /* Inside the radius the rescale cannot overflow; a shift > 30 implies radius 0. */
    TFD_ENSURE(p->input_range_radius >= 0 && p->input_left_shift >= -31 &&
                   (p->input_left_shift <= 30 || p->input_range_radius == 0),
               TFD_ERR_BAD_MODEL);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    if (n > 256) {
        /* The output depends on the input code only: tabulate the 256 codes
         * once (bit-exact by construction) instead of n evaluations. */
        int8_t table[256];
        for (int32_t c = 0; c < 256; ++c) table[c] = logistic_one(p, c - 128);
        for (int32_t i = 0; i < n; ++i) y[i] = table[(int32_t)x[i] + 128];
    } else {
        for (int32_t i = 0; i < n; ++i) y[i] = logistic_one(p, x[i]);
    }
    return TFD_OK;
}
