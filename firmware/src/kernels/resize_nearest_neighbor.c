/* RESIZE_NEAREST_NEIGHBOR, int8 NHWC (TFLite Micro reference semantics: every
 * output pixel is a raw copy of one input pixel's channels).  The source
 * row / column of each output row / column is computed by the toolchain with
 * TFLM's float32 GetNearestNeighbor and emitted as two index tables. */
#include <stddef.h>
#include <string.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_resize_nearest_neighbor(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    const tfd_tensor_t *xt, *yt;
    TFD_TRY(tfd_unary_i8_tensors(m, l, &xt, &yt));
    const tfd_resize_nn_params_t *p = (const tfd_resize_nn_params_t *)l->params;
    TFD_ENSURE(p->in_y != NULL && p->in_x != NULL, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(xt->dims[0] == yt->dims[0] && xt->dims[3] == yt->dims[3], TFD_ERR_SHAPE);
    const int32_t batches = yt->dims[0], out_h = yt->dims[1], out_w = yt->dims[2], depth = yt->dims[3];
    const int32_t in_h = xt->dims[1], in_w = xt->dims[2];
    for (int32_t oy = 0; oy < out_h; ++oy) TFD_ENSURE(p->in_y[oy] >= 0 && p->in_y[oy] < in_h, TFD_ERR_BAD_MODEL);
    for (int32_t ox = 0; ox < out_w; ++ox) TFD_ENSURE(p->in_x[ox] >= 0 && p->in_x[ox] < in_w, TFD_ERR_BAD_MODEL);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const size_t row = (size_t)in_w * (size_t)depth;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *img = x + (size_t)b * (size_t)in_h * row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int8_t *src_row = img + (size_t)p->in_y[oy] * row;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                memcpy(y, src_row + (size_t)p->in_x[ox] * (size_t)depth, (size_t)depth);
                y += depth;
            }
        }
    }
    return TFD_OK;
}
