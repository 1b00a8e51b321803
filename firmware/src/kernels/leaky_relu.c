/* LEAKY_RELU, int8 (TFLite Micro reference semantics: non-negative offset
 * inputs are requantized with the identity multiplier, negative ones with
 * the alpha multiplier — for a negative alpha TFLM scales with |multiplier|
 * and negates the result). */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"

static int8_t leaky_relu_one(const void *pv, int32_t code)
{
    const tfd_leaky_relu_params_t *p = (const tfd_leaky_relu_params_t *)pv;
    const int32_t v = code - p->input_offset;
    int32_t out = p->output_offset;
    if (v >= 0) {
        out += tfd_mbqm(v, p->mult_identity, p->shift_identity);
    } else {
        const int32_t scaled = tfd_mbqm(v, p->mult_alpha, p->shift_alpha);
        out += p->alpha_negative ? -scaled : scaled;
    }
    return tfd_sat_i8(out);
}

tfd_status_t tfd_eval_leaky_relu(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_leaky_relu_params_t *p = (const tfd_leaky_relu_params_t *)l->params;
    TFD_ENSURE(p->mult_alpha >= 0 && p->mult_identity >= 0 && p->shift_alpha >= -31 &&
                   p->shift_alpha <= 30 && p->shift_identity >= -31 && p->shift_identity <= 30,
               TFD_ERR_BAD_MODEL);
    return tfd_eval_map_i8(m, l, arena, leaky_relu_one);
}
