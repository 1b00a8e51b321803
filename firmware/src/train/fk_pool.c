/* tinyfed training engine — float MAX_POOL_2D, AVERAGE_POOL_2D and MEAN,
 * forward and backward.  Windows are clipped to the input exactly as TFLite
 * does (padding never takes part: a max over valid taps, an average over the
 * number of valid taps).  Max-pool ties go to the first tap in row-major
 * window order (as TensorFlow's MaxPoolGrad). */
#include <string.h>

#include "train_internal.h"

static inline int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t imin(int32_t a, int32_t b) { return a < b ? a : b; }

/* Valid tap range of one output position along one axis. */
static inline void window(int32_t o, int32_t stride, int32_t pad, int32_t filter, int32_t size,
                          int32_t *origin, int32_t *start, int32_t *end)
{
    *origin = o * stride - pad;
    *start = imax(0, -*origin);
    *end = imin(filter, size - *origin);
}

/* The taps of output position (oy, ox) that fall inside the input: input row
 * y0 + fy for fy in [fy0, fy1), column x0 + fx for fx in [fx0, fx1). */
typedef struct {
    int32_t y0, fy0, fy1;
    int32_t x0, fx0, fx1;
} pool_window_t;

static inline pool_window_t pool_window(const tfd_geom_t *g, int32_t oy, int32_t ox)
{
    pool_window_t w;
    window(oy, g->sh, g->ph, g->kh, g->in.h, &w.y0, &w.fy0, &w.fy1);
    window(ox, g->sw, g->pw, g->kw, g->in.w, &w.x0, &w.fx0, &w.fx1);
    return w;
}

/* Number of valid taps (the divisor of an average). */
static inline float pool_window_count(const pool_window_t *w)
{
    return (float)((w->fy1 - w->fy0) * (w->fx1 - w->fx0));
}

/* Index into x (NHWC, shape in) of tap (fy, fx), channel c, of a window of batch bn. */
static inline size_t pool_tap_index(tfd_shape4_t in, const pool_window_t *w, int32_t bn, int32_t fy,
                                    int32_t fx, int32_t c)
{
    return ((size_t)(bn * in.h + w->y0 + fy) * in.w + (w->x0 + fx)) * in.c + c;
}

/* Index (into x) and tap of the maximum of window w, channel c. */
static size_t window_argmax(const float *x, const tfd_geom_t *g, const pool_window_t *w, int32_t bn, int32_t c,
                            int32_t *tap)
{
    size_t best_i = 0;
    int32_t best_tap = -1;
    float best = 0.0f;
    for (int32_t fy = w->fy0; fy < w->fy1; ++fy) {
        size_t i = pool_tap_index(g->in, w, bn, fy, w->fx0, c);
        for (int32_t fx = w->fx0; fx < w->fx1; ++fx, i += (size_t)g->in.c) {
            if (best_tap < 0 || x[i] > best) {
                best = x[i];
                best_i = i;
                best_tap = fy * g->kw + fx;
            }
        }
    }
    *tap = best_tap;
    return best_i;
}

void tfd_maxpool_forward(const float *x, const tfd_geom_t *g, float *y, void *argmax, int wide)
{
    const tfd_shape4_t out = g->out;
    size_t o = 0;
    for (int32_t bn = 0; bn < out.n; ++bn) {
        for (int32_t oy = 0; oy < out.h; ++oy) {
            for (int32_t ox = 0; ox < out.w; ++ox) {
                const pool_window_t w = pool_window(g, oy, ox); /* the same for every channel */
                for (int32_t c = 0; c < out.c; ++c, ++o) {
                    int32_t tap;
                    const size_t i = window_argmax(x, g, &w, bn, c, &tap);
                    y[o] = x[i];
                    if (argmax != NULL) {
                        if (wide) ((uint16_t *)argmax)[o] = (uint16_t)tap;
                        else ((uint8_t *)argmax)[o] = (uint8_t)tap;
                    }
                }
            }
        }
    }
}

void tfd_maxpool_backward(const float *dy, const tfd_geom_t *g, const void *argmax, int wide, float *dx)
{
    const tfd_shape4_t in = g->in, out = g->out;
    memset(dx, 0, (size_t)tfd_shape_elems(in) * sizeof(float));
    size_t o = 0;
    for (int32_t bn = 0; bn < out.n; ++bn) {
        for (int32_t oy = 0; oy < out.h; ++oy) {
            for (int32_t ox = 0; ox < out.w; ++ox) {
                for (int32_t c = 0; c < out.c; ++c, ++o) {
                    const int32_t tap = wide ? (int32_t)((const uint16_t *)argmax)[o]
                                             : (int32_t)((const uint8_t *)argmax)[o];
                    const int32_t iy = oy * g->sh - g->ph + tap / g->kw;
                    const int32_t ix = ox * g->sw - g->pw + tap % g->kw;
                    dx[((size_t)(bn * in.h + iy) * in.w + ix) * in.c + c] += dy[o];
                }
            }
        }
    }
}

void tfd_avgpool_forward(const float *x, const tfd_geom_t *g, float *y)
{
    const tfd_shape4_t out = g->out;
    size_t o = 0;
    for (int32_t bn = 0; bn < out.n; ++bn) {
        for (int32_t oy = 0; oy < out.h; ++oy) {
            for (int32_t ox = 0; ox < out.w; ++ox) {
                const pool_window_t w = pool_window(g, oy, ox);
                const float count = pool_window_count(&w);
                for (int32_t c = 0; c < out.c; ++c, ++o) {
                    float sum = 0.0f;
                    for (int32_t fy = w.fy0; fy < w.fy1; ++fy) {
                        for (int32_t fx = w.fx0; fx < w.fx1; ++fx) {
                            sum += x[pool_tap_index(g->in, &w, bn, fy, fx, c)];
                        }
                    }
                    y[o] = sum / count;
                }
            }
        }
    }
}

void tfd_avgpool_backward(const float *dy, const tfd_geom_t *g, float *dx)
{
    const tfd_shape4_t out = g->out;
    memset(dx, 0, (size_t)tfd_shape_elems(g->in) * sizeof(float));
    size_t o = 0;
    for (int32_t bn = 0; bn < out.n; ++bn) {
        for (int32_t oy = 0; oy < out.h; ++oy) {
            for (int32_t ox = 0; ox < out.w; ++ox) {
                const pool_window_t w = pool_window(g, oy, ox);
                const float count = pool_window_count(&w);
                for (int32_t c = 0; c < out.c; ++c, ++o) {
                    const float d = dy[o] / count;
                    for (int32_t fy = w.fy0; fy < w.fy1; ++fy) {
                        for (int32_t fx = w.fx0; fx < w.fx1; ++fx) {
                            dx[pool_tap_index(g->in, &w, bn, fy, fx, c)] += d;
                        }
                    }
                }
            }
        }
    }
}

/* ---- MEAN over the axes set in axis_mask (bit k = dim k of NHWC) ------------ */

/* Output index of input element (coordinates d[4]) with the reduced axes dropped. */
static size_t mean_out_index(const int32_t d[4], const int32_t dims[4], uint8_t axis_mask,
                             int32_t *count)
{
    size_t oi = 0;
    int32_t n = 1;
    for (int k = 0; k < 4; ++k) {
        if (axis_mask & (1u << k)) {
            n *= dims[k];
        } else {
            oi = oi * (size_t)dims[k] + (size_t)d[k];
        }
    }
    *count = n;
    return oi;
}

void tfd_mean_forward(const float *x, tfd_shape4_t in, uint8_t axis_mask, float *y)
{
    const int32_t dims[4] = {in.n, in.h, in.w, in.c};
    size_t out_elems = 1;
    for (int k = 0; k < 4; ++k) {
        if (!(axis_mask & (1u << k))) out_elems *= (size_t)dims[k];
    }
    memset(y, 0, out_elems * sizeof(float));
    int32_t d[4];
    int32_t count = 1;
    size_t i = 0;
    for (d[0] = 0; d[0] < dims[0]; ++d[0])
        for (d[1] = 0; d[1] < dims[1]; ++d[1])
            for (d[2] = 0; d[2] < dims[2]; ++d[2])
                for (d[3] = 0; d[3] < dims[3]; ++d[3], ++i) y[mean_out_index(d, dims, axis_mask, &count)] += x[i];
    const float n = (float)count;
    for (size_t o = 0; o < out_elems; ++o) y[o] /= n;
}

void tfd_mean_backward(const float *dy, tfd_shape4_t in, uint8_t axis_mask, float *dx)
{
    const int32_t dims[4] = {in.n, in.h, in.w, in.c};
    int32_t d[4];
    int32_t count = 1;
    size_t i = 0;
    for (d[0] = 0; d[0] < dims[0]; ++d[0])
        for (d[1] = 0; d[1] < dims[1]; ++d[1])
            for (d[2] = 0; d[2] < dims[2]; ++d[2])
                for (d[3] = 0; d[3] < dims[3]; ++d[3], ++i) {
                    const size_t oi = mean_out_index(d, dims, axis_mask, &count);
                    dx[i] = dy[oi] / (float)count;
                }
}
