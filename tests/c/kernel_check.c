/* tinyfed — every optimized kernel against its reference, byte for byte, over
 * randomized shapes, quantization and data (tests/test_kernels_dsp.py).
 *
 * Built with TFD_KERNELS_DSP=1, so both tfd_eval_<op> (optimized) and
 * tfd_ref_eval_<op> (reference) are linked.  Each case builds a one-layer
 * model in RAM (tensors, parameters with every per-channel table the
 * toolchain would emit, acc_init folded exactly as toolchain/ops/nn.py folds
 * it), fills the output buffers of both runs with different junk, runs both
 * kernels and compares status and every output byte.  Cases are drawn from a
 * seeded xorshift generator; a few of them hit the fallbacks (non-zero filter
 * zero point, no acc_init) on purpose.
 *
 * Two builds, one source:
 *   host  (compiled by toolchain/image/native_cc.py: SIMD in portable C)
 *         kernel_check SEED CASES   -> key=value lines on stdout
 *   board (an image for a QEMU board, the real DSP instructions)
 *         semihosting command line --seed=N --cases=N -> key=value lines
 * Output: per op "<op>_cases=", "<op>_mismatches=", "<op>_macs=" (sum of
 * multiply-accumulates checked), then "mismatches=" (total) and, on the first
 * mismatch of an op, a "first_mismatch_<op>=" line describing the case.
 * Exit 0 iff no case differs. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"

#if !TFD_KERNELS_DSP
#error "kernel_check compares the optimized kernels with the reference: build it with TFD_KERNELS_DSP=1"
#endif

#if defined(TFD_BOARD_NAME)
#include "board_common.h"
#include "semihosting.h"
#include "tfd/port.h"
static void log_u64(const char *key, uint64_t v) { tfd_board_log_u64(key, v); }
static void log_str(const char *key, const char *v) { tfd_board_log_str(key, v); }
#else
#include <stdio.h>
#include <stdlib.h>
static void log_u64(const char *key, uint64_t v) { printf("%s=%llu\n", key, (unsigned long long)v); }
static void log_str(const char *key, const char *v) { printf("%s=%s\n", key, v); }
#endif

/* ---- random numbers ------------------------------------------------------- */

static uint32_t g_rng = 1;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/* Uniform in [lo, hi]. */
static int32_t rnd_in(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1)); }

static int chance(int percent) { return (int32_t)(rnd() % 100u) < percent; }

static int8_t rnd_i8(void) { return (int8_t)(rnd() & 0xFF); }

static void fill_i8(int8_t *p, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) p[i] = rnd_i8();
}

/* A Q31 multiplier as QuantizeMultiplier gives it: [2^30, 2^31), or 0 now and then. */
static int32_t rnd_mult(void) { return chance(2) ? 0 : (int32_t)(0x40000000u | (rnd() & 0x3FFFFFFFu)); }

/* ---- one-layer models ------------------------------------------------------ */

#define MAX_ACT 12288     /* bytes of input / output activations */
#define MAX_W 16384       /* filter bytes */
#define MAX_CH 256        /* channels / units */
#define MAX_SCRATCH 8192  /* arena scratch of the optimized kernels */

enum { T_X, T_W, T_B, T_Y, T_COUNT };

static uint8_t g_arena[2 * MAX_ACT + MAX_SCRATCH] __attribute__((aligned(16)));
static uint8_t g_ref_out[MAX_ACT] __attribute__((aligned(16)));
static int8_t g_w[MAX_W + 4] __attribute__((aligned(16))); /* + the emitter's whole-word padding */
static int32_t g_bias[MAX_CH], g_mult[MAX_CH], g_shift[MAX_CH], g_acc_init[MAX_CH];
static tfd_tensor_t g_t[T_COUNT];
static int16_t g_inputs[3] = {T_X, T_W, T_B};
static tfd_layer_t g_layer;
static tfd_model_t g_model;

static void set_dims(tfd_tensor_t *t, int32_t d0, int32_t d1, int32_t d2, int32_t d3, uint8_t rank, uint8_t type)
{
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->dims[2] = d2;
    t->dims[3] = d3;
    t->rank = rank;
    t->type = type;
    t->bytes = (uint32_t)(d0 * d1 * d2 * d3) * (type == TFD_TYPE_INT32 ? 4u : 1u);
}

static void model_reset(uint8_t op, const void *params, int has_bias)
{
    memset(g_t, 0, sizeof g_t);
    g_t[T_X].arena_offset = 0;
    g_t[T_Y].arena_offset = MAX_ACT;
    g_t[T_W].data = g_w;
    g_t[T_B].data = g_bias;
    g_layer.op = op;
    g_layer.n_inputs = 3;
    g_layer.output = T_Y;
    g_inputs[1] = T_W;
    g_inputs[2] = has_bias ? T_B : -1;
    g_layer.inputs = g_inputs;
    g_layer.params = params;
    memset(&g_model, 0, sizeof g_model);
    g_model.abi = TFD_MODEL_ABI;
    g_model.tensors = g_t;
    g_model.n_tensors = T_COUNT;
    g_model.layers = &g_layer;
    g_model.n_layers = 1;
    g_model.arena_bytes = sizeof g_arena;
}

typedef struct {
    const char *name;
    uint64_t cases, mismatches, macs, fallbacks;
} op_stats_t;

/* Run the reference then the optimized kernel on the same input; 1 if they differ. */
static int run_and_compare(tfd_kernel_fn ref, tfd_kernel_fn opt, op_stats_t *st, const char *what)
{
    const uint32_t out_bytes = g_t[T_Y].bytes;
    memset(g_arena + MAX_ACT, 0x5A, out_bytes);
    const tfd_status_t rs = ref(&g_model, &g_layer, g_arena);
    memcpy(g_ref_out, g_arena + MAX_ACT, out_bytes);
    memset(g_arena + MAX_ACT, 0xA5, out_bytes);
    const tfd_status_t os = opt(&g_model, &g_layer, g_arena);
    st->cases++;
    int bad = rs != os || (rs == TFD_OK && memcmp(g_ref_out, g_arena + MAX_ACT, out_bytes) != 0);
    if (bad) {
        if (st->mismatches == 0) {
            char key[64] = "first_mismatch_";
            strncat(key, st->name, sizeof key - strlen(key) - 1);
            log_str(key, what);
        }
        st->mismatches++;
    }
    return bad;
}

/* Decimal formatting for the case descriptions (no printf on the board). */
static char *put_int(char *p, const char *label, int32_t v)
{
    while (*label) *p++ = *label++;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0) *p++ = tmp[--n];
    *p = '\0';
    return p;
}

/* "in=HxWxC,k=HxW" of a conv / depthwise case */
static char *put_window(char *q, int32_t in_h, int32_t in_w, int32_t in_c, int32_t k_h, int32_t k_w)
{
    q = put_int(q, "in=", in_h);
    q = put_int(q, "x", in_w);
    q = put_int(q, "x", in_c);
    q = put_int(q, ",k=", k_h);
    return put_int(q, "x", k_w);
}

/* ",stride=HxW,dil=HxW,pad=HxW" of a conv / depthwise case */
static char *put_conv_steps(char *q, const tfd_conv_params_t *p)
{
    q = put_int(q, ",stride=", p->stride_h);
    q = put_int(q, "x", p->stride_w);
    q = put_int(q, ",dil=", p->dilation_h);
    q = put_int(q, "x", p->dilation_w);
    q = put_int(q, ",pad=", p->pad_h);
    return put_int(q, "x", p->pad_w);
}

/* ---- FULLY_CONNECTED ------------------------------------------------------- */

static void case_fully_connected(op_stats_t *st)
{
    static tfd_fc_params_t p;
    const int32_t units = chance(30) ? rnd_in(1, 8) : rnd_in(1, 64);
    const int32_t depth = chance(30) ? rnd_in(1, 12) : rnd_in(1, 400);
    int32_t batches = rnd_in(1, 3);
    if ((int64_t)units * depth > MAX_W) return;
    while (batches > 1 && (batches * depth > MAX_ACT || batches * units > MAX_ACT)) --batches;
    if (batches * depth > MAX_ACT) return;
    const int per_channel = chance(50);
    const int has_bias = chance(80);
    memset(&p, 0, sizeof p);
    p.input_offset = -(int32_t)rnd_i8();
    p.filter_offset = chance(5) ? -(int32_t)rnd_in(-20, 20) : 0;
    p.output_offset = rnd_i8();
    p.act_min = chance(50) ? -128 : rnd_in(-128, 0);
    p.act_max = chance(50) ? 127 : rnd_in(p.act_min, 127);
    p.n_mult = (uint16_t)(per_channel ? units : 1);
    for (int32_t u = 0; u < (per_channel ? units : 1); ++u) {
        g_mult[u] = rnd_mult();
        g_shift[u] = chance(5) ? rnd_in(-31, 4) : rnd_in(-12, 1);
    }
    p.mult = g_mult;
    p.shift = g_shift;
    fill_i8(g_w, units * depth);
    for (int32_t u = 0; u < units; ++u) {
        g_bias[u] = chance(10) ? rnd_in(-(1 << 26), 1 << 26) : rnd_in(-(1 << 20), 1 << 20);
        int32_t sum = 0;
        for (int32_t d = 0; d < depth; ++d) sum += g_w[u * depth + d];
        /* bias + input_offset * sum(row), wrapped like the accumulator */
        g_acc_init[u] = (int32_t)((uint32_t)(has_bias ? g_bias[u] : 0) + (uint32_t)p.input_offset * (uint32_t)sum);
    }
    p.acc_init = chance(5) ? NULL : g_acc_init;
    if (p.filter_offset != 0 || p.acc_init == NULL) st->fallbacks++;
    model_reset(TFD_OP_FULLY_CONNECTED, &p, has_bias);
    set_dims(&g_t[T_X], 1, 1, batches, depth, 2, TFD_TYPE_INT8);
    set_dims(&g_t[T_W], 1, 1, units, depth, 2, TFD_TYPE_INT8);
    set_dims(&g_t[T_B], 1, 1, 1, units, 1, TFD_TYPE_INT32);
    set_dims(&g_t[T_Y], 1, 1, batches, units, 2, TFD_TYPE_INT8);
    fill_i8((int8_t *)g_arena, batches * depth);
    st->macs += (uint64_t)batches * (uint64_t)units * (uint64_t)depth;
    char what[160], *q = what;
    q = put_int(q, "units=", units);
    q = put_int(q, ",depth=", depth);
    q = put_int(q, ",batches=", batches);
    q = put_int(q, ",per_channel=", per_channel);
    q = put_int(q, ",filter_offset=", p.filter_offset);
    (void)q;
    run_and_compare(tfd_ref_eval_fully_connected, tfd_eval_fully_connected, st, what);
}

/* ---- CONV_2D / DEPTHWISE_CONV_2D ------------------------------------------- */

/* TFLM ComputeOutSize / ComputePaddingWithOffset (toolchain/ops/nn.py). */
static int32_t out_size(int same, int32_t in, int32_t k, int32_t stride, int32_t dil)
{
    const int32_t eff = (k - 1) * dil + 1;
    return same ? (in + stride - 1) / stride : (in + stride - eff) / stride;
}

static int32_t lead_pad(int32_t in, int32_t k, int32_t out, int32_t stride, int32_t dil)
{
    const int32_t eff = (k - 1) * dil + 1;
    const int32_t total = (out - 1) * stride + eff - in;
    return total > 0 ? total / 2 : 0;
}

/* Random spatial geometry; 0 if the draw gives no output. */
static int spatial(tfd_conv_params_t *p, int32_t in_h, int32_t in_w, int32_t k_h, int32_t k_w, int32_t *out_h,
                   int32_t *out_w)
{
    const int same = chance(60);
    p->stride_h = (uint16_t)(chance(70) ? 1 : rnd_in(2, 3));
    p->stride_w = (uint16_t)(chance(70) ? 1 : rnd_in(2, 3));
    p->dilation_h = (uint16_t)(chance(80) ? 1 : rnd_in(2, 3));
    p->dilation_w = (uint16_t)(chance(80) ? 1 : rnd_in(2, 3));
    *out_h = out_size(same, in_h, k_h, p->stride_h, p->dilation_h);
    *out_w = out_size(same, in_w, k_w, p->stride_w, p->dilation_w);
    if (*out_h < 1 || *out_w < 1) return 0;
    p->pad_h = (int16_t)lead_pad(in_h, k_h, *out_h, p->stride_h, p->dilation_h);
    p->pad_w = (int16_t)lead_pad(in_w, k_w, *out_w, p->stride_w, p->dilation_w);
    return 1;
}

static void quant_common(tfd_conv_params_t *p, int32_t channels)
{
    p->input_offset = -(int32_t)rnd_i8();
    p->output_offset = rnd_i8();
    p->act_min = chance(50) ? -128 : rnd_in(-128, 0);
    p->act_max = chance(50) ? 127 : rnd_in(p->act_min, 127);
    for (int32_t c = 0; c < channels; ++c) {
        g_mult[c] = rnd_mult();
        g_shift[c] = chance(5) ? rnd_in(-31, 4) : rnd_in(-12, 1);
        g_bias[c] = chance(10) ? rnd_in(-(1 << 26), 1 << 26) : rnd_in(-(1 << 20), 1 << 20);
    }
    p->mult = g_mult;
    p->shift = g_shift;
}

static void case_conv_2d(op_stats_t *st)
{
    static tfd_conv_params_t p;
    memset(&p, 0, sizeof p);
    const int32_t batches = chance(85) ? 1 : 2;
    const int32_t in_h = rnd_in(1, 12), in_w = rnd_in(1, 12);
    const int32_t in_c = chance(40) ? rnd_in(1, 4) : rnd_in(1, 24);
    const int32_t out_c = rnd_in(1, 24);
    const int32_t k_h = chance(30) ? 1 : rnd_in(1, 5), k_w = chance(30) ? 1 : rnd_in(1, 5);
    int32_t out_h, out_w;
    if (!spatial(&p, in_h, in_w, k_h, k_w, &out_h, &out_w)) return;
    const int32_t taps = k_h * k_w * in_c;
    if (batches * in_h * in_w * in_c > MAX_ACT || batches * out_h * out_w * out_c > MAX_ACT ||
        out_c * taps > MAX_W || TFD_CONV_DSP_SCRATCH_BYTES(taps) > MAX_SCRATCH) {
        return;
    }
    const int has_bias = chance(80);
    quant_common(&p, out_c);
    fill_i8(g_w, out_c * taps);
    for (int32_t oc = 0; oc < out_c; ++oc) {
        int32_t sum = 0;
        for (int32_t k = 0; k < taps; ++k) sum += g_w[oc * taps + k];
        g_acc_init[oc] = (int32_t)((uint32_t)(has_bias ? g_bias[oc] : 0) + (uint32_t)p.input_offset * (uint32_t)sum);
    }
    p.acc_init = g_acc_init;
    p.scratch_offset = 2 * MAX_ACT;
    p.scratch_bytes = chance(5) ? 0 : TFD_CONV_DSP_SCRATCH_BYTES(taps);
    if (p.scratch_bytes == 0) st->fallbacks++;
    model_reset(TFD_OP_CONV_2D, &p, has_bias);
    set_dims(&g_t[T_X], batches, in_h, in_w, in_c, 4, TFD_TYPE_INT8);
    set_dims(&g_t[T_W], out_c, k_h, k_w, in_c, 4, TFD_TYPE_INT8);
    set_dims(&g_t[T_B], 1, 1, 1, out_c, 1, TFD_TYPE_INT32);
    set_dims(&g_t[T_Y], batches, out_h, out_w, out_c, 4, TFD_TYPE_INT8);
    fill_i8((int8_t *)g_arena, batches * in_h * in_w * in_c);
    st->macs += (uint64_t)batches * (uint64_t)(out_h * out_w * out_c) * (uint64_t)taps;
    char what[200], *q = what;
    q = put_window(q, in_h, in_w, in_c, k_h, k_w);
    q = put_int(q, ",out_c=", out_c);
    q = put_conv_steps(q, &p);
    q = put_int(q, ",batches=", batches);
    (void)q;
    run_and_compare(tfd_ref_eval_conv_2d, tfd_eval_conv_2d, st, what);
}

static void case_depthwise_conv_2d(op_stats_t *st)
{
    static tfd_conv_params_t p;
    memset(&p, 0, sizeof p);
    const int32_t batches = chance(85) ? 1 : 2;
    const int32_t in_h = rnd_in(1, 12), in_w = rnd_in(1, 12);
    const int32_t in_c = chance(30) ? rnd_in(1, 5) : rnd_in(1, 40);
    const int32_t mult = chance(90) ? 1 : rnd_in(2, 3);
    const int32_t out_c = in_c * mult;
    const int32_t k_h = chance(50) ? 3 : rnd_in(1, 5), k_w = chance(50) ? 3 : rnd_in(1, 5);
    int32_t out_h, out_w;
    if (!spatial(&p, in_h, in_w, k_h, k_w, &out_h, &out_w)) return;
    const int32_t taps = k_h * k_w;
    if (out_c > MAX_CH || batches * in_h * in_w * in_c > MAX_ACT || batches * out_h * out_w * out_c > MAX_ACT ||
        taps * out_c > MAX_W || TFD_DW_DSP_SCRATCH_BYTES(taps, out_c) > MAX_SCRATCH) {
        return;
    }
    const int has_bias = chance(80);
    quant_common(&p, out_c);
    p.depth_multiplier = mult;
    fill_i8(g_w, taps * out_c);
    for (int32_t oc = 0; oc < out_c; ++oc) {
        int32_t sum = 0;
        for (int32_t t = 0; t < taps; ++t) sum += g_w[t * out_c + oc];
        g_acc_init[oc] = (int32_t)((uint32_t)(has_bias ? g_bias[oc] : 0) + (uint32_t)p.input_offset * (uint32_t)sum);
    }
    p.acc_init = g_acc_init;
    p.scratch_offset = 2 * MAX_ACT;
    p.scratch_bytes = chance(5) ? 0 : (mult == 1 ? TFD_DW_DSP_SCRATCH_BYTES(taps, out_c) : 0);
    if (p.scratch_bytes < TFD_DW_DSP_SCRATCH_BYTES(taps, out_c) || mult != 1) st->fallbacks++;
    model_reset(TFD_OP_DEPTHWISE_CONV_2D, &p, has_bias);
    set_dims(&g_t[T_X], batches, in_h, in_w, in_c, 4, TFD_TYPE_INT8);
    set_dims(&g_t[T_W], 1, k_h, k_w, out_c, 4, TFD_TYPE_INT8);
    set_dims(&g_t[T_B], 1, 1, 1, out_c, 1, TFD_TYPE_INT32);
    set_dims(&g_t[T_Y], batches, out_h, out_w, out_c, 4, TFD_TYPE_INT8);
    fill_i8((int8_t *)g_arena, batches * in_h * in_w * in_c);
    st->macs += (uint64_t)batches * (uint64_t)(out_h * out_w * out_c) * (uint64_t)taps;
    char what[200], *q = what;
    q = put_window(q, in_h, in_w, in_c, k_h, k_w);
    q = put_int(q, ",mult=", mult);
    q = put_conv_steps(q, &p);
    (void)q;
    run_and_compare(tfd_ref_eval_depthwise_conv_2d, tfd_eval_depthwise_conv_2d, st, what);
}

/* ---- MAX_POOL_2D / AVERAGE_POOL_2D ----------------------------------------- */

static void case_pool(op_stats_t *st, uint8_t op)
{
    static tfd_pool_params_t p;
    static tfd_conv_params_t geo;
    memset(&p, 0, sizeof p);
    memset(&geo, 0, sizeof geo);
    const int32_t batches = chance(85) ? 1 : 2;
    const int32_t in_h = rnd_in(1, 14), in_w = rnd_in(1, 14);
    const int32_t depth = chance(30) ? rnd_in(1, 5) : rnd_in(1, 40);
    const int big = op == TFD_OP_AVERAGE_POOL_2D && chance(8); /* > 256 taps: the reference runs */
    const int32_t f_h = big ? rnd_in(16, 20) : (chance(50) ? 2 : rnd_in(1, 5));
    const int32_t f_w = big ? rnd_in(17, 20) : (chance(50) ? 2 : rnd_in(1, 5));
    int32_t out_h, out_w;
    if (!spatial(&geo, in_h, in_w, f_h, f_w, &out_h, &out_w)) return;
    if (geo.dilation_h != 1 || geo.dilation_w != 1) return; /* pools have no dilation */
    if (batches * in_h * in_w * depth > MAX_ACT || batches * out_h * out_w * depth > MAX_ACT) return;
    p.stride_h = geo.stride_h;
    p.stride_w = geo.stride_w;
    p.filter_h = (uint16_t)f_h;
    p.filter_w = (uint16_t)f_w;
    p.pad_h = geo.pad_h;
    p.pad_w = geo.pad_w;
    p.act_min = chance(50) ? -128 : rnd_in(-128, 0);
    p.act_max = chance(50) ? 127 : rnd_in(p.act_min, 127);
    if (op == TFD_OP_AVERAGE_POOL_2D && f_h * f_w > 256) st->fallbacks++;
    model_reset(op, &p, 0);
    g_layer.n_inputs = 1;
    set_dims(&g_t[T_X], batches, in_h, in_w, depth, 4, TFD_TYPE_INT8);
    set_dims(&g_t[T_Y], batches, out_h, out_w, depth, 4, TFD_TYPE_INT8);
    fill_i8((int8_t *)g_arena, batches * in_h * in_w * depth);
    st->macs += (uint64_t)batches * (uint64_t)(out_h * out_w * depth) * (uint64_t)(f_h * f_w);
    char what[160], *q = what;
    q = put_int(q, "in=", in_h);
    q = put_int(q, "x", in_w);
    q = put_int(q, "x", depth);
    q = put_int(q, ",filter=", f_h);
    q = put_int(q, "x", f_w);
    q = put_int(q, ",stride=", p.stride_h);
    q = put_int(q, "x", p.stride_w);
    q = put_int(q, ",pad=", p.pad_h);
    q = put_int(q, "x", p.pad_w);
    (void)q;
    if (op == TFD_OP_MAX_POOL_2D) {
        run_and_compare(tfd_ref_eval_max_pool_2d, tfd_eval_max_pool_2d, st, what);
    } else {
        run_and_compare(tfd_ref_eval_average_pool_2d, tfd_eval_average_pool_2d, st, what);
    }
}

static void case_max_pool_2d(op_stats_t *st) { case_pool(st, TFD_OP_MAX_POOL_2D); }
static void case_average_pool_2d(op_stats_t *st) { case_pool(st, TFD_OP_AVERAGE_POOL_2D); }

/* ---- ADD / SUB / MUL ---------------------------------------------------------- */

/* Random 4-D output dims and each input's dims: equal, or 1 on broadcast axes. */
static int32_t bcast_shapes(int32_t out[4], int32_t in1[4], int32_t in2[4])
{
    int32_t total = 1;
    const int same = chance(50);
    for (int d = 0; d < 4; ++d) {
        out[d] = d == 0 ? (chance(90) ? 1 : 2) : rnd_in(1, d == 3 ? 40 : 10);
        in1[d] = same || chance(70) ? out[d] : 1;
        in2[d] = same || chance(70) ? out[d] : 1;
        total *= out[d];
    }
    return total;
}

static void case_binary(op_stats_t *st, uint8_t op)
{
    static tfd_add_params_t pa;
    static tfd_mul_params_t pm;
    int32_t out[4], in1[4], in2[4];
    const int32_t total = bcast_shapes(out, in1, in2);
    if (total > MAX_ACT / 2) return;
    const void *params;
    if (op == TFD_OP_MUL) {
        pm.input1_offset = -(int32_t)rnd_i8();
        pm.input2_offset = -(int32_t)rnd_i8();
        pm.output_offset = rnd_i8();
        pm.output_mult = rnd_mult();
        pm.output_shift = chance(10) ? rnd_in(-31, 2) : rnd_in(-14, -4);
        pm.act_min = chance(50) ? -128 : rnd_in(-128, 0);
        pm.act_max = chance(50) ? 127 : rnd_in(pm.act_min, 127);
        params = &pm;
    } else {
        pa.input1_offset = -(int32_t)rnd_i8();
        pa.input2_offset = -(int32_t)rnd_i8();
        pa.output_offset = rnd_i8();
        /* <= 20 (TFLM's int8 ADD uses 20): a larger shift can overflow the int32 sum of the two
         * rescaled inputs, which is undefined in the reference kernel (and TFLM's) */
        pa.left_shift = chance(90) ? 20 : rnd_in(0, 20);
        pa.input1_mult = rnd_mult();
        pa.input2_mult = rnd_mult();
        pa.output_mult = rnd_mult();
        pa.input1_shift = chance(10) ? 0 : rnd_in(-8, -1);
        pa.input2_shift = chance(10) ? 0 : rnd_in(-8, -1);
        pa.output_shift = chance(10) ? 0 : rnd_in(-31, -10);
        pa.act_min = chance(50) ? -128 : rnd_in(-128, 0);
        pa.act_max = chance(50) ? 127 : rnd_in(pa.act_min, 127);
        pa.scratch_offset = 2 * MAX_ACT;
        pa.scratch_bytes = chance(50) ? TFD_ADD_DSP_SCRATCH_BYTES : 0; /* tables, or rescale each element */
        params = &pa;
    }
    model_reset(op, params, 0);
    g_layer.n_inputs = 2;
    g_inputs[1] = T_B; /* the second input lives in the arena too (at the bias slot's index) */
    set_dims(&g_t[T_X], in1[0], in1[1], in1[2], in1[3], 4, TFD_TYPE_INT8);
    set_dims(&g_t[T_B], in2[0], in2[1], in2[2], in2[3], 4, TFD_TYPE_INT8);
    g_t[T_B].data = NULL;
    g_t[T_B].arena_offset = MAX_ACT / 2;
    set_dims(&g_t[T_Y], out[0], out[1], out[2], out[3], 4, TFD_TYPE_INT8);
    fill_i8((int8_t *)g_arena, MAX_ACT);
    st->macs += (uint64_t)total;
    char what[160], *q = what;
    q = put_int(q, "out=", out[0]);
    for (int d = 1; d < 4; ++d) q = put_int(q, "x", out[d]);
    q = put_int(q, ",in1=", in1[0]);
    for (int d = 1; d < 4; ++d) q = put_int(q, "x", in1[d]);
    q = put_int(q, ",in2=", in2[0]);
    for (int d = 1; d < 4; ++d) q = put_int(q, "x", in2[d]);
    (void)q;
    if (op == TFD_OP_ADD) run_and_compare(tfd_ref_eval_add, tfd_eval_add, st, what);
    if (op == TFD_OP_SUB) run_and_compare(tfd_ref_eval_sub, tfd_eval_sub, st, what);
    if (op == TFD_OP_MUL) run_and_compare(tfd_ref_eval_mul, tfd_eval_mul, st, what);
}

static void case_add(op_stats_t *st) { case_binary(st, TFD_OP_ADD); }
static void case_sub(op_stats_t *st) { case_binary(st, TFD_OP_SUB); }
static void case_mul(op_stats_t *st) { case_binary(st, TFD_OP_MUL); }

/* ---- SOFTMAX ----------------------------------------------------------------- */

static void case_softmax(op_stats_t *st)
{
    static tfd_softmax_params_t p;
    const int out16 = chance(30);
    const int32_t depth = chance(30) ? rnd_in(1, 16) : rnd_in(1, 300); /* past the optimized kernel's memo */
    int32_t rows = rnd_in(1, 4);
    while (rows > 1 && rows * depth * (out16 ? 2 : 1) > MAX_ACT) --rows;
    memset(&p, 0, sizeof p);
    /* TFLM CalculateSoftmaxParams: multiplier in [2^30, 2^31), diff_min = -floor(31 * 2^26 / 2^shift) */
    p.input_multiplier = (int32_t)(0x40000000u | (rnd() & 0x3FFFFFFFu));
    p.input_left_shift = chance(20) ? rnd_in(0, 31) : rnd_in(14, 26);
    p.diff_min = -(int32_t)((31ull << 26) >> p.input_left_shift);
    model_reset(TFD_OP_SOFTMAX, &p, 0);
    g_layer.n_inputs = 1;
    set_dims(&g_t[T_X], 1, 1, rows, depth, 2, TFD_TYPE_INT8);
    set_dims(&g_t[T_Y], 1, 1, rows, depth, 2, out16 ? TFD_TYPE_INT16 : TFD_TYPE_INT8);
    if (out16) g_t[T_Y].bytes *= 2u;
    fill_i8((int8_t *)g_arena, rows * depth);
    if (chance(30)) { /* a narrow range: many elements tie or sit just below the maximum */
        for (int32_t i = 0; i < rows * depth; ++i) ((int8_t *)g_arena)[i] = (int8_t)(((int8_t *)g_arena)[i] >> 5);
    }
    st->macs += (uint64_t)rows * (uint64_t)depth; /* elements */
    char what[160], *q = what;
    q = put_int(q, "rows=", rows);
    q = put_int(q, ",depth=", depth);
    q = put_int(q, ",out16=", out16);
    q = put_int(q, ",left_shift=", p.input_left_shift);
    (void)q;
    run_and_compare(tfd_ref_eval_softmax, tfd_eval_softmax, st, what);
}

/* ---- driver ---------------------------------------------------------------- */

typedef void (*case_fn)(op_stats_t *);

static const struct {
    const char *name;
    case_fn fn;
} kOps[] = {
    {"fully_connected", case_fully_connected},
    {"conv_2d", case_conv_2d},
    {"depthwise_conv_2d", case_depthwise_conv_2d},
    {"max_pool_2d", case_max_pool_2d},
    {"average_pool_2d", case_average_pool_2d},
    {"add", case_add},
    {"sub", case_sub},
    {"mul", case_mul},
    {"softmax", case_softmax},
};

static int run_all(uint32_t seed, uint32_t cases)
{
    g_rng = seed ? seed : 1;
    uint64_t total = 0;
    for (size_t k = 0; k < sizeof kOps / sizeof kOps[0]; ++k) {
        op_stats_t st = {kOps[k].name, 0, 0, 0, 0};
        while (st.cases < cases) kOps[k].fn(&st);
        char key[64];
        const char *suffix[] = {"_cases", "_mismatches", "_macs", "_fallbacks"};
        const uint64_t val[] = {st.cases, st.mismatches, st.macs, st.fallbacks};
        for (int i = 0; i < 4; ++i) {
            strcpy(key, st.name);
            strcat(key, suffix[i]);
            log_u64(key, val[i]);
        }
        total += st.mismatches;
    }
    log_u64("mismatches", total);
    return total == 0 ? 0 : 1;
}

#if defined(TFD_BOARD_NAME)
static uint32_t arg_u32(const char *key, uint32_t dflt)
{
    char buf[16];
    if (tfd_sh_cmdline_value(key, buf, sizeof buf) <= 0) return dflt;
    uint32_t v = 0;
    for (const char *c = buf; *c >= '0' && *c <= '9'; ++c) v = v * 10u + (uint32_t)(*c - '0');
    return v;
}

int main(void)
{
    tfd_port_init();
    log_str("kernel_check_board", tfd_port_board_name());
    const int rc = run_all(arg_u32("seed", 1), arg_u32("cases", 100));
    tfd_port_exit(rc);
}
#else
int main(int argc, char **argv)
{
    const uint32_t seed = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1u;
    const uint32_t cases = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 100u;
    return run_all(seed, cases);
}
#endif
