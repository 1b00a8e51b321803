/* DEPTHWISE_CONV_2D, optimized for cores with the DSP extension
 * (TFD_KERNELS_DSP).  Same results as the reference (firmware/src/kernels/
 * depthwise_conv_2d.c), byte for byte, for any filter size, stride,
 * dilation and padding with depth multiplier 1 (other multipliers run the
 * reference):
 *   - the filter is widened once per call into arena scratch (params
 *     scratch_offset / scratch_bytes, planned by the toolchain) as int16
 *     pairs, four channels per two words, channel group-major, so a tap's
 *     weights for 4 channels are one LDRD;
 *   - per output pixel and 4 channels (tfd_dsp_dw4, mac.c): each valid tap is
 *     one input word, SXTAB16 adds the input offset while widening
 *     (x + input_offset fits a halfword), SMLABB/SMLATT accumulate the 4
 *     channels: TFLM's bias + sum over the valid taps of w * (x + input_offset),
 *     the same int32, 11 instructions per tap and 4 channels;
 *   - channels past the last multiple of 4 are done one by one. */
#include <stddef.h>

#include "../spatial.h"
#include "mac.h"
#include "requant.h"
#include "simd.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

#if TFD_KERNELS_DSP

typedef struct {
    const tfd_conv_params_t *p;
    const int8_t *x;       /* this batch's input */
    const int8_t *w;       /* the filter, [1][KH][KW][C] */
    const int32_t *bias;   /* or NULL */
    const uint32_t *w16;   /* widened filter: [C / 4][KH * KW][2] words */
    int32_t in_h, in_w, c, x_row, k_h, k_w, taps;
    uint32_t offset2;      /* input_offset in both halfwords */
    int32_t groups;        /* channel groups of 4 */
    int fast;              /* every shift < 0: tfd_dsp_dw4 requantizes */
} dw_t;

/* Widen the filter's first groups * 4 channels into w16 (group-major). */
static void widen_filter(const int8_t *w, int32_t taps, int32_t c, int32_t groups, uint32_t *w16)
{
    for (int32_t g = 0; g < groups; ++g) {
        const int8_t *src = w + 4 * g;
        for (int32_t t = 0; t < taps; ++t, src += c, w16 += 2) {
            const uint32_t v = tfd_load4(src);
            w16[0] = tfd_sxtb16(v);
            w16[1] = tfd_sxtb16_ror8(v);
        }
    }
}

/* A group of 4 channels when some channel's shift is >= 0 (tfd_dsp_dw4 takes
 * negative shifts only): the accumulators in C, the general requantization. */
static void slow_group(const dw_t *d, const tfd_dsp_dw_job_t *job)
{
    const tfd_conv_params_t *p = d->p;
    for (int32_t k = 0; k < 4; ++k) {
        int32_t acc = job->bias ? job->bias[k] : 0;
        const int8_t *xr = job->x + k;
        const uint32_t *wr = job->w;
        for (int32_t r = 0; r < job->rows; ++r, xr += job->x_row, wr += job->w_row) {
            const int8_t *xp = xr;
            const uint32_t *wp = wr;
            for (int32_t c = 0; c < job->cols; ++c, xp += job->x_col, wp += 2) {
                const uint32_t pair = wp[k & 1];
                const int32_t wv = (int16_t)(uint16_t)(k & 2 ? pair >> 16 : pair & 0xFFFFu);
                acc += wv * (*xp + p->input_offset);
            }
        }
        job->y[k] = tfd_dsp_out8(acc, job->mult[k], job->shift[k], p->output_offset, p->act_min, p->act_max);
    }
}

/* All channels of one output pixel; x points at tap (fy0, fx0) of channel 0;
 * taps [fy0, fy1) x [fx0, fx1), at least one. */
TFD_NOINLINE static void pixel(const dw_t *d, const int8_t *x, int32_t fy0, int32_t fy1, int32_t fx0, int32_t fx1,
                               int8_t *y)
{
    const tfd_conv_params_t *p = d->p;
    tfd_dsp_dw_job_t job;
    job.rows = fy1 - fy0;
    job.cols = fx1 - fx0;
    job.x_col = p->dilation_w * d->c;
    job.x_row = p->dilation_h * d->x_row;
    job.w_row = 2 * d->k_w;
    job.off2 = d->offset2;
    job.out_offset = p->output_offset;
    job.act_min = p->act_min;
    job.act_max = p->act_max;
    job.clamp = p->act_min > -128 || p->act_max < 127;
    const uint32_t *w16 = d->w16 + 2 * (fy0 * d->k_w + fx0);
    const int32_t groups4 = d->groups * 4, taps2 = 2 * d->taps;
    int32_t ch = 0;
    for (; ch < groups4; ch += 4, w16 += taps2) {
        job.x = x + ch;
        job.w = w16;
        job.bias = d->bias ? d->bias + ch : NULL;
        job.mult = p->mult + ch;
        job.shift = p->shift + ch;
        job.y = y + ch;
        if (d->fast) {
            tfd_dsp_dw4(&job);
        } else {
            slow_group(d, &job);
        }
    }
    for (; ch < d->c; ++ch) {
        int32_t acc = d->bias ? d->bias[ch] : 0;
        const int8_t *xr = x + ch;
        for (int32_t ky = fy0; ky < fy1; ++ky, xr += job.x_row) {
            const int8_t *xp = xr;
            const int8_t *wp = d->w + (ky * d->k_w + fx0) * d->c + ch;
            for (int32_t kx = fx0; kx < fx1; ++kx, xp += job.x_col, wp += d->c) acc += *wp * (*xp + p->input_offset);
        }
        y[ch] = tfd_dsp_out8(acc, p->mult[ch], p->shift[ch], p->output_offset, p->act_min, p->act_max);
    }
}

/* An output pixel whose window has no tap inside the input: bias only. */
static void empty_pixel(const dw_t *d, int8_t *y)
{
    const tfd_conv_params_t *p = d->p;
    for (int32_t ch = 0; ch < d->c; ++ch) {
        y[ch] = tfd_dsp_out8(d->bias ? d->bias[ch] : 0, p->mult[ch], p->shift[ch], p->output_offset, p->act_min,
                             p->act_max);
    }
}

tfd_status_t tfd_eval_depthwise_conv_2d(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 3 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_conv_params_t *p = (const tfd_conv_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *wt = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    const int32_t taps = wt->dims[1] * wt->dims[2];
    const int32_t groups = xt->dims[3] / 4;
    if (p->depth_multiplier != 1 || p->scratch_bytes < TFD_DW_DSP_SCRATCH_BYTES(taps, xt->dims[3])) {
        return tfd_ref_eval_depthwise_conv_2d(m, l, arena);
    }
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && wt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t batches = xt->dims[0];
    const int32_t out_h = yt->dims[1], out_w = yt->dims[2], out_c = yt->dims[3];
    TFD_ENSURE(yt->dims[0] == batches && wt->dims[0] == 1 && wt->dims[3] == out_c && out_c == xt->dims[3],
               TFD_ERR_SHAPE);
    TFD_ENSURE(p->stride_h > 0 && p->stride_w > 0 && p->dilation_h > 0 && p->dilation_w > 0,
               TFD_ERR_BAD_MODEL);
    TFD_ENSURE(p->mult != NULL && p->shift != NULL, TFD_ERR_BAD_MODEL);
    TFD_ENSURE((uint64_t)p->scratch_offset + p->scratch_bytes <= m->arena_bytes && (p->scratch_offset & 3u) == 0,
               TFD_ERR_BAD_MODEL);
    dw_t d;
    d.p = p;
    d.bias = NULL;
    if (l->inputs[2] >= 0) {
        const tfd_tensor_t *bt = TFD_IN_T(m, l, 2);
        TFD_ENSURE(bt->type == TFD_TYPE_INT32, TFD_ERR_UNSUPPORTED_TYPE);
        TFD_ENSURE(tfd_tensor_elems(bt) == out_c, TFD_ERR_SHAPE);
        d.bias = (const int32_t *)TFD_IN(m, l, arena, 2);
    }
    d.in_h = xt->dims[1];
    d.in_w = xt->dims[2];
    d.c = out_c;
    d.x_row = d.in_w * d.c;
    d.k_h = wt->dims[1];
    d.k_w = wt->dims[2];
    d.taps = taps;
    d.offset2 = (uint32_t)(uint16_t)(int16_t)p->input_offset * 0x00010001u;
    d.w = (const int8_t *)TFD_IN(m, l, arena, 1);
    uint32_t *w16 = (uint32_t *)(void *)(arena + p->scratch_offset);
    widen_filter(d.w, taps, d.c, groups, w16);
    d.w16 = w16;
    d.groups = groups;
    d.fast = 1;
    for (int32_t ch = 0; ch < 4 * groups; ++ch) d.fast &= p->shift[ch] < 0;

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    for (int32_t b = 0; b < batches; ++b) {
        d.x = x + (size_t)b * (size_t)d.in_h * (size_t)d.x_row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, p->dilation_h, d.in_h, d.k_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < out_w; ++ox, y += out_c) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, p->dilation_w, d.in_w, d.k_w, &fx0, &fx1);
                if (fy0 >= fy1 || fx0 >= fx1) {
                    empty_pixel(&d, y);
                    continue;
                }
                pixel(&d, d.x + (iy0 + fy0 * p->dilation_h) * d.x_row + (ix0 + fx0 * p->dilation_w) * d.c, fy0,
                      fy1, fx0, fx1, y);
            }
        }
    }
    return TFD_OK;
}

#endif /* TFD_KERNELS_DSP */
