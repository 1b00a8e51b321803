/* ADD, int8 with 4-D broadcasting and fused activation (TFLite Micro
 * reference semantics: both inputs shifted left by 20 bits, each rescaled to
 * a common scale with a multiplier < 1, summed, rescaled to the output). */
#include <stddef.h>

#include "tfd/broadcast.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

static inline int8_t add_one(const tfd_add_params_t *p, int32_t x1, int32_t x2)
{
    const int32_t a = (int32_t)((uint32_t)(x1 + p->input1_offset) << p->left_shift);
    const int32_t b = (int32_t)((uint32_t)(x2 + p->input2_offset) << p->left_shift);
    const int32_t sa = tfd_mbqm_small(a, p->input1_mult, p->input1_shift);
    const int32_t sb = tfd_mbqm_small(b, p->input2_mult, p->input2_shift);
    const int32_t out = tfd_mbqm_small(sa + sb, p->output_mult, p->output_shift) + p->output_offset;
    return (int8_t)tfd_clamp_i32(out, p->act_min, p->act_max);
}

tfd_status_t tfd_eval_add(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 2 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_add_params_t *p = (const tfd_add_params_t *)l->params;
    const tfd_tensor_t *t1 = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *t2 = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *to = TFD_OUT_T(m, l);
    TFD_ENSURE(t1->type == TFD_TYPE_INT8 && t2->type == TFD_TYPE_INT8 && to->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->left_shift >= 0 && p->left_shift <= 23 && p->input1_shift <= 0 &&
                   p->input2_shift <= 0 && p->output_shift <= 0 && p->input1_shift >= -31 &&
                   p->input2_shift >= -31 && p->output_shift >= -31,
               TFD_ERR_BAD_MODEL);
    tfd_bcast4_t b;
    TFD_TRY(tfd_bcast4_init(&b, t1, t2, to));

    const int8_t *x1 = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *x2 = (const int8_t *)TFD_IN(m, l, arena, 1);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);

    if (b.same_shape) {
        const int32_t n = tfd_tensor_elems(to);
        for (int32_t i = 0; i < n; ++i) y[i] = add_one(p, x1[i], x2[i]);
        return TFD_OK;
    }
    for (int32_t i0 = 0; i0 < b.dims[0]; ++i0) {
        for (int32_t i1 = 0; i1 < b.dims[1]; ++i1) {
            for (int32_t i2 = 0; i2 < b.dims[2]; ++i2) {
                const int8_t *r1 = x1 + i0 * b.stride1[0] + i1 * b.stride1[1] + i2 * b.stride1[2];
                const int8_t *r2 = x2 + i0 * b.stride2[0] + i1 * b.stride2[1] + i2 * b.stride2[2];
                for (int32_t i3 = 0; i3 < b.dims[3]; ++i3) {
                    *y++ = add_one(p, r1[i3 * b.stride1[3]], r2[i3 * b.stride2[3]]);
                }
            }
        }
    }
    return TFD_OK;
}
