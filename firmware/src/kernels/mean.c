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

/* Move the first n loops to the last n slots (innermost loops do the work). */
static void right_align(int32_t ext[4], int32_t st[4], int n)
{
    for (int k = n - 1; k >= 0; --k) {
        const int to = 4 - n + k;
        if (to == k) continue;
        ext[to] = ext[k];
        st[to] = st[k];
        ext[k] = 1;
        st[k] = 0;
    }
}

tfd_status_t tfd_eval_mean(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs >= 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_mean_params_t *p = (const tfd_mean_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->axis_mask != 0 && p->axis_mask < 16, TFD_ERR_BAD_MODEL);

    /* Split the 4-D shape into kept and reduced loops.  Size-1 dims are dropped
     * and neighbouring dims of the same kind merged (row-major: they form one
     * run), so global average pooling becomes C kept x (H*W) reduced with
     * stride C: two loops instead of eight. */
    int32_t keep[4] = {1, 1, 1, 1}, keep_st[4] = {0, 0, 0, 0};
    int32_t red[4] = {1, 1, 1, 1}, red_st[4] = {0, 0, 0, 0};
    int32_t n_red = 1, n_keep = 1;
    int nk = 0, nr = 0, last = -1; /* last: kind of the previous non-1 dim (0 kept, 1 reduced) */
    int32_t stride = tfd_tensor_elems(xt);
    for (int d = 0; d < 4; ++d) {
        const int32_t ext = xt->dims[d];
        stride /= ext;
        const int reduced = (p->axis_mask >> d) & 1;
        if (reduced) {
            n_red *= ext;
        } else {
            n_keep *= ext;
        }
        if (ext == 1) continue;
        int32_t *e = reduced ? red : keep;
        int32_t *st = reduced ? red_st : keep_st;
        int *n = reduced ? &nr : &nk;
        if (last == reduced) {
            e[*n - 1] *= ext; /* merge into the previous run of the same kind */
            st[*n - 1] = stride;
        } else {
            e[*n] = ext;
            st[*n] = stride;
            ++*n;
        }
        last = reduced;
    }
    TFD_ENSURE(n_red == p->num_elements && n_keep == tfd_tensor_elems(yt), TFD_ERR_SHAPE);
    right_align(keep, keep_st, nk);
    right_align(red, red_st, nr);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int32_t zero_sum = p->input_zero_point * p->num_elements;
    /* Output elements in row-major order of the kept dims = the output layout. */
    for (int32_t i0 = 0; i0 < keep[0]; ++i0) {
        for (int32_t i1 = 0; i1 < keep[1]; ++i1) {
            for (int32_t i2 = 0; i2 < keep[2]; ++i2) {
                for (int32_t i3 = 0; i3 < keep[3]; ++i3) {
                    const int8_t *base =
                        x + i0 * keep_st[0] + i1 * keep_st[1] + i2 * keep_st[2] + i3 * keep_st[3];
                    const int32_t sum = block_sum(base, red, red_st) - zero_sum;
                    *y++ = tfd_sat_i8(tfd_mbqm(sum, p->mult, p->shift) + p->output_zero_point);
                }
            }
        }
    }
    return TFD_OK;
}
