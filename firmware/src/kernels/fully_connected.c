/* FULLY_CONNECTED, int8 with per-tensor or per-channel requantization
 * (TFLite Micro reference semantics: int32 accumulate, double-rounding requantize). */
#include <stddef.h>

#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

tfd_status_t TFD_REFERENCE_KERNEL(fully_connected)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 3 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_fc_params_t *p = (const tfd_fc_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *wt = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && wt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t units = wt->dims[2];
    const int32_t depth = wt->dims[3];
    const int32_t batches = tfd_tensor_elems(yt) / units;
    TFD_ENSURE(units > 0 && depth > 0 && tfd_tensor_elems(xt) == batches * depth, TFD_ERR_SHAPE);
    TFD_ENSURE(p->n_mult == 1 || p->n_mult == units, TFD_ERR_BAD_MODEL);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *w = (const int8_t *)TFD_IN(m, l, arena, 1);
    const int32_t *bias = l->inputs[2] >= 0 ? (const int32_t *)TFD_IN(m, l, arena, 2) : NULL;
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);

    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *xb = x + (size_t)b * (size_t)depth;
        for (int32_t u = 0; u < units; ++u) {
            const int8_t *wu = w + (size_t)u * (size_t)depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < depth; ++d) {
                acc += ((int32_t)wu[d] + p->filter_offset) * ((int32_t)xb[d] + p->input_offset);
            }
            if (bias) acc += bias[u];
            const int c = p->n_mult == 1 ? 0 : u;
            acc = tfd_mbqm(acc, p->mult[c], p->shift[c]) + p->output_offset;
            y[(size_t)b * (size_t)units + (size_t)u] = (int8_t)tfd_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
    return TFD_OK;
}
