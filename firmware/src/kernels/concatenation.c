/* CONCATENATION along one 4-D axis (TFLite Micro semantics for int8: every
 * input has the output's quantization, so this is a raw copy). */
#include <stddef.h>
#include <string.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_concatenation(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs >= 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_concat_params_t *p = (const tfd_concat_params_t *)l->params;
    const int axis = (int)p->axis;
    TFD_ENSURE(axis >= 0 && axis < 4, TFD_ERR_BAD_MODEL);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);

    int32_t outer = 1, inner = 1, axis_total = 0;
    for (int d = 0; d < axis; ++d) outer *= yt->dims[d];
    for (int d = axis + 1; d < 4; ++d) inner *= yt->dims[d];
    for (uint8_t k = 0; k < l->n_inputs; ++k) {
        const tfd_tensor_t *xt = TFD_IN_T(m, l, k);
        TFD_ENSURE(xt->type == yt->type, TFD_ERR_UNSUPPORTED_TYPE);
        for (int d = 0; d < 4; ++d) {
            TFD_ENSURE(d == axis || xt->dims[d] == yt->dims[d], TFD_ERR_SHAPE);
        }
        axis_total += xt->dims[axis];
    }
    TFD_ENSURE(axis_total == yt->dims[axis], TFD_ERR_SHAPE);

    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    for (int32_t o = 0; o < outer; ++o) {
        for (uint8_t k = 0; k < l->n_inputs; ++k) {
            const tfd_tensor_t *xt = TFD_IN_T(m, l, k);
            const size_t chunk = (size_t)xt->dims[axis] * (size_t)inner;
            const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, k);
            memcpy(y, x + (size_t)o * chunk, chunk);
            y += chunk;
        }
    }
    return TFD_OK;
}
