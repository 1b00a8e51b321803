/* tinyfed training engine — float FULLY_CONNECTED, CONV_2D and
 * DEPTHWISE_CONV_2D, forward and backward.
 *
 * Filters are read one output channel ("row") at a time through a tfd_wsrc_t:
 * a trained row from the parameter vector, or a frozen int8 row dequantized
 * into the row scratch.  So a layer may mix trained and frozen channels
 * (sparse update) and the frozen part stays int8 in flash.  Geometry follows
 * TFLite: NHWC, top/left padding ph/pw, windows clipped to the input. */
#include <string.h>

#include "train_internal.h"

/* The tap loops below run over a few taps per call (3 for a 3x3 filter row of
 * one channel), so they are inlined into their callers (-Os would call them). */
#define FK_INLINE static inline __attribute__((always_inline))

void tfd_wsrc_load(const tfd_wsrc_t *w, uint32_t ch, float *row)
{
    const int32_t r = tfd_wsrc_row(w, ch);
    const float s = w->scale[ch];
    const uint32_t n = w->row_len;
    if (r >= 0) {
        const float *p = w->p + (size_t)r * n;
        if (w->quantized) {
            for (uint32_t k = 0; k < n; ++k) row[k] = p[k] * s;
        } else {
            memcpy(row, p, (size_t)n * sizeof(float));
        }
        return;
    }
    /* a frozen int8 row, dequantized (locals: the float stores could alias *w) */
    const int8_t *q = w->q + (size_t)ch * w->q_ch_stride;
    const size_t step = w->q_el_stride;
    uint32_t k = 0;
    size_t i = 0;
    for (; k + 4 <= n; k += 4, i += 4 * step) {
        row[k] = (float)q[i] * s;
        row[k + 1] = (float)q[i + step] * s;
        row[k + 2] = (float)q[i + 2 * step] * s;
        row[k + 3] = (float)q[i + 3 * step] * s;
    }
    for (; k < n; ++k, i += step) row[k] = (float)q[i] * s;
}

float tfd_bsrc_get(const tfd_bsrc_t *b, uint32_t ch)
{
    if (b->p != NULL) return b->quantized ? b->p[ch] * b->scale[ch] : b->p[ch];
    if (b->q != NULL) return (float)b->q[ch] * b->scale[ch];
    return 0.0f;
}

/* ---- FULLY_CONNECTED ------------------------------------------------------ */

void tfd_fc_forward(const float *x, uint32_t rows, uint32_t depth, uint32_t units,
                    const tfd_wsrc_t *w, const tfd_bsrc_t *b, float *row, float *y)
{
    for (uint32_t o = 0; o < units; ++o) {
        tfd_wsrc_load(w, o, row);
        const float bias = tfd_bsrc_get(b, o);
        for (uint32_t r = 0; r < rows; ++r) {
            const float *xr = x + (size_t)r * depth;
            float acc = 0.0f;
            for (uint32_t k = 0; k < depth; ++k) acc += xr[k] * row[k];
            y[(size_t)r * units + o] = acc + bias;
        }
    }
}

void tfd_fc_backward(const float *x, const float *dz, uint32_t rows, uint32_t depth,
                     uint32_t units, const tfd_wsrc_t *w, float *gw, float *gb, float *dx,
                     float *row)
{
    if (dx != NULL) memset(dx, 0, (size_t)rows * depth * sizeof(float));
    for (uint32_t o = 0; o < units; ++o) {
        const int32_t r = gw != NULL ? tfd_wsrc_row(w, o) : -1;
        float *g = r >= 0 ? gw + (size_t)r * depth : NULL;
        if (dx != NULL) tfd_wsrc_load(w, o, row);
        float bsum = 0.0f;
        for (uint32_t rr = 0; rr < rows; ++rr) {
            const float d = dz[(size_t)rr * units + o];
            if (d == 0.0f) continue;
            bsum += d;
            if (g != NULL) {
                const float *xr = x + (size_t)rr * depth;
                for (uint32_t k = 0; k < depth; ++k) g[k] += d * xr[k];
            }
            if (dx != NULL) {
                float *dxr = dx + (size_t)rr * depth;
                for (uint32_t k = 0; k < depth; ++k) dxr[k] += d * row[k];
            }
        }
        if (gb != NULL) gb[o] += bsum;
    }
}

/* ---- CONV_2D and DEPTHWISE_CONV_2D ----------------------------------------
 *
 * One loop serves both (depthwise = 0 / 1): for each output channel o, every
 * output position sums the clipped window of filter taps.  They differ only in
 * what a tap reads:
 *   CONV_2D (filter OHWI): a row is [kh][kw][in_c]; a tap reads all in_c
 *     channels of its input pixel;
 *   DEPTHWISE_CONV_2D: a row is [kh][kw]; a tap reads input channel
 *     o / depth_mult only.
 * tap_c is the number of channels a tap reads (in_c or 1), xc the first. */

static int32_t tap_channels(const tfd_geom_t *g, int depthwise)
{
    return depthwise ? 1 : g->in.c;
}

static int32_t first_input_channel(const tfd_geom_t *g, int depthwise, int32_t o)
{
    return depthwise ? o / g->depth_mult : 0;
}

/* Taps k in [*lo, *hi) with 0 <= origin + k * dilation < size (the window
 * clipped to the input, as TFLite's kernels skip the padded taps). */
static void tap_range(int32_t origin, int32_t dilation, int32_t size, int32_t taps, int32_t *lo, int32_t *hi)
{
    int32_t a = origin >= 0 ? 0 : (dilation - 1 - origin) / dilation;
    const int32_t room = size - origin;
    int32_t b = room <= 0 ? 0 : (room + dilation - 1) / dilation;
    if (b > taps) b = taps;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* sum over k < n of x[k * xs] * w[k], added to acc in order (the sums keep the
 * order of the loops they replace, so results do not change by a bit). */
FK_INLINE float dot_strided(float acc, const float *x, int32_t xs, const float *w, int32_t n)
{
    int32_t k = 0;
    size_t i = 0;
    const size_t s = (size_t)xs;
    for (; k + 4 <= n; k += 4, i += 4 * s) {
        acc += x[i] * w[k];
        acc += x[i + s] * w[k + 1];
        acc += x[i + 2 * s] * w[k + 2];
        acc += x[i + 3 * s] * w[k + 3];
    }
    for (; k < n; ++k, i += s) acc += x[i] * w[k];
    return acc;
}

/* y[k * ys] += d * v[k], k < n. */
FK_INLINE void axpy_strided(float *y, int32_t ys, float d, const float *v, int32_t n)
{
    int32_t k = 0;
    size_t i = 0;
    const size_t s = (size_t)ys;
    for (; k + 4 <= n; k += 4, i += 4 * s) {
        y[i] += d * v[k];
        y[i + s] += d * v[k + 1];
        y[i + 2 * s] += d * v[k + 2];
        y[i + 3 * s] += d * v[k + 3];
    }
    for (; k < n; ++k, i += s) y[i] += d * v[k];
}

/* w[k] += d * x[k * xs], k < n. */
FK_INLINE void axpy_gather(float *w, float d, const float *x, int32_t xs, int32_t n)
{
    int32_t k = 0;
    size_t i = 0;
    const size_t s = (size_t)xs;
    for (; k + 4 <= n; k += 4, i += 4 * s) {
        w[k] += d * x[i];
        w[k + 1] += d * x[i + s];
        w[k + 2] += d * x[i + 2 * s];
        w[k + 3] += d * x[i + 3 * s];
    }
    for (; k < n; ++k, i += s) w[k] += d * x[i];
}

/* The window of an output position clipped to the input: valid taps
 * [fy0, fy1) x [fx0, fx1) and the input index of tap (fy0, fx0), channel xc.
 * The rows are computed once per output row (window_rows), the columns per
 * output position (window_cols). */
typedef struct {
    int32_t fy0, fy1, fx0, fx1;
    size_t x0;
} window_t;

/* Rows of output row oy; *row0 = input index of the first valid row's column 0, channel xc. */
static void window_rows(const tfd_geom_t *g, int32_t bn, int32_t oy, int32_t xc, window_t *win, size_t *row0)
{
    const int32_t iy0 = oy * g->sh - g->ph;
    tap_range(iy0, g->dh, g->in.h, g->kh, &win->fy0, &win->fy1);
    *row0 = (size_t)(bn * g->in.h + iy0 + win->fy0 * g->dh) * (size_t)g->in.w * (size_t)g->in.c + (size_t)xc;
}

static void window_cols(const tfd_geom_t *g, int32_t ox, size_t row0, window_t *win)
{
    const int32_t ix0 = ox * g->sw - g->pw;
    tap_range(ix0, g->dw, g->in.w, g->kw, &win->fx0, &win->fx1);
    win->x0 = row0 + (size_t)(ix0 + win->fx0 * g->dw) * (size_t)g->in.c;
}

/* Output columns [*a, *b) whose whole filter row lies inside the input
 * (no clipping: the interior of an output row). */
static void interior_cols(const tfd_geom_t *g, int32_t *a, int32_t *b)
{
    const int32_t lo = (g->pw + g->sw - 1) / g->sw;                /* ox * sw - pw >= 0 */
    const int32_t top = g->in.w - 1 - (g->kw - 1) * g->dw + g->pw; /* ox * sw <= top */
    int32_t hi = top < 0 ? 0 : top / g->sw + 1;
    if (hi > g->out.w) hi = g->out.w;
    *a = lo < hi ? lo : hi;
    *b = hi;
}

/* Four unclipped output positions of one output channel, input positions
 * `step` floats apart: acc[j] += the window's taps (rows fy0..fy1-1, every
 * column) in the reference order (row, column, channel), each accumulator on
 * its own, so every sum is the one the single-position loop makes. */
static void conv_forward4(const float *x, size_t xi, size_t step, const tfd_geom_t *g, int32_t tap_c,
                          const float *row, int32_t fy0, int32_t fy1, float acc[4])
{
    const size_t x_row = (size_t)g->dh * (size_t)g->in.w * (size_t)g->in.c, x_tap = (size_t)g->dw * (size_t)g->in.c;
    const int32_t kw = g->kw;
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t ky = fy0; ky < fy1; ++ky, xi += x_row) {
        const float *wr = row + (size_t)ky * (size_t)kw * (size_t)tap_c;
        const float *xr = x + xi;
        if (tap_c == 1) { /* depthwise, or one input channel */
            for (int32_t kx = 0; kx < kw; ++kx) {
                const float wv = wr[kx];
                const float *xp = xr + (size_t)kx * x_tap;
                a0 += xp[0] * wv;
                a1 += xp[step] * wv;
                a2 += xp[2 * step] * wv;
                a3 += xp[3 * step] * wv;
            }
        } else if (x_tap == (size_t)tap_c) { /* a filter row's taps are one run */
            const int32_t n = kw * tap_c;
            for (int32_t k = 0; k < n; ++k) {
                const float wv = wr[k];
                a0 += xr[k] * wv;
                a1 += xr[step + (size_t)k] * wv;
                a2 += xr[2 * step + (size_t)k] * wv;
                a3 += xr[3 * step + (size_t)k] * wv;
            }
        } else {
            for (int32_t kx = 0; kx < kw; ++kx, wr += tap_c) {
                const float *xp = xr + (size_t)kx * x_tap;
                for (int32_t c = 0; c < tap_c; ++c) {
                    const float wv = wr[c];
                    a0 += xp[c] * wv;
                    a1 += xp[step + (size_t)c] * wv;
                    a2 += xp[2 * step + (size_t)c] * wv;
                    a3 += xp[3 * step + (size_t)c] * wv;
                }
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* conv_forward4 for two positions (the interior positions left after the
 * blocks of four). */
static void conv_forward2(const float *x, size_t xi, size_t step, const tfd_geom_t *g, int32_t tap_c,
                          const float *row, int32_t fy0, int32_t fy1, float acc[2])
{
    const size_t x_row = (size_t)g->dh * (size_t)g->in.w * (size_t)g->in.c, x_tap = (size_t)g->dw * (size_t)g->in.c;
    const int32_t kw = g->kw;
    float a0 = acc[0], a1 = acc[1];
    for (int32_t ky = fy0; ky < fy1; ++ky, xi += x_row) {
        const float *wr = row + (size_t)ky * (size_t)kw * (size_t)tap_c;
        const float *xr = x + xi;
        if (tap_c == 1) {
            for (int32_t kx = 0; kx < kw; ++kx) {
                const float wv = wr[kx];
                const float *xp = xr + (size_t)kx * x_tap;
                a0 += xp[0] * wv;
                a1 += xp[step] * wv;
            }
        } else if (x_tap == (size_t)tap_c) {
            const int32_t n = kw * tap_c;
            for (int32_t k = 0; k < n; ++k) {
                const float wv = wr[k];
                a0 += xr[k] * wv;
                a1 += xr[step + (size_t)k] * wv;
            }
        } else {
            for (int32_t kx = 0; kx < kw; ++kx, wr += tap_c) {
                const float *xp = xr + (size_t)kx * x_tap;
                for (int32_t c = 0; c < tap_c; ++c) {
                    const float wv = wr[c];
                    a0 += xp[c] * wv;
                    a1 += xp[step + (size_t)c] * wv;
                }
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* One output position (any clipping): the window's valid taps in order. */
static float conv_forward1(const float *x, const tfd_geom_t *g, int depthwise, int32_t tap_c, const float *row,
                           const window_t *win)
{
    const int32_t x_row = g->dh * g->in.w * g->in.c, x_tap = g->dw * g->in.c;
    const int contiguous = !depthwise && g->dw == 1; /* a filter row's taps are one run */
    const int32_t cols = win->fx1 - win->fx0;
    const int32_t fy1 = cols > 0 ? win->fy1 : win->fy0;
    float acc = 0.0f;
    size_t xi = win->x0; /* meaningful only when a tap is valid */
    for (int32_t ky = win->fy0; ky < fy1; ++ky, xi += (size_t)x_row) {
        const size_t wi = (size_t)(ky * g->kw + win->fx0) * (size_t)tap_c;
        if (contiguous) {
            acc = dot_strided(acc, x + xi, 1, row + wi, cols * tap_c);
        } else if (depthwise) {
            acc = dot_strided(acc, x + xi, x_tap, row + wi, cols);
        } else {
            size_t xt = xi, wt = wi;
            for (int32_t kx = 0; kx < cols; ++kx, xt += (size_t)x_tap, wt += (size_t)tap_c) {
                acc = dot_strided(acc, x + xt, 1, row + wt, tap_c);
            }
        }
    }
    return acc;
}

void tfd_conv_forward(const float *x, const tfd_geom_t *g, int depthwise, const tfd_wsrc_t *w,
                      const tfd_bsrc_t *b, float *row, float *y)
{
    const tfd_shape4_t out = g->out;
    const int32_t tap_c = tap_channels(g, depthwise);
    const size_t step = (size_t)g->sw * (size_t)g->in.c; /* input: next output column */
    int32_t ox_a, ox_b;
    interior_cols(g, &ox_a, &ox_b);
    for (int32_t o = 0; o < out.c; ++o) {
        const int32_t xc = first_input_channel(g, depthwise, o);
        tfd_wsrc_load(w, (uint32_t)o, row);
        const float bias = tfd_bsrc_get(b, (uint32_t)o);
        for (int32_t bn = 0; bn < out.n; ++bn) {
            for (int32_t oy = 0; oy < out.h; ++oy) {
                window_t win;
                size_t row0;
                window_rows(g, bn, oy, xc, &win, &row0);
                float *yr = y + (size_t)(bn * out.h + oy) * (size_t)out.w * (size_t)out.c + (size_t)o;
                int32_t ox = 0;
                while (ox < out.w) {
                    if (ox >= ox_a && ox + 4 <= ox_b && win.fy0 < win.fy1) {
                        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                        conv_forward4(x, row0 + (size_t)(ox * g->sw - g->pw) * (size_t)g->in.c, step, g, tap_c, row,
                                      win.fy0, win.fy1, acc);
                        for (int32_t j = 0; j < 4; ++j, ++ox) yr[(size_t)ox * (size_t)out.c] = acc[j] + bias;
                        continue;
                    }
                    if (ox >= ox_a && ox + 2 <= ox_b && win.fy0 < win.fy1) {
                        float acc[2] = {0.0f, 0.0f};
                        conv_forward2(x, row0 + (size_t)(ox * g->sw - g->pw) * (size_t)g->in.c, step, g, tap_c, row,
                                      win.fy0, win.fy1, acc);
                        for (int32_t j = 0; j < 2; ++j, ++ox) yr[(size_t)ox * (size_t)out.c] = acc[j] + bias;
                        continue;
                    }
                    window_cols(g, ox, row0, &win);
                    yr[(size_t)ox * (size_t)out.c] = conv_forward1(x, g, depthwise, tap_c, row, &win) + bias;
                    ++ox;
                }
            }
        }
    }
}

void tfd_conv_backward(const float *x, const float *dz, const tfd_geom_t *g, int depthwise,
                       const tfd_wsrc_t *w, float *gw, float *gb, float *dx, float *row)
{
    const tfd_shape4_t in = g->in, out = g->out;
    const int32_t tap_c = tap_channels(g, depthwise);
    const size_t row_len = (size_t)g->kh * g->kw * tap_c;
    const int32_t x_row = g->dh * in.w * in.c, x_tap = g->dw * in.c;
    const int contiguous = !depthwise && g->dw == 1; /* a filter row's taps are one run */
    if (dx != NULL) memset(dx, 0, (size_t)tfd_shape_elems(in) * sizeof(float));
    for (int32_t o = 0; o < out.c; ++o) {
        const int32_t xc = first_input_channel(g, depthwise, o);
        const int32_t r = gw != NULL ? tfd_wsrc_row(w, (uint32_t)o) : -1;
        float *gr = r >= 0 ? gw + (size_t)r * row_len : NULL;
        if (dx != NULL) tfd_wsrc_load(w, (uint32_t)o, row);
        float bsum = 0.0f;
        for (int32_t bn = 0; bn < out.n; ++bn) {
            for (int32_t oy = 0; oy < out.h; ++oy) {
                window_t win;
                size_t row0;
                window_rows(g, bn, oy, xc, &win, &row0);
                for (int32_t ox = 0; ox < out.w; ++ox) {
                    const float d = dz[((size_t)(bn * out.h + oy) * out.w + ox) * out.c + o];
                    if (d == 0.0f) continue;
                    bsum += d;
                    if (gr == NULL && dx == NULL) continue;
                    window_cols(g, ox, row0, &win);
                    const int32_t cols = win.fx1 - win.fx0;
                    const int32_t fy1 = cols > 0 ? win.fy1 : win.fy0;
                    size_t xi = win.x0;
                    for (int32_t ky = win.fy0; ky < fy1; ++ky, xi += (size_t)x_row) {
                        /* every element's sum keeps its order; gr and dx never alias */
                        const size_t wi = (size_t)(ky * g->kw + win.fx0) * (size_t)tap_c;
                        if (contiguous || depthwise) {
                            const int32_t xs = contiguous ? 1 : x_tap, n = contiguous ? cols * tap_c : cols;
                            if (gr != NULL) axpy_gather(gr + wi, d, x + xi, xs, n);
                            if (dx != NULL) axpy_strided(dx + xi, xs, d, row + wi, n);
                            continue;
                        }
                        size_t xt = xi, wt = wi;
                        for (int32_t kx = 0; kx < cols; ++kx, xt += (size_t)x_tap, wt += (size_t)tap_c) {
                            if (gr != NULL) axpy_gather(gr + wt, d, x + xt, 1, tap_c);
                            if (dx != NULL) axpy_strided(dx + xt, 1, d, row + wt, tap_c);
                        }
                    }
                }
            }
        }
        if (gb != NULL) gb[o] += bsum;
    }
}
