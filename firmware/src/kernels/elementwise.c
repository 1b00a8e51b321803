/* Drivers shared by the int8 elementwise kernels (see elementwise.h). */
#include "elementwise.h"

#include <stddef.h>

#include "tfd/broadcast.h"
#include "tfd/kernels.h"
#include "tfd/runtime.h"

tfd_status_t tfd_eval_binary_i8(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena,
                                tfd_i8_row_fn row)
{
    TFD_ENSURE(l->n_inputs == 2, TFD_ERR_BAD_MODEL);
    const tfd_tensor_t *t1 = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *t2 = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *to = TFD_OUT_T(m, l);
    TFD_ENSURE(t1->type == TFD_TYPE_INT8 && t2->type == TFD_TYPE_INT8 && to->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    tfd_bcast4_t b;
    TFD_TRY(tfd_bcast4_init(&b, t1, t2, to));

    const int8_t *x1 = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *x2 = (const int8_t *)TFD_IN(m, l, arena, 1);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);

    if (b.same_shape) {
        row(l->params, x1, 1, x2, 1, y, tfd_tensor_elems(to));
        return TFD_OK;
    }
    for (int32_t i0 = 0; i0 < b.dims[0]; ++i0) {
        for (int32_t i1 = 0; i1 < b.dims[1]; ++i1) {
            for (int32_t i2 = 0; i2 < b.dims[2]; ++i2) {
                const int8_t *r1 = x1 + i0 * b.stride1[0] + i1 * b.stride1[1] + i2 * b.stride1[2];
                const int8_t *r2 = x2 + i0 * b.stride2[0] + i1 * b.stride2[1] + i2 * b.stride2[2];
                row(l->params, r1, b.stride1[3], r2, b.stride2[3], y, b.dims[3]);
                y += b.dims[3];
            }
        }
    }
    return TFD_OK;
}

tfd_status_t tfd_unary_i8_tensors(const tfd_model_t *m, const tfd_layer_t *l, const tfd_tensor_t **xt,
                                  const tfd_tensor_t **yt)
{
    TFD_ENSURE(l->n_inputs >= 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    *xt = TFD_IN_T(m, l, 0);
    *yt = TFD_OUT_T(m, l);
    TFD_ENSURE((*xt)->type == TFD_TYPE_INT8 && (*yt)->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    return TFD_OK;
}

tfd_status_t tfd_eval_map_i8(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena,
                             tfd_i8_map_fn fn)
{
    const tfd_tensor_t *xt, *yt;
    TFD_TRY(tfd_unary_i8_tensors(m, l, &xt, &yt));
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(tfd_tensor_elems(yt) == n, TFD_ERR_SHAPE);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    if (n > 256) {
        int8_t table[256];
        for (int32_t c = 0; c < 256; ++c) table[c] = fn(l->params, c - 128);
        for (int32_t i = 0; i < n; ++i) y[i] = table[(int32_t)x[i] + 128];
    } else {
        for (int32_t i = 0; i < n; ++i) y[i] = fn(l->params, x[i]);
    }
    return TFD_OK;
}
