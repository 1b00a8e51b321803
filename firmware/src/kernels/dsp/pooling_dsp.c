/* MAX_POOL_2D and AVERAGE_POOL_2D, optimized for cores with the DSP extension
 * (TFD_KERNELS_DSP).  Same results as the reference (firmware/src/kernels/
 * pooling.c), byte for byte, for any window, stride and padding: channels are
 * innermost, so four channels of a tap are one word and are pooled together.
 *   - max: SSUB8 + SEL, a bytewise signed max of 4 lanes in 2 instructions;
 *     the fused activation clamp the same way, only when it narrows int8;
 *   - average: SXTAB16 adds 4 lanes into two halfword pairs per tap (exact
 *     while the window has at most 256 taps: |sum| <= 128 * 256 fits int16;
 *     larger windows run the reference), then TFLM's rounding division
 *     (half away from zero) per channel. */
#include <stddef.h>

#include "../pool_geometry.h"
#include "../spatial.h"
#include "simd.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

#if TFD_KERNELS_DSP

/* One output pixel of a max pool: rows x cols taps from x (row stride x_row). */
TFD_NOINLINE static void max_pixel(const int8_t *x, int32_t rows, int32_t cols, int32_t x_row, int32_t depth,
                                   const tfd_pool_params_t *p, int8_t *y)
{
    const int clamp = p->act_min > -128 || p->act_max < 127;
    const uint32_t lo4 = 0x01010101u * (uint8_t)p->act_min, hi4 = 0x01010101u * (uint8_t)p->act_max;
    const int32_t col_step = depth, row_step = x_row - cols * depth;
    int32_t c = 0;
    for (; c + 4 <= depth; c += 4) {
        uint32_t v = 0x80808080u; /* the reference starts from -128 too */
        const int8_t *xp = x + c;
        for (int32_t r = 0; r < rows; ++r, xp += row_step) {
            for (int32_t k = 0; k < cols; ++k, xp += col_step) v = tfd_vmax_s8(v, tfd_load4(xp));
        }
        if (clamp) v = tfd_vmin_s8(tfd_vmax_s8(v, lo4), hi4);
        tfd_store4(y + c, v);
    }
    for (; c < depth; ++c) {
        int32_t best = -128;
        const int8_t *xp = x + c;
        for (int32_t r = 0; r < rows; ++r, xp += row_step) {
            for (int32_t k = 0; k < cols; ++k, xp += col_step) best = *xp > best ? *xp : best;
        }
        y[c] = (int8_t)tfd_clamp_i32(best, p->act_min, p->act_max);
    }
}

tfd_status_t tfd_eval_max_pool_2d(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    pool_geometry_t g;
    TFD_TRY(pool_setup(m, l, arena, &g));
    const tfd_pool_params_t *p = g.p;
    const int32_t depth = g.depth, x_row = g.in_w * depth;
    int8_t *y = g.y;
    for (int32_t b = 0; b < g.batches; ++b) {
        const int8_t *xb = g.x + (size_t)b * (size_t)g.in_h * (size_t)x_row;
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, 1, g.in_h, p->filter_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < g.out_w; ++ox, y += depth) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, 1, g.in_w, p->filter_w, &fx0, &fx1);
                const int32_t rows = fy1 - fy0, cols = fx1 - fx0;
                const int8_t *x_win = rows > 0 && cols > 0 ? xb + (iy0 + fy0) * x_row + (ix0 + fx0) * depth : xb;
                max_pixel(x_win, cols > 0 ? rows : 0, cols, x_row, depth, p, y);
            }
        }
    }
    return TFD_OK;
}

/* TFLM's rounding division of a window sum by its tap count (half away from zero), clamped. */
static int8_t average(int32_t sum, int32_t count, int32_t half, const tfd_pool_params_t *p)
{
    const int32_t v = (sum > 0 ? sum + half : sum - half) / count;
    return (int8_t)tfd_clamp_i32(v, p->act_min, p->act_max);
}

/* One output pixel of an average pool (count = rows * cols >= 1, <= 256). */
TFD_NOINLINE static void avg_pixel(const int8_t *x, int32_t rows, int32_t cols, int32_t x_row, int32_t depth,
                                   const tfd_pool_params_t *p, int8_t *y)
{
    const int32_t count = rows * cols, half = count / 2;
    const int32_t col_step = depth, row_step = x_row - cols * depth;
    int32_t c = 0;
    for (; c + 4 <= depth; c += 4) {
        uint32_t even = 0, odd = 0; /* channels c, c+2 and c+1, c+3 as halfword pairs */
        const int8_t *xp = x + c;
        for (int32_t r = 0; r < rows; ++r, xp += row_step) {
            for (int32_t k = 0; k < cols; ++k, xp += col_step) {
                const uint32_t v = tfd_load4(xp);
                even = tfd_sxtab16(even, v);
                odd = tfd_sxtab16_ror8(odd, v);
            }
        }
        y[c] = average((int16_t)(even & 0xFFFFu), count, half, p);
        y[c + 1] = average((int16_t)(odd & 0xFFFFu), count, half, p);
        y[c + 2] = average((int16_t)(even >> 16), count, half, p);
        y[c + 3] = average((int16_t)(odd >> 16), count, half, p);
    }
    for (; c < depth; ++c) {
        int32_t sum = 0;
        const int8_t *xp = x + c;
        for (int32_t r = 0; r < rows; ++r, xp += row_step) {
            for (int32_t k = 0; k < cols; ++k, xp += col_step) sum += *xp;
        }
        y[c] = average(sum, count, half, p);
    }
}

tfd_status_t tfd_eval_average_pool_2d(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    pool_geometry_t g;
    TFD_TRY(pool_setup(m, l, arena, &g));
    const tfd_pool_params_t *p = g.p;
    if ((int32_t)p->filter_h * (int32_t)p->filter_w > 256) return tfd_ref_eval_average_pool_2d(m, l, arena);
    const int32_t depth = g.depth, x_row = g.in_w * depth;
    int8_t *y = g.y;
    for (int32_t b = 0; b < g.batches; ++b) {
        const int8_t *xb = g.x + (size_t)b * (size_t)g.in_h * (size_t)x_row;
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, 1, g.in_h, p->filter_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < g.out_w; ++ox, y += depth) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, 1, g.in_w, p->filter_w, &fx0, &fx1);
                /* TFLM fails the op on an empty window; so do we. */
                TFD_ENSURE(fy1 > fy0 && fx1 > fx0, TFD_ERR_SHAPE);
                avg_pixel(xb + (iy0 + fy0) * x_row + (ix0 + fx0) * depth, fy1 - fy0, fx1 - fx0, x_row, depth, p, y);
            }
        }
    }
    return TFD_OK;
}

#endif /* TFD_KERNELS_DSP */
