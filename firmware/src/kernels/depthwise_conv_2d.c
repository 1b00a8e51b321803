/* DEPTHWISE_CONV_2D, int8 activations, per-channel int8 filters [1, KH, KW,
 * C*M], optional int32 bias, depth multiplier M >= 1; TFLite Micro reference
 * semantics (reference_integer_ops::DepthwiseConvPerChannel): output channel
 * oc = c*M + m sees only input channel c; padded taps are skipped; per-channel
 * double-rounding requantization, output offset, fused activation clamp.
 *
 * Same int32 accumulators as the reference, computed cheaper: valid taps are
 * found once per output row / column; windows entirely inside the input start
 * from the precomputed bias + input_offset * sum(filter) (params acc_init) and
 * accumulate plain products.  With M = 1 the accumulators of up to
 * TFD_DW_CHUNK channels live on the stack and each tap is one contiguous pass
 * over the channels (input and filter are both channel-innermost). */
#include <stddef.h>

#include "spatial.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

#define TFD_DW_CHUNK 32 /* channels per pass: 128 bytes of stack */

/* acc[i] += w[i] * (x[i] + offset), i < n. */
TFD_NOINLINE static void tap_accumulate(int32_t *acc, const int8_t *w, const int8_t *x, int32_t n,
                                        int32_t offset)
{
    if (offset == 0) {
        for (int32_t i = 0; i < n; ++i) acc[i] += (int32_t)w[i] * x[i];
    } else {
        for (int32_t i = 0; i < n; ++i) acc[i] += (int32_t)w[i] * (x[i] + offset);
    }
}

typedef struct {
    const tfd_conv_params_t *p;
    const int32_t *bias;
    int32_t in_c, out_c, depth_mult;
    int32_t x_tap_w, x_tap_h, w_row; /* element strides: next filter column / row */
} dw_ctx_t;

/* Requantize `n` accumulators of output channels [oc0, oc0 + n). */
static void store(const dw_ctx_t *c, const int32_t *acc, int32_t oc0, int32_t n, int8_t *y)
{
    const tfd_conv_params_t *p = c->p;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t oc = oc0 + i;
        const int32_t v = tfd_mbqm(acc[i], p->mult[oc], p->shift[oc]) + p->output_offset;
        y[oc] = (int8_t)tfd_clamp_i32(v, p->act_min, p->act_max);
    }
}

/* One output pixel, depth multiplier 1: channel chunks, one contiguous pass per tap. */
static void pixel_m1(const dw_ctx_t *c, const int8_t *x_win, const int8_t *w_win, int32_t rows, int32_t cols,
                     int full, int8_t *y)
{
    int32_t acc[TFD_DW_CHUNK];
    const int32_t offset = full ? 0 : c->p->input_offset;
    for (int32_t c0 = 0; c0 < c->in_c; c0 += TFD_DW_CHUNK) {
        const int32_t n = tfd_min_i32(TFD_DW_CHUNK, c->in_c - c0);
        for (int32_t i = 0; i < n; ++i) {
            acc[i] = full ? c->p->acc_init[c0 + i] : (c->bias ? c->bias[c0 + i] : 0);
        }
        const int8_t *xr = x_win + c0;
        const int8_t *wr = w_win + c0;
        for (int32_t fy = 0; fy < rows; ++fy, xr += c->x_tap_h, wr += c->w_row) {
            const int8_t *xp = xr;
            const int8_t *wp = wr;
            for (int32_t fx = 0; fx < cols; ++fx, xp += c->x_tap_w, wp += c->out_c) {
                tap_accumulate(acc, wp, xp, n, offset);
            }
        }
        store(c, acc, c0, n, y);
    }
}

/* One output pixel, any depth multiplier: one output channel at a time. */
static void pixel_any(const dw_ctx_t *c, const int8_t *x_win, const int8_t *w_win, int32_t rows, int32_t cols,
                      int full, int8_t *y)
{
    const int32_t offset = full ? 0 : c->p->input_offset;
    int32_t oc = 0;
    for (int32_t ic = 0; ic < c->in_c; ++ic) {
        for (int32_t dm = 0; dm < c->depth_mult; ++dm, ++oc) {
            int32_t acc = full ? c->p->acc_init[oc] : (c->bias ? c->bias[oc] : 0);
            const int8_t *xr = x_win + ic;
            const int8_t *wr = w_win + oc;
            for (int32_t fy = 0; fy < rows; ++fy, xr += c->x_tap_h, wr += c->w_row) {
                const int8_t *xp = xr;
                const int8_t *wp = wr;
                for (int32_t fx = 0; fx < cols; ++fx, xp += c->x_tap_w, wp += c->out_c) {
                    acc += (int32_t)*wp * (*xp + offset);
                }
            }
            store(c, &acc, oc, 1, y);
        }
    }
}

tfd_status_t TFD_REFERENCE_KERNEL(depthwise_conv_2d)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
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
    const int32_t depth_mult = p->depth_multiplier;
    TFD_ENSURE(depth_mult >= 1, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(yt->dims[0] == batches && wt->dims[0] == 1 && wt->dims[3] == out_c &&
                   out_c == in_c * depth_mult,
               TFD_ERR_SHAPE);
    TFD_ENSURE(p->stride_h > 0 && p->stride_w > 0 && p->dilation_h > 0 && p->dilation_w > 0,
               TFD_ERR_BAD_MODEL);
    TFD_ENSURE(p->mult != NULL && p->shift != NULL && p->acc_init != NULL, TFD_ERR_BAD_MODEL);
    dw_ctx_t c;
    c.p = p;
    c.bias = NULL;
    if (l->inputs[2] >= 0) {
        const tfd_tensor_t *bt = TFD_IN_T(m, l, 2);
        TFD_ENSURE(bt->type == TFD_TYPE_INT32, TFD_ERR_UNSUPPORTED_TYPE);
        TFD_ENSURE(tfd_tensor_elems(bt) == out_c, TFD_ERR_SHAPE);
        c.bias = (const int32_t *)TFD_IN(m, l, arena, 2);
    }
    c.in_c = in_c;
    c.out_c = out_c;
    c.depth_mult = depth_mult;
    const int32_t x_row = in_w * in_c;
    c.x_tap_w = p->dilation_w * in_c;
    c.x_tap_h = p->dilation_h * x_row;
    c.w_row = k_w * out_c;

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *w = (const int8_t *)TFD_IN(m, l, arena, 1);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *xb = x + (size_t)b * (size_t)in_h * (size_t)x_row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, p->dilation_h, in_h, k_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < out_w; ++ox, y += out_c) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, p->dilation_w, in_w, k_w, &fx0, &fx1);
                const int full = fy1 - fy0 == k_h && fx1 - fx0 == k_w;
                const int8_t *x_win =
                    xb + (iy0 + fy0 * p->dilation_h) * x_row + (ix0 + fx0 * p->dilation_w) * in_c;
                const int8_t *w_win = w + fy0 * c.w_row + fx0 * out_c;
                if (depth_mult == 1) {
                    pixel_m1(&c, x_win, w_win, fy1 - fy0, fx1 - fx0, full, y);
                } else {
                    pixel_any(&c, x_win, w_win, fy1 - fy0, fx1 - fx0, full, y);
                }
            }
        }
    }
    return TFD_OK;
}
