/* tinyfed — SOFTMAX's checked shape, shared by the reference (softmax.c) and
 * the DSP kernel (dsp/softmax_dsp.c) so that both refuse exactly the same layers. */
#ifndef TFD_KERNELS_SOFTMAX_SHAPE_H
#define TFD_KERNELS_SOFTMAX_SHAPE_H

#include <stdint.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

typedef struct {
    const tfd_softmax_params_t *p;
    int32_t depth, rows;   /* rows of depth values, softmax over each row */
    int out16, out_bits;   /* int16 output, else int8 */
    int32_t out_min, out_max;
} softmax_shape_t;

TFD_CHECK_RESULT static inline tfd_status_t softmax_shape(const tfd_model_t *m, const tfd_layer_t *l,
                                                          softmax_shape_t *s)
{
    TFD_ENSURE(l->n_inputs == 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_softmax_params_t *p = (const tfd_softmax_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(yt->type == TFD_TYPE_INT8 || yt->type == TFD_TYPE_INT16, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->input_left_shift >= 0 && p->input_left_shift <= 31 && p->diff_min <= 0,
               TFD_ERR_BAD_MODEL);
    const int32_t depth = xt->dims[3];
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(depth > 0 && tfd_tensor_elems(yt) == n && yt->dims[3] == depth, TFD_ERR_SHAPE);
    const int32_t rows = n / depth;
    const int out16 = yt->type == TFD_TYPE_INT16;
    const int32_t out_min = out16 ? INT16_MIN : INT8_MIN;
    const int32_t out_max = out16 ? INT16_MAX : INT8_MAX;
    const int out_bits = out16 ? 16 : 8;
    s->p = p;
    s->depth = depth;
    s->rows = rows;
    s->out16 = out16;
    s->out_bits = out_bits;
    s->out_min = out_min;
    s->out_max = out_max;
    return TFD_OK;
}

#endif /* TFD_KERNELS_SOFTMAX_SHAPE_H */
