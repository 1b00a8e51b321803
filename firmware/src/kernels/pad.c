/* PAD / PADV2, int8 (TFLite Micro semantics: a raw copy of the input codes
 * into the middle of the output, the rest filled with the pad value — the
 * output zero point for PAD, the constant for PADV2). */
#include <stddef.h>
#include <string.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_pad(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs >= 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_pad_params_t *p = (const tfd_pad_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    for (int d = 0; d < 4; ++d) {
        TFD_ENSURE(p->before[d] >= 0 && p->after[d] >= 0 &&
                       yt->dims[d] == xt->dims[d] + p->before[d] + p->after[d],
                   TFD_ERR_SHAPE);
    }
    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int pad = (int)(int8_t)p->pad_value;
    const int32_t *od = yt->dims;
    const int32_t *id = xt->dims;
    const size_t row = (size_t)od[3];

    for (int32_t o0 = 0; o0 < od[0]; ++o0) {
        const int32_t i0 = o0 - p->before[0];
        for (int32_t o1 = 0; o1 < od[1]; ++o1) {
            const int32_t i1 = o1 - p->before[1];
            for (int32_t o2 = 0; o2 < od[2]; ++o2) {
                const int32_t i2 = o2 - p->before[2];
                if (i0 < 0 || i0 >= id[0] || i1 < 0 || i1 >= id[1] || i2 < 0 || i2 >= id[2]) {
                    memset(y, pad, row);
                } else {
                    const int8_t *src = x + (((size_t)i0 * (size_t)id[1] + (size_t)i1) * (size_t)id[2] +
                                             (size_t)i2) * (size_t)id[3];
                    memset(y, pad, (size_t)p->before[3]);
                    memcpy(y + p->before[3], src, (size_t)id[3]);
                    memset(y + p->before[3] + id[3], pad, (size_t)p->after[3]);
                }
                y += row;
            }
        }
    }
    return TFD_OK;
}
