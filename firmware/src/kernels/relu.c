/* RELU and RELU6, int8, with TFLite Micro semantics:
 *  - RELU requantizes input -> output scale and clamps at the output zero point;
 *  - RELU6 clamps the raw input codes to [zero point, q(6.0)] without rescaling. */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"

static int8_t relu_one(const void *pv, int32_t code)
{
    const tfd_requant_params_t *p = (const tfd_requant_params_t *)pv;
    const int32_t v = p->output_offset + tfd_mbqm(code - p->input_offset, p->mult, p->shift);
    return (int8_t)tfd_clamp_i32(v, p->act_min, p->act_max);
}

/* TFLM compares val > upper first, so an empty range (lo > hi) yields hi. */
static int8_t relu6_one(const void *pv, int32_t code)
{
    const tfd_clamp_params_t *p = (const tfd_clamp_params_t *)pv;
    return (int8_t)(code > p->hi ? p->hi : (code < p->lo ? p->lo : code));
}

tfd_status_t tfd_eval_relu(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_requant_params_t *p = (const tfd_requant_params_t *)l->params;
    TFD_ENSURE(p->shift >= -31 && p->shift <= 30, TFD_ERR_BAD_MODEL);
    return tfd_eval_map_i8(m, l, arena, relu_one);
}

tfd_status_t tfd_eval_relu6(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    return tfd_eval_map_i8(m, l, arena, relu6_one);
}
