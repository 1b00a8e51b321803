/* ADD, SUB and MUL, optimized for cores with the DSP extension
 * (TFD_KERNELS_DSP).  Same results as the reference (firmware/src/kernels/
 * add.c, mul.c), byte for byte, with the same 4-D broadcasting: every
 * MultiplyByQuantizedMultiplier done in a few instructions (requant.h:
 * SMULL-based rounding doubling high multiply, ASRS/ADC rounding shift, SSAT).
 * ADD / SUB of at least TFD_ADD_DSP_MIN_ELEMS outputs: an input's rescale
 * ((x + offset) << 20, times its multiplier < 1) depends on its int8 code only,
 * so both are tabulated for the 256 codes in the planned arena scratch once per
 * call and each element costs two table reads and the output rescale. */
#include <stddef.h>

#include "../elementwise.h"
#include "requant.h"
#include "tfd/broadcast.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

#if TFD_KERNELS_DSP

/* MultiplyByQuantizedMultiplierSmallerThanOneExp(v, m, -right), right >= 0. */
TFD_ALWAYS_INLINE int32_t rescale(int32_t v, int32_t m, int32_t right)
{
    const int32_t r = tfd_dsp_srdhm(v, m);
    return right > 0 ? tfd_dsp_rdivpot(r, right) : r;
}

typedef struct {
    const tfd_add_params_t *p;
    const int32_t *t1, *t2; /* each input's rescaled value per code (+128), or NULL */
} add_ctx_t;

/* The output code of a rescaled sum (or difference) v. */
TFD_ALWAYS_INLINE int32_t add_out(const tfd_add_params_t *p, int32_t v, int32_t ro)
{
    v = ro > 0 ? tfd_dsp_requant_s8(v, p->output_mult, ro, p->output_offset)
               : tfd_dsp_clamp(tfd_dsp_srdhm(v, p->output_mult) + p->output_offset, -128, 127);
    return tfd_dsp_clamp(v, p->act_min, p->act_max);
}

/* ADD (subtract = 0) or SUB (1), rescaling every element; inlined with a constant `subtract`. */
TFD_ALWAYS_INLINE void add_sub(const tfd_add_params_t *p, const int8_t *x1, int32_t s1, const int8_t *x2,
                               int32_t s2, int8_t *y, int32_t n, int subtract)
{
    const int32_t o1 = p->input1_offset, o2 = p->input2_offset, ls = p->left_shift;
    const int32_t m1 = p->input1_mult, r1 = -p->input1_shift, m2 = p->input2_mult, r2 = -p->input2_shift;
    const int32_t ro = -p->output_shift;
    for (int32_t i = 0; i < n; ++i, x1 += s1, x2 += s2) {
        const int32_t a = rescale((int32_t)((uint32_t)(*x1 + o1) << ls), m1, r1);
        const int32_t b = rescale((int32_t)((uint32_t)(*x2 + o2) << ls), m2, r2);
        y[i] = (int8_t)add_out(p, subtract ? a - b : a + b, ro);
    }
}

/* The same with the rescaled inputs read from the tables.  Every parameter is a
 * local: the int8 stores could alias the parameter struct and GCC would reload it. */
TFD_ALWAYS_INLINE void add_sub_table(const add_ctx_t *c, const int8_t *x1, int32_t s1, const int8_t *x2,
                                     int32_t s2, int8_t *y, int32_t n, int subtract)
{
    const tfd_add_params_t *p = c->p;
    const int32_t *t1 = c->t1 + 128, *t2 = c->t2 + 128;
    const int32_t mo = p->output_mult, ro = -p->output_shift, off = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    if (ro == 0) {
        for (int32_t i = 0; i < n; ++i, x1 += s1, x2 += s2) {
            y[i] = (int8_t)add_out(p, subtract ? t1[*x1] - t2[*x2] : t1[*x1] + t2[*x2], 0);
        }
        return;
    }
    if (lo == -128 && hi == 127) {
        for (int32_t i = 0; i < n; ++i, x1 += s1, x2 += s2) {
            const int32_t a = t1[*x1], b = t2[*x2];
            y[i] = (int8_t)tfd_dsp_requant_s8(subtract ? a - b : a + b, mo, ro, off);
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i, x1 += s1, x2 += s2) {
        const int32_t a = t1[*x1], b = t2[*x2];
        y[i] = (int8_t)tfd_dsp_clamp(tfd_dsp_requant_s8(subtract ? a - b : a + b, mo, ro, off), lo, hi);
    }
}

static void add_row(const add_ctx_t *c, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2, int8_t *y,
                    int32_t n)
{
    if (c->t1 != NULL) {
        add_sub_table(c, x1, s1, x2, s2, y, n, 0);
    } else {
        add_sub(c->p, x1, s1, x2, s2, y, n, 0);
    }
}

static void sub_row(const add_ctx_t *c, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2, int8_t *y,
                    int32_t n)
{
    if (c->t1 != NULL) {
        add_sub_table(c, x1, s1, x2, s2, y, n, 1);
    } else {
        add_sub(c->p, x1, s1, x2, s2, y, n, 1);
    }
}

typedef void (*add_row_fn)(const add_ctx_t *c, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2,
                           int8_t *y, int32_t n);

/* Input code -> rescaled value, for the 256 codes. */
static void build_table(int32_t *t, int32_t offset, int32_t left_shift, int32_t m, int32_t right)
{
    for (int32_t code = -128; code < 128; ++code) {
        t[code + 128] = rescale((int32_t)((uint32_t)(code + offset) << left_shift), m, right);
    }
}

/* tfd_eval_binary_i8's broadcasting, with the tables in the row context. */
TFD_CHECK_RESULT static tfd_status_t eval_add_sub(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena,
                                                  add_row_fn row)
{
    TFD_ENSURE(l->n_inputs == 2, TFD_ERR_BAD_MODEL);
    const tfd_add_params_t *p = (const tfd_add_params_t *)l->params;
    const tfd_tensor_t *t1 = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *t2 = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *to = TFD_OUT_T(m, l);
    TFD_ENSURE(t1->type == TFD_TYPE_INT8 && t2->type == TFD_TYPE_INT8 && to->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    tfd_bcast4_t b;
    TFD_TRY(tfd_bcast4_init(&b, t1, t2, to));
    add_ctx_t c = {p, NULL, NULL};
    if (p->scratch_bytes >= TFD_ADD_DSP_SCRATCH_BYTES) {
        TFD_ENSURE((uint64_t)p->scratch_offset + p->scratch_bytes <= m->arena_bytes && (p->scratch_offset & 3u) == 0,
                   TFD_ERR_BAD_MODEL);
        int32_t *tables = (int32_t *)(void *)(arena + p->scratch_offset);
        build_table(tables, p->input1_offset, p->left_shift, p->input1_mult, -p->input1_shift);
        build_table(tables + 256, p->input2_offset, p->left_shift, p->input2_mult, -p->input2_shift);
        c.t1 = tables;
        c.t2 = tables + 256;
    }
    const int8_t *x1 = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *x2 = (const int8_t *)TFD_IN(m, l, arena, 1);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    if (b.same_shape) {
        row(&c, x1, 1, x2, 1, y, tfd_tensor_elems(to));
        return TFD_OK;
    }
    for (int32_t i0 = 0; i0 < b.dims[0]; ++i0) {
        for (int32_t i1 = 0; i1 < b.dims[1]; ++i1) {
            for (int32_t i2 = 0; i2 < b.dims[2]; ++i2) {
                const int8_t *r1 = x1 + i0 * b.stride1[0] + i1 * b.stride1[1] + i2 * b.stride1[2];
                const int8_t *r2 = x2 + i0 * b.stride2[0] + i1 * b.stride2[1] + i2 * b.stride2[2];
                row(&c, r1, b.stride1[3], r2, b.stride2[3], y, b.dims[3]);
                y += b.dims[3];
            }
        }
    }
    return TFD_OK;
}

/* The reference's parameter checks (add.c): shifts in range, inputs and output scaled down. */
TFD_CHECK_RESULT static tfd_status_t check_add(const tfd_layer_t *l)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_add_params_t *p = (const tfd_add_params_t *)l->params;
    TFD_ENSURE(p->left_shift >= 0 && p->left_shift <= 23 && p->input1_shift <= 0 && p->input2_shift <= 0 &&
                   p->output_shift <= 0 && p->input1_shift >= -31 && p->input2_shift >= -31 &&
                   p->output_shift >= -31,
               TFD_ERR_BAD_MODEL);
    return TFD_OK;
}

tfd_status_t tfd_eval_add(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_TRY(check_add(l));
    return eval_add_sub(m, l, arena, add_row);
}

tfd_status_t tfd_eval_sub(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_TRY(check_add(l));
    return eval_add_sub(m, l, arena, sub_row);
}

static void mul_row(const void *pv, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2, int8_t *y,
                    int32_t n)
{
    const tfd_mul_params_t *p = (const tfd_mul_params_t *)pv;
    const int32_t o1 = p->input1_offset, o2 = p->input2_offset, off = p->output_offset;
    const int32_t m = p->output_mult, shift = p->output_shift, lo = p->act_min, hi = p->act_max;
    for (int32_t i = 0; i < n; ++i, x1 += s1, x2 += s2) {
        const int32_t prod = (*x1 + o1) * (*x2 + o2);
        const int32_t v = shift < 0 ? tfd_dsp_requant_s8(prod, m, -shift, off)
                                    : tfd_dsp_clamp(tfd_dsp_requant(prod, m, shift) + off, -128, 127);
        y[i] = (int8_t)tfd_dsp_clamp(v, lo, hi);
    }
}

tfd_status_t tfd_eval_mul(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_mul_params_t *p = (const tfd_mul_params_t *)l->params;
    TFD_ENSURE(p->output_shift >= -31 && p->output_shift <= 30, TFD_ERR_BAD_MODEL);
    return tfd_eval_binary_i8(m, l, arena, mul_row);
}

#endif /* TFD_KERNELS_DSP */
