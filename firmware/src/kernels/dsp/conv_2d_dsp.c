/* CONV_2D, optimized for cores with the DSP extension (TFD_KERNELS_DSP).
 * Same results as the reference (firmware/src/kernels/conv_2d.c), byte for
 * byte, for any shape, stride, dilation and padding:
 *
 *   - im2col: TFD_CONV_DSP_COLUMNS (4) output pixels at a time, each window
 *     as one column in the filter's (ky, kx, ic) order, with the input zero
 *     point where the window leaves the input and 0 past the last tap (round
 *     up to 4), widened to int16 pairs interleaved for the micro-kernel; the
 *     columns live in arena scratch planned by the toolchain (params
 *     scratch_offset / scratch_bytes).  A window inside the input whose filter
 *     rows are whole words (KW * IC % 4 == 0, no dilation in width) is widened
 *     straight from the input; others are gathered as int8 first;
 *   - the accumulator starts from acc_init = bias + input_offset * sum(filter)
 *     for every window: a padded tap holds the zero point, so it adds
 *     -input_offset * w and cancels its share of acc_init exactly as TFLM's
 *     skipped tap would (same int32);
 *   - tfd_dsp_conv_rows (mac.c): every filter row against the 4 columns, 15
 *     instructions per 16 MACs on the core, then the 4 outputs requantized in
 *     registers (the multiplier and shift loaded once per output channel);
 *     the last, partial group of pixels goes through tfd_dsp_mm_1x4 + C.
 * Without the planned scratch (tables of an older toolchain) it runs the
 * reference kernel. */
#include <stddef.h>
#include <string.h>

#include "../spatial.h"
#include "mac.h"
#include "requant.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

#if TFD_KERNELS_DSP

#define COLS TFD_CONV_DSP_COLUMNS

typedef struct {
    const tfd_conv_params_t *p;
    const int8_t *x; /* this batch's input */
    const int8_t *w;
    int32_t in_h, in_w, in_c, x_row; /* x_row: bytes per input row */
    int32_t k_h, k_w, run;           /* run: bytes of one filter row (KW * IC) */
    int32_t taps, blocks;            /* KH * KW * IC, round4(taps) / 4 */
    int32_t out_w, out_c;
    uint32_t fill;     /* the input zero point in all 4 bytes */
    int direct;        /* filter rows are whole words and contiguous in the input */
    int runs;          /* no dilation in width: a window inside the input is k_h runs */
    int32_t iy_max, ix_max; /* a window at (iy0, ix0) >= 0 is inside the input iff iy0 <= iy_max, ix0 <= ix_max */
    uint32_t *cols;    /* COLS interleaved int16 columns */
    int8_t *col8;      /* one int8 column, 4 * blocks bytes */
} conv_t;

/* n bytes of v (n >= 0). */
static void fill8(int8_t *d, uint32_t v, int32_t n)
{
    for (; n >= 4; n -= 4, d += 4) tfd_store4(d, v);
    if (n & 2) {
        const uint16_t h = (uint16_t)v;
        memcpy(d, &h, 2);
        d += 2;
    }
    if (n & 1) *d = (int8_t)v;
}

/* n bytes from s (the last n % 4 as a halfword and a byte: filter rows of one
 * or three channels are 1-3 bytes long). */
TFD_ALWAYS_INLINE void copy8(int8_t *d, const int8_t *s, int32_t n)
{
    for (; n >= 4; n -= 4, d += 4, s += 4) tfd_store4(d, tfd_load4(s));
    if (n & 2) {
        memcpy(d, s, 2);
        d += 2;
        s += 2;
    }
    if (n & 1) *d = *s;
}

/* Widen `blocks` x 4 int8 values into one column slot: per block 2 words,
 * then skip the other slots' 2 * (COLS - 1) words. */
static uint32_t *widen(const int8_t *src, int32_t blocks, uint32_t *d)
{
    for (; blocks > 0; --blocks, src += 4, d += 2 * COLS) {
        const uint32_t v = tfd_load4(src);
        d[0] = tfd_sxtb16(v);
        d[1] = tfd_sxtb16_ror8(v);
    }
    return d;
}

/* A window inside the input, its tap (0, 0) at input byte `base`, into column
 * slot `d`: each filter row is one run of the input (c->runs). */
TFD_NOINLINE static void column_inside(const conv_t *c, int32_t base, uint32_t *d)
{
    const int32_t run = c->run, step = c->p->dilation_h * c->x_row;
    const int8_t *src = c->x + base;
    if (c->direct) {
        for (int32_t ky = 0; ky < c->k_h; ++ky, src += step) d = widen(src, run >> 2, d);
        return;
    }
    int8_t *col = c->col8;
    for (int32_t ky = 0; ky < c->k_h; ++ky, src += step, col += run) copy8(col, src, run);
    widen(c->col8, c->blocks, d);
}

/* The window of output pixel (oy, ox) into column slot `d` (cols + 2 * slot). */
TFD_NOINLINE static void column(const conv_t *c, int32_t oy, int32_t ox, uint32_t *d)
{
    const tfd_conv_params_t *p = c->p;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t run = c->run, step = p->dilation_h * c->x_row;
    int32_t fy0, fy1, fx0, fx1;
    tfd_tap_range(iy0, p->dilation_h, c->in_h, c->k_h, &fy0, &fy1);
    tfd_tap_range(ix0, p->dilation_w, c->in_w, c->k_w, &fx0, &fx1);
    const int32_t base = iy0 * c->x_row + ix0 * c->in_c; /* of tap (0, 0), inside or not */
    if (fy1 - fy0 == c->k_h && fx1 - fx0 == c->k_w && c->runs) {
        column_inside(c, base, d);
        return;
    }
    /* the zero point everywhere, then the taps inside the input over it */
    const int32_t ic = c->in_c;
    fill8(c->col8, c->fill, c->taps);
    if (fx0 < fx1) {
        int8_t *col = c->col8 + fy0 * run + fx0 * ic;
        const int8_t *s = c->x + (base + fy0 * step + fx0 * p->dilation_w * ic);
        for (int32_t ky = fy0; ky < fy1; ++ky, col += run, s += step) {
            if (p->dilation_w == 1) {
                copy8(col, s, (fx1 - fx0) * ic);
            } else {
                const int8_t *sk = s;
                for (int32_t kx = fx0; kx < fx1; ++kx, sk += p->dilation_w * ic) copy8(col + (kx - fx0) * ic, sk, ic);
            }
        }
    }
    widen(c->col8, c->blocks, d);
}

/* Requantize one output channel's 4 accumulators into y, y + stride, ...:
 * the 7-instruction path when shift < 0 (clamping only if the activation
 * range is narrower than int8), else the general one. */
static void store4(const int32_t acc[COLS], int32_t mult, int32_t shift, const tfd_conv_params_t *p, int8_t *y,
                   int32_t stride, int32_t n)
{
    const int32_t off = p->output_offset;
    if (shift < 0 && n == COLS) {
        const int32_t right = -shift;
        int32_t v0 = tfd_dsp_requant_s8(acc[0], mult, right, off);
        int32_t v1 = tfd_dsp_requant_s8(acc[1], mult, right, off);
        int32_t v2 = tfd_dsp_requant_s8(acc[2], mult, right, off);
        int32_t v3 = tfd_dsp_requant_s8(acc[3], mult, right, off);
        if (p->act_min > -128 || p->act_max < 127) {
            v0 = tfd_dsp_clamp(v0, p->act_min, p->act_max);
            v1 = tfd_dsp_clamp(v1, p->act_min, p->act_max);
            v2 = tfd_dsp_clamp(v2, p->act_min, p->act_max);
            v3 = tfd_dsp_clamp(v3, p->act_min, p->act_max);
        }
        y[0] = (int8_t)v0;
        y[stride] = (int8_t)v1;
        y[2 * stride] = (int8_t)v2;
        y[3 * stride] = (int8_t)v3;
        return;
    }
    for (int32_t s = 0; s < n; ++s) y[s * stride] = tfd_dsp_out8(acc[s], mult, shift, off, p->act_min, p->act_max);
}

/* Every output channel of the pixels in the columns: n (<= COLS) of them,
 * the first one's outputs at y (channel-innermost, out_c apart). */
TFD_NOINLINE static void channels(const conv_t *c, int8_t *y, int32_t n)
{
    const tfd_conv_params_t *p = c->p;
    const int8_t *w = c->w;
    const int32_t out_c = c->out_c, taps = c->taps, blocks = c->blocks;
    const uint32_t *cols = c->cols;
    for (int32_t oc = 0; oc < out_c; ++oc, w += taps, ++y) {
        const int32_t a0 = p->acc_init[oc];
        int32_t acc[COLS] = {a0, a0, a0, a0};
        tfd_dsp_mm_1x4(cols, w, blocks, acc);
        store4(acc, p->mult[oc], p->shift[oc], p, y, out_c, n);
    }
}

tfd_status_t tfd_eval_conv_2d(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 3 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_conv_params_t *p = (const tfd_conv_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *wt = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    conv_t c;
    c.taps = wt->dims[1] * wt->dims[2] * wt->dims[3];
    c.blocks = (c.taps + 3) >> 2;
    if (p->scratch_bytes < TFD_CONV_DSP_SCRATCH_BYTES(c.taps) || p->acc_init == NULL) {
        return tfd_ref_eval_conv_2d(m, l, arena);
    }
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && wt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t batches = xt->dims[0];
    const int32_t out_h = yt->dims[1];
    c.out_w = yt->dims[2];
    c.out_c = yt->dims[3];
    TFD_ENSURE(yt->dims[0] == batches && wt->dims[0] == c.out_c && wt->dims[3] == xt->dims[3], TFD_ERR_SHAPE);
    TFD_ENSURE(p->stride_h > 0 && p->stride_w > 0 && p->dilation_h > 0 && p->dilation_w > 0,
               TFD_ERR_BAD_MODEL);
    TFD_ENSURE(p->mult != NULL && p->shift != NULL, TFD_ERR_BAD_MODEL);
    TFD_ENSURE((uint64_t)p->scratch_offset + p->scratch_bytes <= m->arena_bytes && (p->scratch_offset & 3u) == 0,
               TFD_ERR_BAD_MODEL);
    if (l->inputs[2] >= 0) {
        const tfd_tensor_t *bt = TFD_IN_T(m, l, 2);
        TFD_ENSURE(bt->type == TFD_TYPE_INT32, TFD_ERR_UNSUPPORTED_TYPE);
        TFD_ENSURE(tfd_tensor_elems(bt) == c.out_c, TFD_ERR_SHAPE);
    }
    c.p = p;
    c.in_h = xt->dims[1];
    c.in_w = xt->dims[2];
    c.in_c = xt->dims[3];
    c.x_row = c.in_w * c.in_c;
    c.k_h = wt->dims[1];
    c.k_w = wt->dims[2];
    c.run = c.k_w * c.in_c;
    c.fill = 0x01010101u * (uint8_t)(-p->input_offset);
    c.runs = p->dilation_w == 1;
    c.direct = (c.run & 3) == 0 && c.runs;
    c.iy_max = c.in_h - 1 - (c.k_h - 1) * p->dilation_h;
    c.ix_max = c.in_w - 1 - (c.k_w - 1) * p->dilation_w;
    c.cols = (uint32_t *)(void *)(arena + p->scratch_offset);
    c.col8 = (int8_t *)(c.cols + 2 * COLS * c.blocks);
    c.w = (const int8_t *)TFD_IN(m, l, arena, 1);
    fill8(c.col8 + c.taps, 0, 4 * c.blocks - c.taps); /* past the last tap: 0 times any weight */
    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int32_t pixels = out_h * c.out_w;

    for (int32_t b = 0; b < batches; ++b) {
        c.x = x + (size_t)b * (size_t)c.in_h * (size_t)c.x_row;
        int32_t oy = 0, ox = 0;
        for (int32_t p0 = 0; p0 < pixels; p0 += COLS) {
            const int32_t n = tfd_min_i32(COLS, pixels - p0);
            for (int32_t s = 0; s < n; ++s) {
                const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
                if (c.runs && iy0 >= 0 && ix0 >= 0 && iy0 <= c.iy_max && ix0 <= c.ix_max) {
                    column_inside(&c, iy0 * c.x_row + ix0 * c.in_c, c.cols + 2 * s);
                } else {
                    column(&c, oy, ox, c.cols + 2 * s);
                }
                if (++ox == c.out_w) {
                    ox = 0;
                    ++oy;
                }
            }
            if (n == COLS) {
                tfd_dsp_conv_job_t job = {c.cols, c.w, c.blocks, c.out_c, c.taps - 4 * c.blocks, p->acc_init,
                                          p->mult, p->shift, y, c.out_c, p->output_offset, p->act_min,
                                          p->act_max, p->act_min > -128 || p->act_max < 127};
                tfd_dsp_conv_rows(&job);
            } else {
                /* the unused slots: zeros, computed and never stored */
                fill8(c.col8, 0, c.taps);
                for (int32_t s = n; s < COLS; ++s) widen(c.col8, c.blocks, c.cols + 2 * s);
                channels(&c, y, n);
            }
            y += n * c.out_c;
        }
    }
    return TFD_OK;
}

#endif /* TFD_KERNELS_DSP */
