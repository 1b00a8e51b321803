/* QUANTIZE to int8 (TFLite Micro reference semantics):
 *  - from float32: round(x / scale) half away from zero, in float32, plus the
 *    zero point, clamped;
 *  - from int8 (requantize): MultiplyByQuantizedMultiplier of the offset input. */
#include <stddef.h>

#include "tfd/kernels.h"
#include "tfd/qmath.h"
#include "tfd/runtime.h"

/* roundf() then conversion to int32, saturating (TFLM leaves |v| >= 2^31 and
 * NaN undefined; here they saturate, NaN as the most negative value). */
static int32_t round_f32_to_i32(float v)
{
    if (!(v == v)) return INT32_MIN;
    if (v >= 2147483648.0f) return INT32_MAX;
    if (v <= -2147483648.0f) return INT32_MIN;
    const float a = v < 0.0f ? -v : v;
    int32_t i = (int32_t)a;               /* truncation; exact for |v| < 2^31 */
    if (a - (float)i >= 0.5f) i += 1;     /* the fraction of a float is exact */
    return v < 0.0f ? -i : i;
}

tfd_status_t tfd_eval_quantize(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 1 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_quantize_params_t *p = (const tfd_quantize_params_t *)l->params;
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(yt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t n = tfd_tensor_elems(xt);
    TFD_ENSURE(tfd_tensor_elems(yt) == n, TFD_ERR_SHAPE);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);

    if (xt->type == TFD_TYPE_FLOAT32) {
        const float *x = (const float *)TFD_IN(m, l, arena, 0);
        for (int32_t i = 0; i < n; ++i) {
            const int32_t r = round_f32_to_i32(x[i] / p->output_scale);
            /* Saturating add: r may be INT32_MIN/MAX. */
            const int64_t q = (int64_t)r + p->output_offset;
            y[i] = (int8_t)(q < INT8_MIN ? INT8_MIN : (q > INT8_MAX ? INT8_MAX : q));
        }
        return TFD_OK;
    }
    TFD_ENSURE(xt->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->shift >= -31 && p->shift <= 30, TFD_ERR_BAD_MODEL);
    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = tfd_mbqm((int32_t)x[i] - p->input_offset, p->mult, p->shift) + p->output_offset;
        y[i] = tfd_sat_i8(v);
    }
    return TFD_OK;
}
