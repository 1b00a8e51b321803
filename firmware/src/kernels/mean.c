/* MEAN, int8, over a constant set of axes (keep_dims or not: the output bytes
 * are the same).  TFLite Micro semantics (reference_ops::QuantizedMeanOrSum,
 * which TFLM uses for every int8 MEAN): sum the raw int8 values of each
 * reduced block in int32, subtract input_zero_point * N, requantize with the
 * multiplier the toolchain precomputed (input/output scale with 1/N folded
 * in, exactly as TFLM folds it), add the output zero point and saturate to
 * int8.  No fused activation. */
#include <stddef.h>

#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

/* Sum of one reduced block: extents ext[4] with element strides st[4]. */
static int32_t block_sum(const int8_t *x, const int32_t ext[4], const int32_t st[4])
{
    int32_t sum = 0;
    for (int32_t i0 = 0; i0 < ext[0]; ++i0) {
        const int8_t *p0 = x + i0 * st[0];
        for (int32_t i1 = 0; i1 < ext[1]; ++i1) {
            const int8_t *p1 = p0 + i1 * st[1];
            for (int32_t i2 = 0; i2 < ext[2]; ++i2) {
                const int8_t *p2 = p1 + i2 * st[2];
                for (int32_t i3 = 0; i3 < ext[3]; ++i3) sum += p2[i3 * st[3]];
            }
        }
    }
    return sum;
}

tfd_status_t tfd_eval_mean(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs >= 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_mean_params_t *p = (const tfd_mean_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->axis_mask != 0 && p->axis_mask < 16, TFD_ERR_BAD_MODEL);

    int32_t keep[4], red[4], st[4];
    int32_t n_red = 1, n_keep = 1, stride = 1;
    for (int d = 3; d >= 0; --d) {
        const int reduced = (p->axis_mask >> d) & 1;
        st[d] = stride;
        stride *= xt->dims[d];
        keep[d] = reduced ? 1 : xt->dims[d];
        red[d] = reduced ? xt->dims[d] : 1;
        n_red *= red[d];
        n_keep *= keep[d];
    }
    TFD_ENSURE(n_red == p->num_elements && n_keep == tfd_tensor_elems(yt), TFD_ERR_SHAPE);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int32_t zero_sum = p->input_zero_point * p->num_elements;
    /* Output elements in row-major order of the kept dims = the output layout. */
    for (int32_t i0 = 0; i0 < keep[0]; ++i0) {
        for (int32_t i1 = 0; i1 < keep[1]; ++i1) {
            for (int32_t i2 = 0; i2 < keep[2]; ++i2) {
                for (int32_t i3 = 0; i3 < keep[3]; ++i3) {
                    const int8_t *base = x + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
                    const int32_t sum = block_sum(base, red, st) - zero_sum;
                    *y++ = tfd_sat_i8(tfd_mbqm(sum, p->mult, p->shift) + p->output_zero_point);
                }
            }
        }
    }
    return TFD_OK;
}
