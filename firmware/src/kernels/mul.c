/* MUL, int8 with 4-D broadcasting and fused activation (TFLite Micro
 * reference semantics: product of the offset inputs, one requantization). */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"

static void mul_row(const void *pv, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2,
                    int8_t *y, int32_t n)
{
    const tfd_mul_params_t *p = (const tfd_mul_params_t *)pv;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t prod = (x1[i * s1] + p->input1_offset) * (x2[i * s2] + p->input2_offset);
        const int32_t out = tfd_mbqm(prod, p->output_mult, p->output_shift) + p->output_offset;
        y[i] = (int8_t)tfd_clamp_i32(out, p->act_min, p->act_max);
    }
}

tfd_status_t TFD_REFERENCE_KERNEL(mul)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_mul_params_t *p = (const tfd_mul_params_t *)l->params;
    TFD_ENSURE(p->output_shift >= -31 && p->output_shift <= 30, TFD_ERR_BAD_MODEL);
    return tfd_eval_binary_i8(m, l, arena, mul_row);
}
