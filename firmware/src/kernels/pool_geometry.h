/* tinyfed — the pooling kernels' checked geometry, shared by the reference
 * (pooling.c) and the DSP kernels (dsp/pooling_dsp.c) so that both refuse
 * exactly the same layers. */
#ifndef TFD_KERNELS_POOL_GEOMETRY_H
#define TFD_KERNELS_POOL_GEOMETRY_H

#include <stdint.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

typedef struct {
    const tfd_pool_params_t *p;
    const int8_t *x;
    int8_t *y;
    int32_t batches, in_h, in_w, depth, out_h, out_w;
} pool_geometry_t;

TFD_CHECK_RESULT static inline tfd_status_t pool_setup(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena,
                                                pool_geometry_t *g)
{
    TFD_ENSURE(l->n_inputs >= 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_pool_params_t *p = (const tfd_pool_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(xt->dims[0] == yt->dims[0] && xt->dims[3] == yt->dims[3], TFD_ERR_SHAPE);
    TFD_ENSURE(p->stride_h > 0 && p->stride_w > 0 && p->filter_h > 0 && p->filter_w > 0,
               TFD_ERR_BAD_MODEL);
    g->p = p;
    g->x = (const int8_t *)TFD_IN(m, l, arena, 0);
    g->y = (int8_t *)TFD_OUT(m, l, arena);
    g->batches = xt->dims[0];
    g->in_h = xt->dims[1];
    g->in_w = xt->dims[2];
    g->depth = xt->dims[3];
    g->out_h = yt->dims[1];
    g->out_w = yt->dims[2];
    return TFD_OK;
}

#endif /* TFD_KERNELS_POOL_GEOMETRY_H */
