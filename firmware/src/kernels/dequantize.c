/* DEQUANTIZE int8 -> float32 (TFLite Micro reference semantics:
 * (float)(scale * (x - zero_point)) evaluated in double; the product of a
 * float32 scale and a 9-bit integer is exact in double, so a single float32
 * multiply rounds it identically — no double arithmetic on the device). */
#include <stddef.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_dequantize(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_dequantize_params_t *p = (const tfd_dequantize_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_FLOAT32, TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(tfd_tensor_elems(yt) == n, TFD_ERR_SHAPE);
    TFD_ENSURE(p->zero_point >= -128 && p->zero_point <= 127, TFD_ERR_BAD_MODEL);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    float *y = (float *)TFD_OUT(m, l, arena);
    for (int32_t i = 0; i < n; ++i) y[i] = p->scale * (float)((int32_t)x[i] - p->zero_point);
    return TFD_OK;
}
