/* MAX_POOL_2D and AVERAGE_POOL_2D, int8, input and output sharing one
 * quantization (the toolchain checks it, as TFLM's PoolingPrepare does);
 * TFLite Micro reference semantics (reference_integer_ops::MaxPool /
 * AveragePool): the window is clipped to the input, so padded positions are
 * never read; the average divides by the number of *valid* elements, rounding
 * half away from zero; then the fused activation clamp. */
#include <stddef.h>

#include "pool_geometry.h"
#include "spatial.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

tfd_status_t TFD_REFERENCE_KERNEL(max_pool_2d)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    pool_geometry_t g;
    TFD_TRY(pool_setup(m, l, arena, &g));
    const tfd_pool_params_t *p = g.p;
    const int32_t depth = g.depth;
    const int32_t x_row = g.in_w * depth;
    int8_t *y = g.y;
    for (int32_t b = 0; b < g.batches; ++b) {
        const int8_t *xb = g.x + (size_t)b * (size_t)g.in_h * (size_t)x_row;
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, 1, g.in_h, p->filter_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, 1, g.in_w, p->filter_w, &fx0, &fx1);
                const int8_t *x_win = xb + (iy0 + fy0) * x_row + (ix0 + fx0) * depth;
                for (int32_t c = 0; c < depth; ++c) {
                    int32_t best = -128;
                    const int8_t *xr = x_win + c;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *xp = xr;
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            if (*xp > best) best = *xp;
                            xp += depth;
                        }
                        xr += x_row;
                    }
                    y[c] = (int8_t)tfd_clamp_i32(best, p->act_min, p->act_max);
                }
                y += depth;
            }
        }
    }
    return TFD_OK;
}

tfd_status_t TFD_REFERENCE_KERNEL(average_pool_2d)(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    pool_geometry_t g;
    TFD_TRY(pool_setup(m, l, arena, &g));
    const tfd_pool_params_t *p = g.p;
    const int32_t depth = g.depth;
    const int32_t x_row = g.in_w * depth;
    int8_t *y = g.y;
    for (int32_t b = 0; b < g.batches; ++b) {
        const int8_t *xb = g.x + (size_t)b * (size_t)g.in_h * (size_t)x_row;
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tfd_tap_range(iy0, 1, g.in_h, p->filter_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tfd_tap_range(ix0, 1, g.in_w, p->filter_w, &fx0, &fx1);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                /* TFLM fails the op on an empty window; so do we. */
                TFD_ENSURE(count > 0, TFD_ERR_SHAPE);
                const int32_t half = count / 2;
                const int8_t *x_win = xb + (iy0 + fy0) * x_row + (ix0 + fx0) * depth;
                for (int32_t c = 0; c < depth; ++c) {
                    int32_t acc = 0;
                    const int8_t *xr = x_win + c;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *xp = xr;
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            acc += *xp;
                            xp += depth;
                        }
                        xr += x_row;
                    }
                    /* Round half away from zero; C division truncates toward zero. */
                    acc = acc > 0 ? (acc + half) / count : (acc - half) / count;
                    y[c] = (int8_t)tfd_clamp_i32(acc, p->act_min, p->act_max);
                }
                y += depth;
            }
        }
    }
    return TFD_OK;
}
