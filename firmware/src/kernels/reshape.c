/* RESHAPE (also SQUEEZE / EXPAND_DIMS): the planner aliases output and input,
 * so this is normally a no-op; it copies when the two were placed apart. */
#include <string.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_reshape(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs >= 1, TFD_ERR_BAD_MODEL);
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->bytes == yt->bytes, TFD_ERR_SHAPE);
    const void *x = TFD_IN(m, l, arena, 0);
    void *y = TFD_OUT(m, l, arena);
    if (x != y) memmove(y, x, yt->bytes);
    return TFD_OK;
}
