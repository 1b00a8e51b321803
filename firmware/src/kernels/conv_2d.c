/* CONV_2D, int8 activations and per-channel int8 filters (OHWI), optional
 * int32 bias; TFLite Micro reference semantics (reference_integer_ops::
 * ConvPerChannel): acc = sum filter * (input + input_offset) over the taps
 * inside the input (zero padding = skipped taps), + bias, requantized per
 * output channel with double rounding, + output offset, clamped to the fused
 * activation range.  Groups = 1 only (the toolchain refuses grouped conv).
 *
 * Cheaper than the reference loop, same int32 accumulator: the valid tap
 * range is computed once per output row / column (no per-tap bounds test);
 * for a window entirely inside the input the accumulator starts from the
 * precomputed bias + input_offset * sum(filter) (params acc_init) so the
 * inner loop is a plain int8 dot product; with dilation 1 in width each
 * filter row is one contiguous run in both the input and the filter. */
#include <stddef.h>

#include "spatial.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

/* sum(a[i] * b[i]), i < n: the int8 dot product at the heart of the convolutions,
 * unrolled by 4 (the int32 sum is order independent). */
TFD_NOINLINE static int32_t dot_i8(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    for (; n >= 4; n -= 4, a += 4, b += 4) {
        acc += (int32_t)a[0] * b[0];
        acc += (int32_t)a[1] * b[1];
        acc += (int32_t)a[2] * b[2];
        acc += (int32_t)a[3] * b[3];
    }
    for (; n > 0; --n) acc += (int32_t)*a++ * *b++;
    return acc;
}

/* sum(a[i] * (b[i] + offset)), i < n: the reference formula (windows at the border). */
TFD_NOINLINE static int32_t dot_i8_offset(const int8_t *a, const int8_t *b, int32_t n, int32_t offset)
{
    int32_t acc = 0;
    for (; n >= 4; n -= 4, a += 4, b += 4) {
        acc += (int32_t)a[0] * (b[0] + offset);
        acc += (int32_t)a[1] * (b[1] + offset);
        acc += (int32_t)a[2] * (b[2] + offset);
        acc += (int32_t)a[3] * (b[3] + offset);
    }
    for (; n > 0; --n) acc += (int32_t)*a++ * (*b++ + offset);
    return acc;
}

/* Geometry of one window, in elements. */
typedef struct {
    int32_t rows;       /* valid filter rows */
    int32_t runs;       /* contiguous runs per filter row */
    int32_t run;        /* elements per run */
    int32_t x_run_step; /* input: start of one run to the next */
    int32_t x_row_step; /* input: one filter row to the next */
    int32_t w_row_step; /* filter: one filter row to the next (runs follow each other) */
} window_t;

/* sum(w * x) over the window; with has_offset, sum(w * (x + offset)). */
TFD_NOINLINE static int32_t window_dot(const int8_t *x, const int8_t *w, const window_t *win, int has_offset,
                                       int32_t offset)
{
    int32_t acc = 0;
    for (int32_t r = 0; r < win->rows; ++r) {
        const int8_t *xr = x;
        const int8_t *wr = w;
        for (int32_t k = 0; k < win->runs; ++k) {
            acc += has_offset ? dot_i8_offset(wr, xr, win->run, offset) : dot_i8(wr, xr, win->run);
            xr += win->x_run_step;
            wr += win->run;
        }
        x += win->x_row_step;
        w += win->w_row_step;
    }
    return acc;
}

tfd_status_t TFD_REFERENCE_KERNEL(conv_2d)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 3 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_conv_params_t *p = (const tfd_conv_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *wt = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && wt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t batches = xt->dims[0];
    const int32_t in_h = xt->dims[1], in_w = xt->dims[2], in_c = xt->dims[3];
    const int32_t out_h = yt->dims[1], out_w = yt->dims[2], out_c = yt->dims[3];
    const int32_t k_h = wt->dims[1], k_w = wt->dims[2];
    TFD_ENSURE(yt->dims[0] == batches && wt->dims[0] == out_c && wt->dims[3] == in_c, TFD_ERR_SHAPE);
    TFD_ENSURE(p->stride_h > 0 && p->stride_w > 0 && p->dilation_h > 0 && p->dilation_w > 0,
               TFD_ERR_BAD_MODEL);
    TFD_ENSURE(p->mult != NULL && p->shift != NULL && p->acc_init != NULL, TFD_ERR_BAD_MODEL);
    const int32_t *bias = NULL;
    if (l->inputs[2] >= 0) {
        const tfd_tensor_t *bt = TFD_IN_T(m, l, 2);
        TFD_ENSURE(bt->type == TFD_TYPE_INT32, TFD_ERR_UNSUPPORTED_TYPE);
        TFD_ENSURE(tfd_tensor_elems(bt) == out_c, TFD_ERR_SHAPE);
        bias = (const int32_t *)TFD_IN(m, l, arena, 2);
    }

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *w = (const int8_t *)TFD_IN(m, l, arena, 1);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int32_t dil_h = p->dilation_h, dil_w = p->dilation_w;
    const int32_t x_row = in_w * in_c;         /* one input row, elements */
    const int32_t w_filter = k_h * k_w * in_c; /* one output channel's filter */
    const int32_t w_row = k_w * in_c;          /* one filter row */

    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *xb = x + (size_t)b * (size_t)in_h * (size_t)x_row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, dil_h, in_h, k_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, dil_w, in_w, k_w, &fx0, &fx1);
                window_t win;
                win.rows = fy1 - fy0;
                if (dil_w == 1) {
                    win.runs = 1;
                    win.run = (fx1 - fx0) * in_c;
                } else {
                    win.runs = fx1 - fx0;
                    win.run = in_c;
                }
                win.x_run_step = dil_w * in_c;
                win.x_row_step = dil_h * x_row;
                win.w_row_step = w_row;
                const int full = win.rows == k_h && fx1 - fx0 == k_w;
                /* First valid tap, input side; the filter side is at the same
                 * (fy0, fx0) inside each output channel's filter. */
                const int8_t *x_win = xb + (iy0 + fy0 * dil_h) * x_row + (ix0 + fx0 * dil_w) * in_c;
                const int8_t *w_win = w + fy0 * w_row + fx0 * in_c;
                for (int32_t oc = 0; oc < out_c; ++oc, w_win += w_filter) {
                    int32_t acc;
                    if (full) {
                        acc = p->acc_init[oc] + window_dot(x_win, w_win, &win, 0, 0);
                    } else {
                        acc = window_dot(x_win, w_win, &win, 1, p->input_offset);
                        if (bias) acc += bias[oc];
                    }
                    acc = tfd_mbqm(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
                    y[oc] = (int8_t)tfd_clamp_i32(acc, p->act_min, p->act_max);
                }
                y += out_c;
            }
        }
    }
    return TFD_OK;
}
