/* RELU and RELU6, int8, with TFLite Micro semantics:
 *  - RELU requantizes input -> output scale and clamps at the output zero point;
 *  - RELU6 clamps the raw input codes to [zero point, q(6.0)] without rescaling. */
#include <stddef.h>

#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_relu(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_requant_params_t *p = (const tfd_requant_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(tfd_tensor_elems(yt) == n, TFD_ERR_SHAPE);
    TFD_ENSURE(p->shift >= -31 && p->shift <= 30, TFD_ERR_BAD_MODEL);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = p->output_offset + tfd_mbqm((int32_t)x[i] - p->input_offset, p->mult, p->shift);
        y[i] = (int8_t)tfd_clamp_i32(v, p->act_min, p->act_max);
    }
    return TFD_OK;
}

tfd_status_t tfd_eval_relu6(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_clamp_params_t *p = (const tfd_clamp_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(tfd_tensor_elems(yt) == n, TFD_ERR_SHAPE);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    /* TFLM compares val > upper first, so an empty range (lo > hi) yields hi. */
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = x[i];
        y[i] = (int8_t)(v > p->hi ? p->hi : (v < p->lo ? p->lo : v));
    }
    return TFD_OK;
}
