/* LOGISTIC, int8 (TFLite Micro reference semantics: inputs outside the range
 * radius saturate; others are rescaled to Q4.27 and fed to the fixed-point
 * logistic; the Q0 result is rounded to the output scale 1/256, zero point -128). */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/fixedpoint.h"
#include "tfd/kernels.h"
#include "tfd/qmath.h"

/* One output code for one input code. */
static int8_t logistic_one(const void *pv, int32_t code)
{
    const tfd_sigmoid_params_t *p = (const tfd_sigmoid_params_t *)pv;
    int32_t q4 = 0;
    const int side = tfd_sigmoid_input(p, code, &q4);
    if (side != 0) return side < 0 ? INT8_MIN : INT8_MAX;
    return tfd_sat_i8(tfd_rdivpot(tfd_fp_logistic(q4, 4), 31 - 8) - 128);
}

tfd_status_t tfd_eval_logistic(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->params != NULL, TFD_ERR_BAD_MODEL);
    TFD_TRY(tfd_sigmoid_params_check((const tfd_sigmoid_params_t *)l->params));
    return tfd_eval_map_i8(m, l, arena, logistic_one);
}
