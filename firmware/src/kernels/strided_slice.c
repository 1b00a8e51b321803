/* STRIDED_SLICE, int8 (TFLite Micro reference semantics: a raw copy of the
 * selected input codes).  The toolchain resolves begin/end/strides and the
 * begin/end/shrink masks to a start, a step and a count per right-aligned 4-D
 * axis, exactly as TFLM's StridedSliceStartForAxis / EndForAxis do. */
#include <stddef.h>
#include <string.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/runtime.h"

/* Every index begin + i * stride (0 <= i < count) lies in [0, size). */
static int axis_in_bounds(int32_t begin, int32_t stride, int32_t count, int32_t size)
{
    if (count < 1 || begin < 0 || begin >= size) return 0;
    const int64_t last = (int64_t)begin + (int64_t)(count - 1) * stride;
    return last >= 0 && last < size;
}

tfd_status_t tfd_eval_strided_slice(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    const tfd_tensor_t *xt, *yt;
    TFD_TRY(tfd_unary_i8_tensors(m, l, &xt, &yt));
    const tfd_strided_slice_params_t *p = (const tfd_strided_slice_params_t *)l->params;
    int32_t n = 1;
    int32_t step[4]; /* element strides of the input, times the slice stride */
    int32_t s = 1;
    for (int d = 3; d >= 0; --d) {
        TFD_ENSURE(axis_in_bounds(p->begin[d], p->stride[d], p->count[d], xt->dims[d]), TFD_ERR_SHAPE);
        step[d] = s * p->stride[d];
        s *= xt->dims[d];
        n *= p->count[d];
    }
    TFD_ENSURE(n == tfd_tensor_elems(yt), TFD_ERR_SHAPE);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int8_t *first = x + ((p->begin[0] * xt->dims[1] + p->begin[1]) * xt->dims[2] + p->begin[2]) * xt->dims[3] +
                          p->begin[3];
    for (int32_t i0 = 0; i0 < p->count[0]; ++i0) {
        for (int32_t i1 = 0; i1 < p->count[1]; ++i1) {
            for (int32_t i2 = 0; i2 < p->count[2]; ++i2) {
                const int8_t *row = first + i0 * step[0] + i1 * step[1] + i2 * step[2];
                if (step[3] == 1) {
                    memcpy(y, row, (size_t)p->count[3]);
                } else {
                    for (int32_t i3 = 0; i3 < p->count[3]; ++i3) y[i3] = row[i3 * step[3]];
                }
                y += p->count[3];
            }
        }
    }
    return TFD_OK;
}
